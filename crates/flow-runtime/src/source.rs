//! Where a runtime finds workflows by name: a folder of files (`flow serve
//! --workflows DIR`), a single file, or workflows an embedder registers. An
//! invalid file is kept, with its problems, and cannot be run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use flow_engine::{Engine, Workflow};

/// One workflow of a source.
#[derive(Debug, Clone)]
pub struct SourceEntry {
    /// Its name: the file's `name:` (its file name when that cannot be read,
    /// or when another file has the name).
    pub name: String,
    /// Where it comes from: a file, relative to the source's folder; empty for
    /// a registered workflow.
    pub origin: String,
    /// The workflow, when it is valid.
    pub workflow: Option<Arc<Workflow>>,
    /// Every problem of an invalid file, each with its place.
    pub problems: Vec<String>,
    /// How many nodes the file lists, valid or not (0 when it cannot be read).
    pub nodes: usize,
}

/// Workflows by name, in name order.
pub type Entries = BTreeMap<String, SourceEntry>;

/// Where a [`crate::Runtime`] finds the workflows it runs by name.
pub trait WorkflowSource: Send + Sync + std::fmt::Debug + 'static {
    /// Every workflow, valid or not, by name: a snapshot (runs under way keep
    /// the version they started with).
    fn entries(&self) -> Arc<Entries>;

    /// Reads the workflows again (a folder's files); a source that cannot
    /// change does nothing.
    ///
    /// # Errors
    ///
    /// Why the source cannot be read now; it keeps what it had.
    fn reload(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The workflows of a folder's `.yaml`, `.yml` and `.json` files (not its
/// subfolders), or of a single file, validated when loaded.
#[derive(Debug)]
pub struct Folder {
    path: PathBuf,
    engine: Engine,
    entries: RwLock<Arc<Entries>>,
}

impl Folder {
    /// Loads every workflow file of `path` (a folder, or one file), in file
    /// name order, validated with `engine`'s node kinds and limits.
    ///
    /// # Errors
    ///
    /// A folder or file that cannot be read, with the reason.
    pub fn load(engine: &Engine, path: &Path) -> Result<Folder, String> {
        let entries = load(engine, path)?;
        Ok(Folder {
            path: path.to_owned(),
            engine: engine.clone(),
            entries: RwLock::new(Arc::new(entries)),
        })
    }

    /// The folder (or file) it reads.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl WorkflowSource for Folder {
    fn entries(&self) -> Arc<Entries> {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn reload(&self) -> Result<(), String> {
        let entries = load(&self.engine, &self.path)?;
        *self.entries.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(entries);
        Ok(())
    }
}

/// Workflows an embedder registers (compiled by itself), by their names.
#[derive(Debug, Default)]
pub struct Registered {
    entries: RwLock<Arc<Entries>>,
}

impl Registered {
    /// No workflows yet.
    pub fn new() -> Registered {
        Registered::default()
    }

    /// Adds `workflow` under its name, replacing one of that name (runs under
    /// way keep theirs).
    pub fn register(&self, workflow: Arc<Workflow>) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let mut next = Entries::clone(&entries);
        next.insert(
            workflow.name().to_owned(),
            SourceEntry {
                name: workflow.name().to_owned(),
                origin: String::new(),
                nodes: workflow.nodes().len(),
                workflow: Some(workflow),
                problems: Vec::new(),
            },
        );
        *entries = Arc::new(next);
    }
}

impl WorkflowSource for Registered {
    fn entries(&self) -> Arc<Entries> {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn is_workflow_file(path: &Path) -> bool {
    path.is_file() && matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"))
}

/// The workflows of `path`: a folder's files, or the one file.
fn load(engine: &Engine, path: &Path) -> Result<Entries, String> {
    let (dir, mut files) = if path.is_file() {
        (path.parent().unwrap_or(Path::new("")).to_owned(), vec![path.to_owned()])
    } else {
        let read = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let files: Vec<PathBuf> = read
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_workflow_file(p))
            .collect();
        (path.to_owned(), files)
    };
    files.sort();
    let file_name = |file: &Path| {
        file.file_name()
            .map_or_else(String::new, |f| f.to_string_lossy().into_owned())
    };
    let mut entries = Entries::new();
    for file in files {
        let stem = file
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let origin = file.strip_prefix(&dir).unwrap_or(&file).display().to_string();
        let mut entry = match engine.load(&file) {
            Ok(workflow) => SourceEntry {
                name: workflow.name().to_owned(),
                origin,
                nodes: workflow.nodes().len(),
                workflow: Some(workflow),
                problems: Vec::new(),
            },
            Err(e) => {
                let (name, nodes) = name_of(&file);
                SourceEntry {
                    name: name.unwrap_or(stem.clone()),
                    origin,
                    nodes,
                    workflow: None,
                    problems: e
                        .to_string()
                        .lines()
                        .map(str::to_owned)
                        .filter(|l| !l.is_empty())
                        .collect(),
                }
            }
        };
        if let Some(first) = entries.get(&entry.name) {
            // Two files, one name: the later one is listed under its file name.
            entry.problems.push(format!(
                "the name `{}` is taken by {}",
                entry.name,
                file_name(Path::new(&first.origin))
            ));
            entry.workflow = None;
            entry.name = stem;
            if entries.contains_key(&entry.name) {
                entry.name = file_name(&file);
            }
        }
        entries.insert(entry.name.clone(), entry);
    }
    Ok(entries)
}

/// The `name:` of a file that does not validate, if it can be read at all, and
/// how many nodes it lists, if it parses as YAML or JSON.
fn name_of(path: &Path) -> (Option<String>, usize) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return (None, 0);
    };
    let value: Option<serde_json::Value> = if path.extension().and_then(|e| e.to_str()) == Some("json") {
        serde_json::from_str(&text).ok()
    } else {
        serde_norway::from_str(&text).ok()
    };
    let nodes = value
        .as_ref()
        .and_then(|v| v.get("nodes")?.as_array().map(Vec::len))
        .unwrap_or(0);
    let name = value
        .or_else(|| yaml_name(&text))
        .and_then(|v| v.get("name")?.as_str().map(str::to_owned));
    (name, nodes)
}

/// A YAML file's top-level `name:` line, read without a YAML parser (the file
/// may be broken anywhere else).
fn yaml_name(text: &str) -> Option<serde_json::Value> {
    let line = text.lines().find(|l| l.starts_with("name:"))?;
    let name = line["name:".len()..].trim().trim_matches(|c| c == '"' || c == '\'');
    (!name.is_empty()).then(|| serde_json::json!({ "name": name }))
}
