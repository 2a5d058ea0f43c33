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
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
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
    /// The name each file declares, as of its modification time: a scan
    /// reads again only the files that changed.
    names: Mutex<HashMap<PathBuf, Declared>>,
}

/// A file's modification time, and the name it declared then (`None`: it
/// does not read as a workflow).
type Declared = (Option<SystemTime>, Option<String>);

/// A workflow compiled from a file, with the file's modification time then.
type Compiled = (PathBuf, Option<SystemTime>, Arc<Workflow>);

impl FolderCatalog {
    /// The workflows of the folder at `path`.
    pub fn new(path: impl Into<PathBuf>) -> FolderCatalog {
        FolderCatalog {
            path: path.into(),
            compiled: Mutex::new(HashMap::new()),
            names: Mutex::new(HashMap::new()),
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
        let mut known = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        let mut found: Vec<(String, PathBuf)> = Vec::new();
        let mut seen: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            let Some(format) = Format::from_path(&path).filter(|_| path.is_file()) else {
                continue;
            };
            let stamp = modified(&path);
            let name = match known.get(&path) {
                Some((at, name)) if stamp.is_some() && *at == stamp => name.clone(),
                _ => {
                    let limits = flow_core::Limits::default();
                    let name = flow_core::read_file(&path, &limits)
                        .ok()
                        .and_then(|text| flow_core::parse_str(&text, format, &limits).ok())
                        .map(|spec| spec.name);
                    known.insert(path.clone(), (stamp, name.clone()));
                    name
                }
            };
            seen.insert(path.clone());
            if let Some(name) = name {
                found.push((name, path));
            }
        }
        known.retain(|path, _| seen.contains(path));
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
    /// The engine it is registered in, once built (for `estimate`, which
    /// compiles the child to plan it).
    engine: Arc<std::sync::OnceLock<std::sync::Weak<crate::engine::Inner>>>,
}

impl WorkflowKind {
    /// The kind, finding workflows in `catalog` (none: every name is unknown).
    pub fn new(catalog: Option<Arc<dyn Catalog>>) -> WorkflowKind {
        WorkflowKind {
            catalog,
            engine: Arc::default(),
        }
    }

    /// Where the engine that registers it says it is (see `estimate`).
    pub(crate) fn engine_cell(&self) -> Arc<std::sync::OnceLock<std::sync::Weak<crate::engine::Inner>>> {
        self.engine.clone()
    }
}

thread_local! {
    /// How deep `estimate` is in children planning children (a workflow
    /// that calls itself stops there).
    static PLANNING: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
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

    /// The child's own plan: its time under its own strategy, when that is
    /// known exactly (a range, a template name or an unknown workflow: not).
    fn estimate(&self, config: &Value) -> AttemptTime {
        let (Some(catalog), Some(Value::String(name))) = (&self.catalog, config.get("workflow")) else {
            return AttemptTime::Unknown;
        };
        let Some(engine) = self
            .engine
            .get()
            .and_then(std::sync::Weak::upgrade)
            .map(|inner| Engine { inner })
        else {
            return AttemptTime::Unknown;
        };
        if name.contains("{{") || PLANNING.get() >= engine.inner.max_depth {
            return AttemptTime::Unknown;
        }
        let Ok(Some(child)) = catalog.workflow(name, &engine) else {
            return AttemptTime::Unknown;
        };
        PLANNING.set(PLANNING.get() + 1);
        let plan = flow_core::Plan::new(&child, |i, node| match (node.for_each(), child.spec().nodes.get(i)) {
            (None, Some(spec)) => node.kind().estimate(&spec.config),
            _ => AttemptTime::Unknown,
        });
        PLANNING.set(PLANNING.get() - 1);
        let Ok(strategy) = engine.strategy_for(&child, &RunOptions::new()) else {
            return AttemptTime::Unknown;
        };
        let bounds = plan.bounds(crate::pace(&*strategy));
        match bounds.upper_ms {
            Some(upper) if upper == bounds.lower_ms => AttemptTime::Succeeds(upper),
            _ => AttemptTime::Unknown,
        }
    }

    fn runs_workflows(&self) -> bool {
        true
    }

    /// With a journal, the node waits for its child's end as for a signal:
    /// the run may park meanwhile.
    fn waits(&self) -> bool {
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
    /// The parent's signals, when it runs in this process: rung at the end.
    pub(crate) parent_bell: Option<crate::Signals>,
    pub(crate) depth: u32,
    /// Whether any child was started (a run without stays off the lock).
    any: AtomicBool,
    children: Mutex<HashMap<(usize, Option<usize>), String>>,
}

impl Family {
    pub(crate) fn new(
        engine: Engine,
        parent: Option<Parent>,
        depth: u32,
        parent_bell: Option<crate::Signals>,
    ) -> Family {
        Family {
            engine,
            parent,
            parent_bell,
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

impl Family {
    /// A child run ended: its `run_finished` commit wrote the signal that
    /// tells its parent (the journal does it in the same commit, so a parked
    /// parent is never left asleep). A parent unit that waits for it in this
    /// process hears of it at once, and the parent's bell is rung.
    pub(crate) fn ended(&self, run_id: &str) {
        if self.parent.is_none() {
            return;
        }
        self.engine.tell_waiting_parent(run_id);
        if let Some(bell) = &self.parent_bell {
            bell.ring();
        }
    }
}

/// A parent unit waiting in this process for child run `run_id`'s end (see
/// [`Engine::tell_waiting_parent`]): registered while the unit waits.
pub(crate) struct WaitingHere {
    engine: Engine,
    run_id: String,
    told: Arc<Told>,
}

#[derive(Default)]
pub(crate) struct Told {
    /// Ends told (a continued child ends again).
    ended: AtomicU32,
    bell: tokio::sync::Notify,
}

impl Drop for WaitingHere {
    fn drop(&mut self) {
        self.engine
            .inner
            .waiting_parents
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.run_id);
    }
}

impl Engine {
    /// Keeps a child run started on its own task cancellable by its parent
    /// ([`Engine::child_token`]) until it ends.
    pub(crate) fn watch_child(&self, handle: crate::RunHandle) {
        let run_id = handle.run_id().to_owned();
        let token = handle.cancel_token();
        self.inner
            .children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(run_id.clone(), token);
        let engine = self.clone();
        tokio::spawn(async move {
            if let Err(e) = handle.wait().await {
                tracing::warn!(error = %e, run_id, "a child run failed to run");
            }
            engine
                .inner
                .children
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&run_id);
            // It ended or parked: a parent unit waiting here looks again (a
            // parked child is waited for as a signal, and the parent may park).
            let waiting = engine
                .inner
                .waiting_parents
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(told) = waiting.get(&run_id) {
                told.bell.notify_one();
            }
        });
    }

    /// Registers a parent unit that waits here for child `run_id`'s end.
    fn wait_here(&self, run_id: &str) -> WaitingHere {
        let told = Arc::new(Told::default());
        self.inner
            .waiting_parents
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(run_id.to_owned(), told.clone());
        WaitingHere {
            engine: self.clone(),
            run_id: run_id.to_owned(),
            told,
        }
    }

    /// Tells the parent unit waiting here for child `run_id` that it ended;
    /// whether one was waiting.
    pub(crate) fn tell_waiting_parent(&self, run_id: &str) -> bool {
        let waiting = self
            .inner
            .waiting_parents
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match waiting.get(run_id) {
            Some(told) => {
                told.ended.fetch_add(1, Ordering::AcqRel);
                told.bell.notify_one();
                true
            }
            None => false,
        }
    }

    /// The cancel token of child run `run_id`, while it runs in this process.
    pub(crate) fn child_token(&self, run_id: &str) -> Option<tokio_util::sync::CancellationToken> {
        self.inner
            .children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(run_id)
            .cloned()
    }
}

/// The engine's side of one attempt of a `workflow` node (or of one item).
pub(crate) struct UnitChildren {
    pub(crate) shared: Arc<Shared>,
    pub(crate) node: usize,
    pub(crate) item: Option<usize>,
    /// The unit's waits: a journaled unit waits for its child's end as for
    /// the signal the child sends its parent when it ends.
    pub(crate) waits: Option<Arc<crate::waits::UnitWaits>>,
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
        // What is secret in the parent stays secret in the child (its input
        // may carry it): redacted in its reports, events and journal too.
        options.inherited_secrets = self.shared.redactor.values().cloned().collect();
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
        let Some(log) = &self.shared.journal else {
            // In memory: the child runs in this attempt's task, and lives as
            // long as the attempt waits for it.
            let token = self.shared.cancel.child_token();
            let _cancel_on_drop = token.clone().drop_guard();
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
        let (run_id, fresh) = match existing {
            Some(run_id) => (run_id, false),
            None => {
                let workflow = resolve()?;
                let run_id = crate::new_run_id();
                let token = self.shared.cancel.child_token();
                let mut options = self
                    .options(input, &token)
                    .run_id(run_id.clone())
                    .journal(writer.clone())
                    .idempotency_key(key);
                options.park = self.shared.parking;
                options.parent_bell = Some(self.shared.signals.clone());
                let handle = engine.start_recorded(&workflow, options).await.map_err(journal_error)?;
                engine.watch_child(handle);
                (run_id.to_string(), true)
            }
        };
        family.bind(self.node, self.item, &run_id);
        outcome(&self.wait_for(&run_id, fresh).await?)
    }
}

impl UnitChildren {
    /// Waits for child `run_id` to end (journaled): its report when it
    /// succeeded; a child found failed (or cancelled) that this attempt did
    /// not start is continued first, its failed nodes run again; one found
    /// interrupted is taken over. The child runs on its own task (it outlives
    /// this attempt when the run parks); its end sends this run the signal
    /// [`Parent::end_signal`], which this unit waits for as a `signal` node does.
    async fn wait_for(&self, run_id: &str, fresh: bool) -> Result<Report, NodeError> {
        let shared = &self.shared;
        let engine = &shared.family.engine;
        let Some(log) = &shared.journal else {
            return Err(NodeError::permanent("internal error: no journal"));
        };
        let Some(waits) = &self.waits else {
            return Err(NodeError::permanent("internal error: a workflow node without waits"));
        };
        let writer = log.writer();
        let journal = writer.journal();
        let parent = Parent {
            run_id: shared.run_id.to_string(),
            node: shared.workflow.nodes()[self.node].id().to_owned(),
            item: self.item,
        };
        let signal = parent.end_signal();
        let here = engine.wait_here(run_id);
        let mut continued = fresh;
        let mut began = false;
        let mut cancel_sent = false;
        loop {
            let row = journal.row(run_id).await.map_err(journal_error)?;
            let Some(row) = row else {
                return Err(NodeError::permanent(format!(
                    "child run {run_id} is bound but not in the journal"
                )));
            };
            let status = row.status_now(crate::journal::now_ms());
            let ended = matches!(status, RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled);
            if status == RunStatus::Succeeded || (ended && continued) || (ended && shared.cancel.is_cancelled()) {
                let stored = journal.load(run_id).await.map_err(journal_error)?;
                let recovered = stored.map(|s| flow_core::Recovered::fold(s.records.iter().map(|(_, r)| r)));
                return match recovered.and_then(|r| r.finished) {
                    Some(report) => Ok(report),
                    None => Err(NodeError::new(format!("child run {run_id} ended without its report"))),
                };
            }
            if (ended || status == RunStatus::Interrupted) && !shared.cancel.is_cancelled() {
                // Ours to continue: failed (its failed nodes again) or cut short.
                let options = ResumeOptions::new()
                    .retry_failed(ended)
                    .cancel_token(shared.cancel.child_token());
                match engine.resume(writer, run_id, options).await {
                    Ok(resumed) => {
                        engine.watch_child(resumed.handle);
                        continued = true;
                        continue;
                    }
                    // Another process took it first: it runs it; wait for its end.
                    Err(e) if status == RunStatus::Interrupted => {
                        tracing::debug!(run_id, error = %e, "a child run another process took");
                    }
                    Err(e) => {
                        return Err(NodeError::new(format!(
                            "child run {run_id} could not be continued: {e}"
                        )));
                    }
                }
            }
            if !began {
                let what = flow_core::Waiting {
                    child_run_id: Some(run_id.to_owned()),
                    ..flow_core::Waiting::signal(signal.clone(), None)
                };
                flow_core::Waits::begin(&**waits, what).await?;
                began = true;
            }
            // Told of its end here (a permit the bell keeps): look again.
            let runs_here = engine.child_token(run_id).is_some() || here.told.ended.load(Ordering::Acquire) > 0;
            tokio::select! {
                // The child runs here: its end is told here, no signal
                // written, and the unit is not a wait the run parks on (its
                // child is work under way in this process). A child that runs
                // elsewhere, or parked itself, is waited for as a signal.
                () = here.told.bell.notified(), if runs_here => {
                }
                taken = flow_core::Waits::next_signal(&**waits, &signal), if !runs_here => {
                    taken?;
                    // A wake-up: the child's row says whether it ended (a
                    // signal of an earlier end of a continued child is stale).
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                () = shared.cancel.cancelled(), if !cancel_sent => {
                    // The parent is cancelled: so is its child (when it runs
                    // here), whose end then wakes this unit.
                    match engine.child_token(run_id) {
                        Some(token) => {
                            token.cancel();
                            cancel_sent = true;
                        }
                        None => return Err(NodeError::permanent(format!("child run {run_id} left: the parent was cancelled"))),
                    }
                }
            }
        }
    }
}
