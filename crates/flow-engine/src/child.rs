//! Runs that start runs: the `workflow` node kind, the [`Catalog`] it finds
//! workflows in, and the engine's side of a child run ([`UnitChildren`]).
//!
//! A child is a run of its own (its own id, strategy, report and journal
//! records) whose report names its `parent`. With a journal, a unit's child
//! is bound to the idempotency key `child:<parent run>:<node>[:<item>]`, so
//! a retried attempt, a resumed parent or `--retry-failed` finds the same
//! child again: a child that succeeded gives its output without running, one
//! that failed continues with its failed nodes run again, one under way is
//! taken over. A child runs in the task of the unit that waits for it; a unit
//! that is dropped (the parent cancelled, failing fast, timed out) cancels
//! its child.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use flow_core::{
    AttemptTime, ChildRuns, ConfigProblem, Format, NodeCall, NodeError, NodeKind, Parent, RunStatus, Workflow,
    did_you_mean,
};
use serde_json::Value;

use crate::driver::Shared;
use crate::{Engine, Report, ResumeOptions, RunOptions};

/// How deep runs may nest by default: a run started by a `workflow` node of
/// a run nested this deep fails that node.
pub const DEFAULT_MAX_DEPTH: u32 = 16;

/// Where the `workflow` kind finds the workflows it runs, by name.
pub trait Catalog: Send + Sync + std::fmt::Debug + 'static {
    /// Every name it holds (for validation, and its "did you mean").
    fn names(&self) -> Vec<String>;

    /// The workflow named `name`, compiled with `engine`'s kinds and limits:
    /// `Ok(None)` when it holds no such name, `Err` when it holds one that
    /// does not compile (why).
    fn workflow(&self, name: &str, engine: &Engine) -> Result<Option<Arc<Workflow>>, String>;
}

/// Workflows an embedder registered, by their name.
#[derive(Debug, Default)]
pub struct RegisteredCatalog {
    workflows: RwLock<BTreeMap<String, Arc<Workflow>>>,
}

impl RegisteredCatalog {
    /// An empty catalog.
    pub fn new() -> RegisteredCatalog {
        RegisteredCatalog::default()
    }

    /// Adds `workflow` under its name (replacing one of the same name).
    pub fn register(&self, workflow: Arc<Workflow>) {
        self.workflows
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(workflow.name().to_owned(), workflow);
    }
}

impl Catalog for RegisteredCatalog {
    fn names(&self) -> Vec<String> {
        self.workflows
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    fn workflow(&self, name: &str, _engine: &Engine) -> Result<Option<Arc<Workflow>>, String> {
        Ok(self
            .workflows
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned())
    }
}

/// The workflow files of a folder (`.yaml`, `.yml`, `.json`), by the `name`
/// each declares: read again when asked (a file added or changed is seen),
/// compiled once per version of a file.
#[derive(Debug)]
pub struct FolderCatalog {
    path: PathBuf,
    compiled: Mutex<HashMap<String, Compiled>>,
}

/// A workflow compiled from a file, with the file's modification time then.
type Compiled = (PathBuf, Option<SystemTime>, Arc<Workflow>);

impl FolderCatalog {
    /// The workflows of the folder at `path`.
    pub fn new(path: impl Into<PathBuf>) -> FolderCatalog {
        FolderCatalog {
            path: path.into(),
            compiled: Mutex::new(HashMap::new()),
        }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every workflow file of the folder with the name it declares (files
    /// that do not read as a workflow are passed over).
    fn scan(&self) -> Vec<(String, PathBuf)> {
        let Ok(entries) = std::fs::read_dir(&self.path) else {
            return Vec::new();
        };
        let mut found: Vec<(String, PathBuf)> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| Format::from_path(p).is_some() && p.is_file())
            .filter_map(|p| {
                let limits = flow_core::Limits::default();
                let text = flow_core::read_file(&p, &limits).ok()?;
                let format = Format::from_path(&p)?;
                let spec = flow_core::parse_str(&text, format, &limits).ok()?;
                Some((spec.name, p))
            })
            .collect();
        found.sort();
        found
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Catalog for FolderCatalog {
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.scan().into_iter().map(|(name, _)| name).collect();
        names.dedup();
        names
    }

    fn workflow(&self, name: &str, engine: &Engine) -> Result<Option<Arc<Workflow>>, String> {
        let cached = self
            .compiled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned();
        if let Some((path, stamp, workflow)) = cached
            && stamp.is_some()
            && modified(&path) == stamp
        {
            return Ok(Some(workflow));
        }
        let Some((_, path)) = self.scan().into_iter().find(|(n, _)| n == name) else {
            return Ok(None);
        };
        let stamp = modified(&path);
        let workflow = engine
            .load(&path)
            .map_err(|e| format!("workflow `{name}` ({}) is invalid: {e}", path.display()))?;
        self.compiled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), (path, stamp, workflow.clone()));
        Ok(Some(workflow))
    }
}

/// `workflow`: runs another workflow as a child run and outputs the child's
/// `output`. Config: `workflow` (the name, a template), `input` (any JSON
/// whose strings are templates; default: the child's own input).
#[derive(Debug, Clone)]
pub struct WorkflowKind {
    catalog: Option<Arc<dyn Catalog>>,
}

impl WorkflowKind {
    /// The kind, finding workflows in `catalog` (none: every name is unknown).
    pub fn new(catalog: Option<Arc<dyn Catalog>>) -> WorkflowKind {
        WorkflowKind { catalog }
    }
}

/// Why `name` is not a workflow of `catalog`, with a "did you mean".
fn unknown(name: &str, catalog: Option<&Arc<dyn Catalog>>) -> String {
    let Some(catalog) = catalog else {
        return format!("no workflow `{name}`: this engine has no workflows to run (no catalog)");
    };
    let names = catalog.names();
    let hint = did_you_mean(name, names.iter().map(String::as_str))
        .map(|h| format!("; did you mean `{h}`?"))
        .unwrap_or_default();
    if names.is_empty() {
        format!("no workflow `{name}`: none is known here")
    } else {
        format!("no workflow `{name}`{hint} (known: {})", names.join(", "))
    }
}

#[async_trait::async_trait]
impl NodeKind for WorkflowKind {
    fn check(&self, config: &Value) -> Vec<ConfigProblem> {
        let mut problems = flow_nodes::config::unknown_fields(config, &["workflow", "input"]);
        match config.get("workflow") {
            None => problems.push(ConfigProblem::new(
                "workflow",
                "is required: the name of the workflow to run",
            )),
            Some(Value::String(name)) if name.contains("{{") => {}
            // Without a catalog (an engine that only reads stored runs, or
            // continues them) names are not checked: a new child fails then.
            Some(Value::String(name)) => {
                if let Some(catalog) = &self.catalog
                    && !catalog.names().iter().any(|n| n == name)
                {
                    problems.push(ConfigProblem::new("workflow", unknown(name, Some(catalog))));
                }
            }
            Some(other) => problems.push(ConfigProblem::new(
                "workflow",
                format!("must be a workflow's name, not {other}"),
            )),
        }
        problems
    }

    fn estimate(&self, _config: &Value) -> AttemptTime {
        AttemptTime::Unknown
    }

    fn runs_workflows(&self) -> bool {
        true
    }

    async fn run(&self, call: NodeCall) -> Result<Value, NodeError> {
        let name = match call.config.get("workflow") {
            Some(Value::String(name)) => name.clone(),
            _ => return Err(NodeError::permanent("config.workflow must be a workflow's name")),
        };
        let Some(children) = &call.children else {
            return Err(NodeError::permanent(
                "internal error: the `workflow` kind ran without the engine's child runs",
            ));
        };
        let input = call.config.get("input").cloned();
        children.run_child(&name, input).await
    }
}

/// A run's place among runs that start runs.
pub(crate) struct Family {
    engine: Engine,
    pub(crate) parent: Option<Parent>,
    pub(crate) depth: u32,
    /// Whether any child was started (a run without stays off the lock).
    any: AtomicBool,
    children: Mutex<HashMap<(usize, Option<usize>), String>>,
}

impl Family {
    pub(crate) fn new(engine: Engine, parent: Option<Parent>, depth: u32) -> Family {
        Family {
            engine,
            parent,
            depth,
            any: AtomicBool::new(false),
            children: Mutex::new(HashMap::new()),
        }
    }

    #[inline]
    pub(crate) fn has_children(&self) -> bool {
        self.any.load(Ordering::Relaxed)
    }

    /// The child run of unit (`node`, `item`), once it has one.
    pub(crate) fn child_of(&self, node: usize, item: Option<usize>) -> Option<String> {
        self.children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(node, item))
            .cloned()
    }

    fn bind(&self, node: usize, item: Option<usize>, run_id: &str) {
        self.children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((node, item), run_id.to_owned());
        self.any.store(true, Ordering::Relaxed);
    }
}

/// The engine's side of one attempt of a `workflow` node (or of one item).
pub(crate) struct UnitChildren {
    pub(crate) shared: Arc<Shared>,
    pub(crate) node: usize,
    pub(crate) item: Option<usize>,
}

impl UnitChildren {
    fn key(&self) -> String {
        let node = self.shared.workflow.nodes()[self.node].id();
        match self.item {
            None => format!("child:{}:{node}", self.shared.run_id),
            Some(item) => format!("child:{}:{node}:{item}", self.shared.run_id),
        }
    }

    fn options(&self, input: Option<Value>, token: &tokio_util::sync::CancellationToken) -> RunOptions {
        let mut options = RunOptions::new().cancel_token(token.clone());
        if let Some(input) = input {
            options = options.input(input);
        }
        options.parent = Some(Parent {
            run_id: self.shared.run_id.to_string(),
            node: self.shared.workflow.nodes()[self.node].id().to_owned(),
            item: self.item,
        });
        options.depth = self.shared.family.depth + 1;
        options
    }
}

/// A child's report as the parent node's result: its output, or an error
/// that names the child and what failed in it.
fn outcome(report: &Report) -> Result<Value, NodeError> {
    match report.status {
        RunStatus::Succeeded => Ok(report.output.clone()),
        status => {
            let failed = report
                .nodes
                .iter()
                .find(|(_, n)| n.status == flow_core::NodeStatus::Failed);
            let why = match (failed, &report.output_error) {
                (_, Some(error)) => format!("its output: {error}"),
                (Some((id, node)), None) => {
                    format!("node `{id}`: {}", node.error.as_deref().unwrap_or("failed"))
                }
                (None, None) => format!("it ended {status}"),
            };
            // A failed child is worth a retry (the node's `retry:` continues
            // the same child, its failed nodes run again); a cancelled one
            // was stopped on purpose.
            if status == RunStatus::Cancelled {
                Err(NodeError::permanent(format!(
                    "child run {} was cancelled: {why}",
                    report.run_id
                )))
            } else {
                Err(NodeError::new(format!("child run {} failed: {why}", report.run_id)))
            }
        }
    }
}

fn journal_error(e: impl std::fmt::Display) -> NodeError {
    NodeError::new(format!("the child run could not be journaled: {e}"))
}

#[async_trait::async_trait]
impl ChildRuns for UnitChildren {
    async fn run_child(&self, name: &str, input: Option<Value>) -> Result<Value, NodeError> {
        let family = &self.shared.family;
        let engine = &family.engine;
        let max = engine.inner.max_depth;
        if family.depth + 1 > max {
            return Err(NodeError::permanent(format!(
                "workflow `{name}` would run nested {} deep, beyond the limit of {max} runs (does a workflow call itself with no end?)",
                family.depth + 1
            )));
        }
        let catalog = engine.inner.catalog.as_ref();
        let resolve = || match catalog.map(|c| c.workflow(name, engine)) {
            Some(Ok(Some(workflow))) => Ok(workflow),
            Some(Err(why)) => Err(NodeError::permanent(why)),
            _ => Err(NodeError::permanent(unknown(name, catalog))),
        };
        // The child lives as long as this attempt waits for it: a dropped
        // attempt (the parent cancelled, failing fast) cancels it.
        let token = self.shared.cancel.child_token();
        let _cancel_on_drop = token.clone().drop_guard();
        let Some(log) = &self.shared.journal else {
            let workflow = resolve()?;
            let run_id = crate::new_run_id();
            family.bind(self.node, self.item, &run_id);
            let options = self.options(input, &token).run_id(run_id);
            let report = engine
                .run(&workflow, options)
                .await
                .map_err(|e| NodeError::permanent(format!("child run of `{name}` could not start: {e}")))?;
            return outcome(&report);
        };
        let writer = log.writer();
        let key = self.key();
        let existing = writer.journal().bound(&key).await.map_err(journal_error)?;
        let report = match existing {
            None => {
                let workflow = resolve()?;
                let run_id = crate::new_run_id();
                family.bind(self.node, self.item, &run_id);
                let options = self
                    .options(input, &token)
                    .run_id(run_id)
                    .journal(writer.clone())
                    .idempotency_key(key);
                engine.run(&workflow, options).await.map_err(journal_error)?
            }
            Some(run_id) => {
                family.bind(self.node, self.item, &run_id);
                self.continue_child(&run_id, token.clone()).await?
            }
        };
        outcome(&report)
    }
}

impl UnitChildren {
    /// The child this unit started before (an earlier attempt, or before the
    /// parent was resumed): its report when it succeeded; otherwise it is
    /// taken up again (a failed one with its failed nodes run again) and
    /// waited for. A child another live process holds (a server resuming
    /// it) is watched until it ends.
    async fn continue_child(
        &self,
        run_id: &str,
        token: tokio_util::sync::CancellationToken,
    ) -> Result<Report, NodeError> {
        let engine = &self.shared.family.engine;
        let Some(log) = &self.shared.journal else {
            return Err(NodeError::permanent("internal error: no journal"));
        };
        let writer = log.writer();
        let journal = writer.journal();
        let mut retried = false;
        loop {
            let row = journal.row(run_id).await.map_err(journal_error)?;
            let Some(row) = row else {
                return Err(NodeError::permanent(format!(
                    "child run {run_id} is bound but not in the journal"
                )));
            };
            let status = row.status_now(crate::journal::now_ms());
            let finished = matches!(status, RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled);
            if status == RunStatus::Succeeded || (finished && retried) {
                let stored = journal.load(run_id).await.map_err(journal_error)?;
                let recovered = stored.map(|s| flow_core::Recovered::fold(s.records.iter().map(|(_, r)| r)));
                if let Some(report) = recovered.and_then(|r| r.finished) {
                    return Ok(report);
                }
            }
            let retry_failed = finished;
            let options = ResumeOptions::new()
                .retry_failed(retry_failed)
                .cancel_token(token.clone());
            match engine.resume(writer, run_id, options).await {
                Ok(resumed) => {
                    return resumed
                        .handle
                        .wait()
                        .await
                        .map_err(|e| NodeError::new(format!("child run {run_id}: {e}")));
                }
                // Held by another live process: it runs the child; wait for its end.
                Err(_) if status == RunStatus::Running || status == RunStatus::Waiting => {
                    retried = true;
                    tokio::select! {
                        () = token.cancelled() => {
                            return Err(NodeError::permanent(format!("child run {run_id} was left: the parent was cancelled")));
                        }
                        () = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
                    }
                }
                Err(e) => {
                    return Err(NodeError::new(format!(
                        "child run {run_id} could not be continued: {e}"
                    )));
                }
            }
        }
    }
}
