//! The workflows a server runs: every `.yaml`, `.yml` and `.json` file of one
//! folder, validated when loaded. An invalid file is kept, with its problems,
//! and cannot be run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flow_engine::{Engine, Workflow};
use serde::Serialize;

/// One workflow file.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub file: PathBuf,
    pub workflow: Option<Arc<Workflow>>,
    pub problems: Vec<String>,
    /// How many nodes the file lists, valid or not (0 when it cannot be read).
    pub nodes: usize,
}

/// What `GET /api/v1/workflows` lists of one file.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkflowInfo {
    /// The workflow's name (the file's `name:`; its file name when unreadable).
    pub name: String,
    /// The file, relative to the workflows folder.
    pub file: String,
    /// How many nodes the file lists (also when it is invalid; 0 when it
    /// cannot be read as YAML or JSON at all).
    pub nodes: usize,
    /// The file's own `input:` (what a run gets when its body has none);
    /// `null` when the file is invalid.
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    /// The strategy kind of its `strategy:` (default `parallel`).
    pub strategy: String,
    /// Whether it can be run.
    pub valid: bool,
    /// Every problem of an invalid file, each with its place.
    pub problems: Vec<String>,
}

/// The folder's workflows by name.
#[derive(Debug, Default)]
pub struct Catalog {
    pub dir: PathBuf,
    pub entries: BTreeMap<String, Entry>,
}

fn is_workflow_file(path: &Path) -> bool {
    path.is_file() && matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"))
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

impl Catalog {
    /// Loads every workflow file of `dir` (not its subfolders), in file-name
    /// order. A folder that cannot be read is an error.
    pub fn load(engine: &Engine, dir: &Path) -> Result<Catalog, String> {
        let read = std::fs::read_dir(dir).map_err(|e| format!("--workflows {}: {e}", dir.display()))?;
        let mut files: Vec<PathBuf> = read
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_workflow_file(p))
            .collect();
        files.sort();
        let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
        for file in files {
            let stem = file
                .file_stem()
                .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
            let mut entry = match engine.load(&file) {
                Ok(workflow) => Entry {
                    name: workflow.name().to_owned(),
                    file: file.clone(),
                    nodes: workflow.nodes().len(),
                    workflow: Some(workflow),
                    problems: Vec::new(),
                },
                Err(e) => {
                    let (name, nodes) = name_of(&file);
                    Entry {
                        name: name.unwrap_or(stem.clone()),
                        file: file.clone(),
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
                    first
                        .file
                        .file_name()
                        .map_or_else(String::new, |f| f.to_string_lossy().into_owned())
                ));
                entry.workflow = None;
                entry.name = stem;
                if entries.contains_key(&entry.name) {
                    entry.name = file
                        .file_name()
                        .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
                }
            }
            entries.insert(entry.name.clone(), entry);
        }
        Ok(Catalog {
            dir: dir.to_owned(),
            entries,
        })
    }

    pub fn info(&self) -> Vec<WorkflowInfo> {
        self.entries
            .values()
            .map(|e| WorkflowInfo {
                name: e.name.clone(),
                file: e.file.strip_prefix(&self.dir).unwrap_or(&e.file).display().to_string(),
                nodes: e.nodes,
                input: e
                    .workflow
                    .as_ref()
                    .map_or(serde_json::Value::Null, |w| w.input().clone()),
                strategy: e
                    .workflow
                    .as_ref()
                    .and_then(|w| w.strategy().map(|s| s.kind.clone()))
                    .unwrap_or_else(|| "parallel".to_owned()),
                valid: e.workflow.is_some(),
                problems: e.problems.clone(),
            })
            .collect()
    }
}
