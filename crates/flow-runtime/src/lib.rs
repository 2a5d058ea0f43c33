//! The runtime of **flow**: the one place that starts journaled runs, keeps
//! track of those this process drives, looks runs up (live or stored), lists,
//! cancels, retries and resumes them. Front ends (`flow serve`'s handlers
//! today; the CLI, schedules, webhooks and the `workflow` node kind next) call
//! it instead of each folding records, compiling stored documents and tracking
//! live runs on its own.
//!
//! A [`Runtime`] is built from an [`Engine`] and a journal [`Writer`], and
//! finds workflows by name in a [`WorkflowSource`] (a [`Folder`] of files, one
//! file, or workflows an embedder [`Registered`]); an
//! [`Observer`] of the front end's own (metrics, logs) hears of each run's
//! start and end. Errors are typed ([`Error`]): a front end chooses its answer
//! (404, 409, 503, exit 2) by the variant, never by the message.
//!
//! ```
//! # async fn demo(engine: flow_engine::Engine, writer: flow_engine::journal::Writer,
//! #               workflow: std::sync::Arc<flow_engine::Workflow>) -> Result<(), flow_runtime::Error> {
//! use std::sync::Arc;
//! use flow_runtime::{Runtime, Submit, Submitted};
//!
//! let runtime = Arc::new(Runtime::new(engine, writer));
//! let submit = Submit { idempotency_key: Some("order-1234".into()), ..Submit::default() };
//! match runtime.submit(&workflow, submit).await? {
//!     Submitted::Started { run_id, .. } => println!("started {run_id}"),
//!     Submitted::Replayed { run_id } => println!("already started as {run_id}"),
//! }
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod events;
mod history;
mod signals;
mod source;

pub use history::{History, Measured};
pub use source::{Entries, Folder, Registered, SourceEntry, WorkflowSource};

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use flow_core::{Record, Recovered, Report, RunStatus, StrategySpec};
use flow_engine::journal::{Journal, RunFilter, RunRow, Writer, now_ms};
use flow_engine::{Engine, ResumeError, ResumeOptions, RunHandle, RunOptions, Workflow};
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Why the runtime could not do what it was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No run has that id.
    #[error("no run `{0}`")]
    RunNotFound(String),
    /// The source has no workflow of that name.
    #[error("no workflow `{name}`{}", .did_you_mean.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    WorkflowNotFound {
        /// The name asked for.
        name: String,
        /// The closest name the source has, when one is close.
        did_you_mean: Option<String>,
    },
    /// The workflow's file is invalid: it cannot run.
    #[error("workflow `{name}` is invalid and cannot run: {}", .problems.join("; "))]
    WorkflowInvalid {
        /// Its name.
        name: String,
        /// Its problems, each with its place.
        problems: Vec<String>,
    },
    /// The run is not under way (it finished, or it is interrupted): it
    /// cannot be cancelled.
    #[error("run `{run_id}` is {status}: only a run under way can be cancelled")]
    NotUnderWay {
        /// The run.
        run_id: String,
        /// Its status now.
        status: RunStatus,
    },
    /// The run has ended: no signal can reach it.
    #[error("run `{run_id}` has ended ({status}): no signal can reach it")]
    RunEnded {
        /// The run.
        run_id: String,
        /// How it ended.
        status: RunStatus,
    },
    /// A signal's payload does not match the schema of a node that takes it.
    #[error("signal `{name}` refused: its payload does not match the schema of node `{node}`: {reason}")]
    SignalRefused {
        /// The signal's name.
        name: String,
        /// The `signal` node whose schema refused it.
        node: String,
        /// What the schema says is wrong.
        reason: String,
    },
    /// The run is still under way here: it cannot be retried yet.
    #[error("run `{0}` is still running")]
    StillRunning(String),
    /// An idempotency key was sent again with another input or strategy than
    /// its run started with.
    #[error("idempotency key `{key}` was used for run `{run_id}` with another input or strategy")]
    KeyReused {
        /// The key.
        key: String,
        /// The run it is bound to.
        run_id: String,
    },
    /// The runtime is stopping: it starts no new runs.
    #[error("the runtime is stopping: it takes no new runs")]
    Stopping,
    /// What was asked is malformed (an invalid strategy, say).
    #[error("{0}")]
    BadInput(String),
    /// The run cannot be resumed or retried.
    #[error(transparent)]
    Resume(ResumeError),
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] flow_engine::journal::Error),
    /// A stored run cannot be read back (its workflow document does not
    /// compile here).
    #[error("{0}")]
    Unusable(String),
    /// The engine refused the run for another reason.
    #[error(transparent)]
    Engine(flow_engine::Error),
}

impl From<flow_engine::Error> for Error {
    fn from(e: flow_engine::Error) -> Self {
        match e {
            flow_engine::Error::Resume(e) => Error::Resume(e),
            flow_engine::Error::Journal(e) => Error::Journal(e),
            other => Error::Engine(other),
        }
    }
}

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A run this process drives: how to cancel it, and its report once it ends.
#[derive(Debug, Clone)]
pub struct Live {
    /// Cancels the run.
    pub cancel: CancellationToken,
    /// Its signals' bell: rung when one was sent to it.
    pub signals: flow_engine::Signals,
    /// `None` while the run goes on, its report once it ended.
    pub done: watch::Receiver<Option<Arc<Report>>>,
}

impl Live {
    /// The report, once the run ends within `wait`; `None` when it did not,
    /// or when `stop` fired first.
    pub async fn wait(&self, wait: Duration, stop: &CancellationToken) -> Option<Arc<Report>> {
        let mut done = self.done.clone();
        let ended = tokio::select! {
            ended = tokio::time::timeout(wait, done.wait_for(Option::is_some)) => ended.ok(),
            () = stop.cancelled() => None,
        };
        match ended {
            Some(Ok(report)) => report.clone(),
            _ => None,
        }
    }
}

/// Hears of the runs a [`Runtime`] drives: a front end's metrics and logs.
/// Every method has a default that does nothing.
pub trait Observer: Send + Sync + 'static {
    /// A run of `workflow` started (or was taken over) here.
    fn started(&self, workflow: &str, run_id: &str) {
        let _ = (workflow, run_id);
    }
    /// A run ended with `report`, `elapsed` after this process took it.
    fn finished(&self, workflow: &str, report: &Report, elapsed: Duration) {
        let _ = (workflow, report, elapsed);
    }
    /// A run ended without a report (its driver failed).
    fn failed(&self, workflow: &str, run_id: &str, error: &flow_engine::Error) {
        let _ = (workflow, run_id, error);
    }
    /// A run was parked (every node under way waits): this process holds it
    /// no more; it is woken when due, here or by another process.
    fn parked(&self, workflow: &str, run_id: &str) {
        let _ = (workflow, run_id);
    }
}

struct Quiet;
impl Observer for Quiet {}

/// What to start: the run's input (the workflow's own `input:` when `None`),
/// a strategy in place of the workflow's, and an idempotency key (of the
/// workflow's submissions: the same key gives the same run).
#[derive(Debug, Clone, Default)]
pub struct Submit {
    /// The run's input.
    pub input: Option<Value>,
    /// A strategy in place of the workflow's own.
    pub strategy: Option<StrategySpec>,
    /// The submission's key: a second submit with it finds the first run.
    pub idempotency_key: Option<String>,
}

/// A keyed submission: its key, scoped to the workflow, and what a replay of
/// it must ask for.
struct Keyed {
    key: String,
    scoped: String,
    input: Value,
    strategy: Option<StrategySpec>,
}

/// What [`Runtime::start_with`] did.
#[derive(Debug)]
pub enum Started {
    /// A new run, recorded in the journal: its handle, for the caller to drive.
    New(RunHandle),
    /// The key was bound already: the run it was bound to.
    Replayed {
        /// That run's id.
        run_id: String,
    },
}

/// What a submit did.
#[derive(Debug)]
pub enum Submitted {
    /// A new run, recorded in the journal and under way.
    Started {
        /// Its id.
        run_id: String,
        /// Its handle here.
        live: Live,
    },
    /// The key was bound already: the run it was bound to.
    Replayed {
        /// That run's id.
        run_id: String,
    },
}

/// A run as the journal has it now, with its report (the final one, or one
/// rebuilt from its records) and its workflow when it could be compiled.
#[derive(Debug)]
pub struct RunView {
    /// Its row.
    pub row: RunRow,
    /// Its report.
    pub report: Report,
    /// The workflow it runs (compiled from its stored document).
    pub workflow: Option<Arc<Workflow>>,
}

/// The read side of the runtime: runs as the journal has them, for front ends
/// that only look (`flow runs`) as for those that also drive runs.
pub struct Runs {
    engine: Engine,
    journal: Arc<dyn Journal>,
    /// Workflows compiled from journaled documents, by document hash.
    documents: Mutex<HashMap<String, Arc<Workflow>>>,
}

impl std::fmt::Debug for Runs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runs")
            .field("journal", &self.journal.target())
            .finish_non_exhaustive()
    }
}

/// What a list shows of an unfinished run, read from its records: when its
/// last record was written (ms from its start) and its nodes by status
/// (`{"succeeded": 1, "running": 1, "pending": 1}`).
#[derive(Debug, Clone)]
pub struct Progress {
    /// The latest offset any record names.
    pub last_ms: f64,
    /// Nodes by status.
    pub counts: Value,
}

impl Runs {
    /// The runs of `journal`, read with `engine`'s node kinds and limits.
    pub fn new(engine: Engine, journal: Arc<dyn Journal>) -> Runs {
        Runs {
            engine,
            journal,
            documents: Mutex::new(HashMap::new()),
        }
    }

    /// The journal.
    pub fn journal(&self) -> &Arc<dyn Journal> {
        &self.journal
    }

    /// The workflow a journaled run started with, compiled once per document.
    ///
    /// # Errors
    ///
    /// [`Error::Unusable`] when the document no longer reads or compiles.
    pub fn stored_workflow(&self, recovered: &Recovered) -> Result<Arc<Workflow>> {
        if let Some(w) = self
            .documents
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&recovered.hash)
        {
            return Ok(w.clone());
        }
        let workflow = self
            .engine
            .compile_stored(&recovered.document)
            .map(Arc::new)
            .map_err(|e| Error::Unusable(format!("the run: {e}")))?;
        let mut documents = self.documents.lock().unwrap_or_else(PoisonError::into_inner);
        if documents.len() > DOCUMENTS {
            documents.clear();
        }
        documents.insert(recovered.hash.clone(), workflow.clone());
        Ok(workflow)
    }

    /// A run as the journal has it now: the final report of a finished run;
    /// for one under way, nodes not settled yet are `pending` or `running`.
    ///
    /// # Errors
    ///
    /// [`Error::RunNotFound`], [`Error::Unusable`], [`Error::Journal`].
    pub async fn lookup(&self, run_id: &str) -> Result<RunView> {
        let stored = self
            .journal()
            .load(run_id)
            .await?
            .ok_or_else(|| Error::RunNotFound(run_id.to_owned()))?;
        let recovered = Recovered::fold(stored.records.iter().map(|(_, r)| r));
        let workflow = self.stored_workflow(&recovered).ok();
        if let Some(report) = &recovered.finished {
            return Ok(RunView {
                row: stored.row,
                report: report.clone(),
                workflow,
            });
        }
        let Some(workflow) = workflow else {
            return Err(Error::Unusable(format!("run `{run_id}`: its workflow cannot be read")));
        };
        let report = self.engine.stored_report(run_id, &stored.row, &recovered, &workflow);
        Ok(RunView {
            row: stored.row,
            report,
            workflow: Some(workflow),
        })
    }

    /// Runs newest first: `filter` as [`Journal::list`] takes it, where
    /// `running` and `interrupted` are told apart by their owner's liveness
    /// now. At most `filter.limit` (0: all).
    ///
    /// # Errors
    ///
    /// [`Error::Journal`].
    pub async fn list(&self, filter: &RunFilter) -> Result<Vec<RunRow>> {
        if let Some(w) = &filter.workflow
            && w.chars().any(char::is_control)
        {
            return Err(Error::BadInput("workflow: a name holds no control characters".into()));
        }
        if let Some((_, id)) = &filter.before
            && id.chars().any(char::is_control)
        {
            return Err(Error::BadInput("cursor: not a cursor this journal gave".into()));
        }
        let live_filter = matches!(filter.status, Some(RunStatus::Running | RunStatus::Interrupted));
        let asked = RunFilter {
            limit: if live_filter { 0 } else { filter.limit },
            ..filter.clone()
        };
        let rows = self.journal.list(&asked).await?;
        let now = now_ms();
        let limit = if filter.limit == 0 { usize::MAX } else { filter.limit };
        Ok(rows
            .into_iter()
            .filter(|r| !live_filter || filter.status == Some(r.status_now(now)))
            .take(limit)
            .collect())
    }

    /// The ids of runs a full id or a prefix of one names (as git takes a
    /// short hash), at most `limit`; the id itself first when it is whole.
    ///
    /// # Errors
    ///
    /// [`Error::Journal`].
    pub async fn resolve(&self, prefix: &str, limit: usize) -> Result<Vec<String>> {
        Ok(self.journal.resolve(prefix, limit).await?)
    }

    /// How far an unfinished run got, from its records; `None` when it cannot
    /// be read.
    pub async fn progress(&self, run_id: &str) -> Option<Progress> {
        let stored = self.journal.load(run_id).await.ok()??;
        let recovered = Recovered::fold(stored.records.iter().map(|(_, r)| r));
        let workflow = self.stored_workflow(&recovered).ok()?;
        let settled: HashMap<&str, &str> = recovered
            .settled
            .iter()
            .map(|(id, node)| (id.as_str(), node.status.as_str()))
            .collect();
        let started: std::collections::HashSet<&str> = recovered.in_flight.keys().map(|(id, _)| id.as_str()).collect();
        let mut counts = serde_json::Map::new();
        for node in workflow.nodes() {
            let status = match settled.get(node.id()) {
                Some(status) => status,
                None if started.contains(node.id()) => "running",
                None => "pending",
            };
            let slot = counts.entry(status).or_insert(Value::from(0));
            *slot = Value::from(slot.as_u64().unwrap_or(0) + 1);
        }
        Some(Progress {
            last_ms: recovered.last_ms,
            counts: Value::Object(counts),
        })
    }
}

/// The runs of one engine and journal. See the crate's documentation.
pub struct Runtime {
    engine: Engine,
    writer: Writer,
    runs: Runs,
    live: Mutex<HashMap<String, Live>>,
    stopping: CancellationToken,
    observer: Arc<dyn Observer>,
    source: Arc<dyn WorkflowSource>,
    /// Runs that cannot be resumed here (their document does not compile):
    /// not tried again.
    unusable: Mutex<std::collections::HashSet<String>>,
    /// Whether runs are parked when they wait.
    parking: bool,
    /// Rung when a parked run may have become due (a signal was sent to it).
    due: tokio::sync::Notify,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("journal", &self.writer.journal().target())
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

/// At most this many compiled stored documents are kept.
const DOCUMENTS: usize = 256;

impl Runtime {
    /// A runtime over `engine` whose runs are journaled by `writer`.
    pub fn new(engine: Engine, writer: Writer) -> Runtime {
        Runtime {
            runs: Runs::new(engine.clone(), writer.journal().clone()),
            engine,
            writer,
            live: Mutex::new(HashMap::new()),
            stopping: CancellationToken::new(),
            observer: Arc::new(Quiet),
            source: Arc::new(Registered::new()),
            unusable: Mutex::new(std::collections::HashSet::new()),
            parking: false,
            due: tokio::sync::Notify::new(),
        }
    }

    /// The same runtime, parking the runs it drives when every node under
    /// way waits (`wait`, `signal`): they hold no memory here until due.
    /// Wake them with [`Runtime::keep_waking`] (here or in another process
    /// on the journal).
    pub fn with_parking(mut self) -> Runtime {
        self.parking = true;
        self
    }

    /// The same runtime, finding workflows by name in `source` (without one:
    /// none, until registered through [`Registered`]).
    pub fn with_source(mut self, source: Arc<dyn WorkflowSource>) -> Runtime {
        self.source = source;
        self
    }

    /// Where workflows are found by name.
    pub fn source(&self) -> &Arc<dyn WorkflowSource> {
        &self.source
    }

    /// The workflow named `name` in the source, ready to run.
    ///
    /// # Errors
    ///
    /// [`Error::WorkflowNotFound`] (with the closest name),
    /// [`Error::WorkflowInvalid`] (with its problems).
    pub fn workflow(&self, name: &str) -> Result<Arc<Workflow>> {
        let entries = self.source.entries();
        let Some(entry) = entries.get(name) else {
            return Err(Error::WorkflowNotFound {
                name: name.to_owned(),
                did_you_mean: flow_core::did_you_mean(name, entries.keys().map(String::as_str)).map(str::to_owned),
            });
        };
        entry.workflow.clone().ok_or_else(|| Error::WorkflowInvalid {
            name: name.to_owned(),
            problems: entry.problems.clone(),
        })
    }

    /// Starts a run of the source's workflow `name`, as [`Runtime::submit`].
    ///
    /// # Errors
    ///
    /// As [`Runtime::workflow`] and [`Runtime::submit`].
    pub async fn submit_named(self: &Arc<Self>, name: &str, submit: Submit) -> Result<Submitted> {
        let workflow = self.workflow(name)?;
        self.submit(&workflow, submit).await
    }

    /// The same runtime, telling `observer` of each run's start and end.
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Runtime {
        self.observer = observer;
        self
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The journal's writer.
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// The journal.
    pub fn journal(&self) -> &Arc<dyn Journal> {
        self.writer.journal()
    }

    /// Fired when the runtime stops taking new runs ([`Runtime::stop`]).
    pub fn stopping(&self) -> &CancellationToken {
        &self.stopping
    }

    /// Stops taking new runs; those under way go on.
    pub fn stop(&self) {
        self.stopping.cancel();
    }

    /// The run `run_id`, if this process drives it.
    pub fn live(&self, run_id: &str) -> Option<Live> {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(run_id)
            .cloned()
    }

    /// How many runs this process drives now.
    pub fn in_flight(&self) -> usize {
        self.live.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Follows a started run: keeps it cancellable while it goes on, tells the
    /// observer, and publishes its report when it ends.
    pub fn track(self: &Arc<Self>, workflow: &str, handle: RunHandle) -> Live {
        let (tx, rx) = watch::channel(None);
        let live = Live {
            cancel: handle.cancel_token(),
            signals: handle.signals().clone(),
            done: rx,
        };
        let run_id = handle.run_id().to_owned();
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(run_id.clone(), live.clone());
        self.observer.started(workflow, &run_id);
        let workflow = workflow.to_owned();
        let runtime = self.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            match handle.wait().await {
                Ok(report) if report.status == RunStatus::Waiting => {
                    runtime.observer.parked(&workflow, &run_id);
                    // Its timer may be the earliest now.
                    runtime.due.notify_one();
                    let _ = tx.send(Some(Arc::new(report)));
                }
                Ok(report) => {
                    runtime.observer.finished(&workflow, &report, started.elapsed());
                    let _ = tx.send(Some(Arc::new(report)));
                }
                Err(e) => runtime.observer.failed(&workflow, &run_id, &e),
            }
            runtime
                .live
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&run_id);
        });
        live
    }

    /// Starts a run of `workflow`: recorded in the journal before this returns
    /// (its id finds it at once), then driven here. With an idempotency key
    /// that a submit of this workflow bound already, starts nothing and names
    /// that run.
    ///
    /// # Errors
    ///
    /// [`Error::Stopping`], [`Error::BadInput`] for a strategy that does not
    /// build, [`Error::Journal`].
    pub async fn submit(self: &Arc<Self>, workflow: &Arc<Workflow>, submit: Submit) -> Result<Submitted> {
        match self.start_with(workflow, submit, RunOptions::new()).await? {
            Started::Replayed { run_id } => Ok(Submitted::Replayed { run_id }),
            Started::New(handle) => {
                let run_id = handle.run_id().to_owned();
                let live = self.track(workflow.name(), handle);
                Ok(Submitted::Started { run_id, live })
            }
        }
    }

    /// Starts a run as [`Runtime::submit`] does, with `options` of the front
    /// end's own (an event subscription, a cancellation token), for a front
    /// end that drives the run's handle itself (`flow run --journal`): the run
    /// is not tracked here. `options`' journal, input, strategy and run id are
    /// the runtime's and `submit`'s.
    ///
    /// # Errors
    ///
    /// As [`Runtime::submit`].
    pub async fn start_with(&self, workflow: &Arc<Workflow>, submit: Submit, options: RunOptions) -> Result<Started> {
        if self.stopping.is_cancelled() {
            return Err(Error::Stopping);
        }
        let Submit {
            input,
            strategy,
            idempotency_key,
        } = submit;
        if let Some(spec) = &strategy {
            self.engine
                .build_strategy(spec)
                .map_err(|e| Error::BadInput(e.to_string().replace('\n', "; ")))?;
        }
        // What a replay of the key must match: kept only when there is a key,
        // so a plain submit copies nothing.
        let keyed = idempotency_key.map(|key| Keyed {
            scoped: format!("{}\n{key}", workflow.name()),
            key,
            input: input.clone().unwrap_or_else(|| workflow.input().clone()),
            strategy: strategy.clone(),
        });
        let mut options = options.journal(self.writer.clone());
        if self.parking {
            options = options.park_when_waiting();
        }
        if let Some(input) = input {
            options = options.input(input);
        }
        if let Some(spec) = strategy {
            options = options.strategy_spec(spec);
        }
        if let Some(keyed) = &keyed {
            if let Some(existing) = self.journal().bound(&keyed.scoped).await? {
                return self.replay(keyed, existing).await;
            }
            // Bound in the commit that creates the run: never seen without it.
            options = options.idempotency_key(keyed.scoped.clone());
        }
        let started = self
            .engine
            .start_recorded(workflow, options.run_id(flow_engine::new_run_id()))
            .await;
        let handle = match (started, &keyed) {
            (Ok(handle), _) => handle,
            (Err(flow_engine::Error::Journal(flow_engine::journal::Error::Lost { .. })), Some(keyed)) => {
                // Another submit bound the key between the look-up and the commit.
                let Some(existing) = self.journal().bound(&keyed.scoped).await? else {
                    return Err(Error::Unusable(format!(
                        "idempotency key `{}`: the run was refused and the key is bound to none",
                        keyed.key
                    )));
                };
                return self.replay(keyed, existing).await;
            }
            (Err(flow_engine::Error::Journal(e)), _) => return Err(Error::Journal(e)),
            (Err(other), _) => return Err(Error::BadInput(other.to_string())),
        };
        Ok(Started::New(handle))
    }

    /// The key's run, when the replay asks for what it was started with: the
    /// same input and strategy (as Stripe refuses a key reused with another
    /// body).
    async fn replay(&self, keyed: &Keyed, run_id: String) -> Result<Started> {
        if let Some(Record::RunStarted { input, strategy, .. }) = self.journal().first_record(&run_id).await? {
            let same_strategy = serde_json::to_value(&strategy).ok() == serde_json::to_value(&keyed.strategy).ok();
            if input != keyed.input || !same_strategy {
                return Err(Error::KeyReused {
                    key: keyed.key.clone(),
                    run_id,
                });
            }
        }
        Ok(Started::Replayed { run_id })
    }

    /// The read side: runs as the journal has them.
    pub fn runs(&self) -> &Runs {
        &self.runs
    }

    /// See [`Runs::lookup`].
    ///
    /// # Errors
    ///
    /// As [`Runs::lookup`].
    pub async fn lookup(&self, run_id: &str) -> Result<RunView> {
        self.runs.lookup(run_id).await
    }

    /// See [`Runs::list`].
    ///
    /// # Errors
    ///
    /// As [`Runs::list`].
    pub async fn list(&self, filter: &RunFilter) -> Result<Vec<RunRow>> {
        self.runs.list(filter).await
    }

    /// Cancels a run this process drives.
    ///
    /// # Errors
    ///
    /// [`Error::NotUnderWay`] for a run that is not (with its status),
    /// [`Error::RunNotFound`].
    pub async fn cancel(self: &Arc<Self>, run_id: &str) -> Result<()> {
        if let Some(live) = self.live(run_id) {
            live.cancel.cancel();
            return Ok(());
        }
        let view = self.lookup(run_id).await?;
        if view.row.status == RunStatus::Waiting {
            // Parked: taken up here, cancelled before anything goes on (its
            // waiting nodes are `cancelled`).
            let cancelled = CancellationToken::new();
            cancelled.cancel();
            match self
                .take_over(run_id, ResumeOptions::new().cancel_token(cancelled))
                .await
            {
                Ok(_) => return Ok(()),
                Err(Error::Resume(ResumeError::TakenOver { .. })) => {
                    tracing::debug!(run_id = %run_id, "woken by another process as it was cancelled");
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::NotUnderWay {
            run_id: run_id.to_owned(),
            status: view.row.status_now(now_ms()),
        })
    }

    /// Runs a failed or cancelled run's failed, cancelled and upstream-failed
    /// nodes again, here; the run keeps its id.
    ///
    /// # Errors
    ///
    /// [`Error::Stopping`], [`Error::StillRunning`], [`Error::Resume`] (no
    /// such run, it succeeded, another process holds it).
    pub async fn retry(self: &Arc<Self>, run_id: &str) -> Result<Live> {
        self.take_over(run_id, ResumeOptions::new().retry_failed(true)).await
    }

    /// Takes an interrupted run over and continues it here.
    ///
    /// # Errors
    ///
    /// As [`Runtime::retry`].
    pub async fn resume(self: &Arc<Self>, run_id: &str) -> Result<Live> {
        self.take_over(run_id, ResumeOptions::new()).await
    }

    async fn take_over(self: &Arc<Self>, run_id: &str, options: ResumeOptions) -> Result<Live> {
        Ok(self.take_over_named(run_id, options).await?.0)
    }

    /// As `take_over`, with the run's workflow name.
    async fn take_over_named(self: &Arc<Self>, run_id: &str, options: ResumeOptions) -> Result<(Live, String)> {
        let resumed = self.take_over_with(run_id, options).await?;
        let name = resumed.workflow.name().to_owned();
        Ok((self.track(&name, resumed.handle), name))
    }

    /// Takes run `run_id` over with `options` (its events, its cancellation,
    /// `retry_failed`) for a front end that drives the run's handle itself
    /// (the CLI's progress display): the run is not tracked here.
    ///
    /// # Errors
    ///
    /// As [`Runtime::retry`].
    pub async fn take_over_with(&self, run_id: &str, options: ResumeOptions) -> Result<flow_engine::Resumed> {
        if self.stopping.is_cancelled() {
            return Err(Error::Stopping);
        }
        if self.live(run_id).is_some() {
            return Err(Error::StillRunning(run_id.to_owned()));
        }
        let options = if self.parking {
            options.park_when_waiting()
        } else {
            options
        };
        Ok(self.engine.resume(&self.writer, run_id, options).await?)
    }

    /// Takes over every interrupted run of the journal (their process died)
    /// and continues them here: the runs resumed, by id and workflow. One that
    /// cannot be resumed (another process took it first) is passed over.
    pub async fn resume_interrupted(self: &Arc<Self>) -> Vec<(String, String)> {
        let filter = RunFilter {
            status: Some(RunStatus::Interrupted),
            ..RunFilter::default()
        };
        let rows = match self.list(&filter).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "cannot list runs to resume");
                return Vec::new();
            }
        };
        let mut resumed = Vec::new();
        for row in rows {
            if self.unresumable(&row.run_id) {
                continue;
            }
            match self.resume(&row.run_id).await {
                Ok(_) => resumed.push((row.run_id, row.workflow)),
                Err(e) => self.passed_over(row.run_id, &e),
            }
        }
        resumed
    }

    /// A run this process did not take over or wake: another took it first
    /// (or it ended meanwhile), or it cannot be resumed here, which is not
    /// tried again (it will not read better next time).
    fn passed_over(&self, run_id: String, e: &Error) {
        match e {
            Error::Resume(ResumeError::TakenOver { .. } | ResumeError::Held { .. } | ResumeError::Finished { .. }) => {
                tracing::debug!(run_id = %run_id, "another process took the run first");
            }
            _ => {
                tracing::warn!(run_id = %run_id, error = %e, "not resumed");
                if matches!(e, Error::Unusable(_) | Error::Resume(ResumeError::Unusable { .. })) {
                    self.unusable
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(run_id);
                }
            }
        }
    }

    fn unresumable(&self, run_id: &str) -> bool {
        self.unusable
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(run_id)
    }

    /// Wakes the parked runs that are due (their earliest wait came, or a
    /// signal was sent to them) and continues them here: the runs woken, by
    /// id and workflow. Of several processes on one journal, each run is woken
    /// by one.
    pub async fn wake_due(self: &Arc<Self>) -> Vec<(String, String)> {
        const BATCH: usize = 256;
        let due = match self.journal().due(flow_engine::journal::now_ms(), BATCH).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the parked runs that are due");
                return Vec::new();
            }
        };
        // Side by side: each wake reads the run and waits for its `run_woken`
        // record, which the journal's writer commits in batches.
        let mut waking = tokio::task::JoinSet::new();
        for run_id in due {
            if self.unresumable(&run_id) {
                continue;
            }
            let runtime = self.clone();
            waking.spawn(async move {
                let taken = runtime.take_over_named(&run_id, ResumeOptions::new()).await;
                (run_id, taken)
            });
        }
        let mut woken = Vec::new();
        while let Some(joined) = waking.join_next().await {
            let Ok((run_id, taken)) = joined else { continue };
            match taken {
                Ok((_, workflow)) => woken.push((run_id, workflow)),
                Err(e) => self.passed_over(run_id, &e),
            }
        }
        woken
    }

    /// Keeps waking parked runs when they are due, until the runtime stops:
    /// it sleeps until the earliest timer of the journal (looking again at
    /// least every `every`, for signals sent by other processes), and at once
    /// when a signal is sent through this runtime.
    pub fn keep_waking(
        self: &Arc<Self>,
        every: Duration,
        on_woken: impl Fn(&str, &str) + Send + Sync + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let runtime = self.clone();
        tokio::spawn(async move {
            loop {
                let rang = runtime.due.notified();
                tokio::pin!(rang);
                rang.as_mut().enable();
                for (run_id, workflow) in runtime.wake_due().await {
                    on_woken(&run_id, &workflow);
                }
                let next = runtime.journal().next_wake().await.ok().flatten();
                let now = flow_engine::journal::now_ms();
                let sleep = match next {
                    Some(at) => Duration::from_millis((at - now).max(0) as u64).min(every),
                    None => every,
                };
                tokio::select! {
                    () = tokio::time::sleep(sleep) => {}
                    () = &mut rang => {}
                    () = runtime.stopping.cancelled() => return,
                }
            }
        })
    }

    /// Keeps taking over interrupted runs, every `every`, until the runtime
    /// stops: a run whose owner died is continued here within its lease (at
    /// once for a dead process on this machine) plus `every`, however long
    /// this process has been up. `on_resumed` hears of each (id, workflow).
    pub fn keep_taking_over(
        self: &Arc<Self>,
        every: Duration,
        on_resumed: impl Fn(&str, &str) + Send + Sync + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let runtime = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = runtime.stopping.cancelled() => return,
                }
                for (run_id, workflow) in runtime.resume_interrupted().await {
                    on_resumed(&run_id, &workflow);
                }
            }
        })
    }
}
