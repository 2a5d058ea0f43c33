//! The **flow** engine: runs workflows as fast as their graph allows, with the
//! strategy each workflow chooses.
//!
//! It ties together the model (`flow-core`), the strategies (`flow-strategy`) and
//! the node kinds (`flow-nodes`). Build an [`Engine`] once (it holds the node
//! registry and shared resources such as the HTTP connection pool), load workflows,
//! and run them any number of times, concurrently.
//!
//! ```
//! use flow_engine::{Engine, RunOptions, RunStatus};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::new();
//! let workflow = engine.parse_yaml(r#"
//! name: hello
//! nodes:
//!   - { id: a, kind: delay, config: { ms: 10 } }
//!   - { id: b, kind: delay, config: { ms: 10 } }
//!   - { id: merge, kind: transform, config: { output: { a: "{{ nodes.a.output.slept_ms }}", who: "{{ input.who }}" } } }
//! edges:
//!   - { from: a, to: merge }
//!   - { from: b, to: merge }
//! "#)?;
//! let report = engine.run(&workflow, RunOptions::new().input(serde_json::json!({ "who": "you" }))).await?;
//! assert_eq!(report.status, RunStatus::Succeeded);
//! assert_eq!(report.node("merge").unwrap().output["who"], "you");
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod attempt;
mod dispatch;
mod driver;
mod durable;
mod event;
pub mod kind;
mod limit;
mod redact;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use event::{Event, EventKind, EventReceiver, EventSender};
pub use flow_core::{
    self as core, Format, LimitSpec, Limits, NodeCall, NodeError, NodeKind, NodeReport, NodeStatus, Registry, Report,
    RunStatus, StrategySpec, Workflow,
};
pub use flow_strategy::{self as strategy, OptionProblem, Options, Strategy, StrategyFactory, StrategyRegistry};

pub use dispatch::{Dispatcher, Quota, Slot, SlotGuard, Task};
use driver::{Driver, DriverParts};
use durable::Durable;
pub use durable::{ResumeOptions, Resumed};
pub use flow_journal as journal;
use limit::Limiters;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a workflow could not be loaded or a run could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The workflow file is unreadable, malformed or invalid, or a strategy or
    /// a limit given in code is (each problem names its place).
    #[error(transparent)]
    Workflow(#[from] flow_core::Error),
    /// The strategy's options are invalid.
    #[error("{0}")]
    Strategy(#[from] flow_strategy::Error),
    /// The run's driver task ended abnormally (a bug: please report it).
    #[error("the run ended abnormally: {0}")]
    Aborted(String),
    /// The journal could not be written or read.
    #[error(transparent)]
    Journal(#[from] flow_journal::Error),
    /// A run cannot be resumed: not found, finished, or held by a live process.
    #[error(transparent)]
    Resume(#[from] ResumeError),
}

/// Why a run cannot be resumed. Front ends choose their answer by the
/// variant (404 for [`ResumeError::NotFound`], 409 for the others), never by
/// the message.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeError {
    /// No run has that id in the journal.
    #[error("no run `{run_id}` in the journal {journal}")]
    NotFound {
        /// The id asked for.
        run_id: String,
        /// The journal's path or URL.
        journal: String,
    },
    /// A live process holds the run.
    #[error("run `{run_id}` is held{}, which is still running it", holder.as_ref().map(|(pid, host)| format!(" by process {pid} on {host}")).unwrap_or_default())]
    Held {
        /// The run.
        run_id: String,
        /// The holder's pid and host, when known.
        holder: Option<(u32, String)>,
    },
    /// The run has finished: it succeeded (nothing to retry), or it failed or
    /// was cancelled and `retry_failed` was not asked for.
    #[error("run `{run_id}` has finished ({status}){}", if *status == RunStatus::Succeeded { ": there is nothing to resume or retry" } else { "; retry_failed runs its failed nodes again" })]
    Finished {
        /// The run.
        run_id: String,
        /// How it ended.
        status: RunStatus,
    },
    /// Another process claimed the run first.
    #[error("run `{run_id}` was taken over by another process just now")]
    TakenOver {
        /// The run.
        run_id: String,
    },
    /// The run's stored state cannot be continued (its document does not
    /// read, it vanished, its previous owner's tasks could not be stopped).
    #[error("run `{run_id}`: {reason}")]
    Unusable {
        /// The run.
        run_id: String,
        /// Why.
        reason: String,
    },
}

/// Builds an [`Engine`].
#[derive(Debug)]
pub struct EngineBuilder {
    registry: Registry,
    strategies: StrategyRegistry,
    shared_limits: BTreeMap<String, LimitSpec>,
    limits: Limits,
    strategy: Option<Arc<dyn Strategy>>,
    dispatcher: Option<Arc<dyn Dispatcher>>,
}

impl Default for EngineBuilder {
    fn default() -> Self {
        EngineBuilder {
            registry: flow_nodes::registry(),
            strategies: StrategyRegistry::builtin(),
            shared_limits: BTreeMap::new(),
            limits: Limits::default(),
            strategy: None,
            dispatcher: None,
        }
    }
}

impl EngineBuilder {
    /// Registers a node kind (replacing a built-in one of the same name).
    pub fn register(mut self, name: impl Into<String>, kind: impl NodeKind) -> Self {
        self.registry.register(name, kind);
        self
    }

    /// Starts from this registry's node kinds instead of the built-in ones.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = registry;
        self
    }

    /// Registers a strategy kind that workflow files can name
    /// (`strategy: { kind: NAME, ...options }`), replacing a built-in one of the
    /// same name. The factory gets the section's options as JSON and returns
    /// the strategy, or every problem with the options: they are validation
    /// errors of the file, with their place.
    pub fn strategy_kind(mut self, name: impl Into<String>, factory: impl StrategyFactory) -> Self {
        self.strategies.register(name, factory);
        self
    }

    /// Declares a limit shared by every run of every workflow of this engine:
    /// a node takes it with `limit: NAME` (a workflow's own `limits:` entry of
    /// the same name wins for that workflow).
    ///
    /// # Errors
    ///
    /// [`Error::Workflow`] naming the limit's bad field (`limits.NAME.per_second`).
    pub fn limit(mut self, name: impl Into<String>, limit: LimitSpec) -> Result<Self> {
        let name = name.into();
        let problems: Vec<flow_core::Problem> = limit
            .problems()
            .into_iter()
            .map(|p| flow_core::Problem::new(path(&format!("limits.{name}"), &p.path), p.message))
            .collect();
        if !problems.is_empty() {
            return Err(flow_core::Error::Invalid(problems).into());
        }
        self.shared_limits.insert(name, limit);
        Ok(self)
    }

    /// Runs every workflow with this strategy, whatever its file says.
    pub fn strategy(mut self, strategy: Arc<dyn Strategy>) -> Self {
        self.strategy = Some(strategy);
        self
    }

    /// Limits on the workflows this engine loads (size, depth).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Hands every node attempt of every run to `dispatcher` instead of
    /// running it in this process (see [`Dispatcher`]).
    pub fn dispatcher(mut self, dispatcher: Arc<dyn Dispatcher>) -> Self {
        self.dispatcher = Some(dispatcher);
        self
    }

    /// The engine.
    pub fn build(self) -> Engine {
        let mut registry = self.registry;
        for name in self.strategies.names() {
            let Some(factory) = self.strategies.get(name).cloned() else {
                continue;
            };
            let check: flow_core::StrategyCheck = Arc::new(move |options: &Options| match factory.build(options) {
                Ok(_) => Vec::new(),
                Err(problems) => problems
                    .into_iter()
                    .map(|p| flow_core::ConfigProblem::new(p.option, p.message))
                    .collect(),
            });
            registry.register_strategy(name, check);
        }
        for (name, limit) in self.shared_limits {
            registry.declare_limit(name, limit);
        }
        Engine {
            inner: Arc::new(Inner {
                registry,
                strategies: self.strategies,
                limits: self.limits,
                strategy: self.strategy,
                limiters: Limiters::default(),
                dispatcher: self.dispatcher,
            }),
        }
    }
}

/// `place.field`, or `place` alone for an empty field.
fn path(place: &str, field: &str) -> String {
    if field.is_empty() {
        place.to_owned()
    } else {
        flow_core::join_path(place, field)
    }
}

struct Inner {
    registry: Registry,
    strategies: StrategyRegistry,
    limits: Limits,
    strategy: Option<Arc<dyn Strategy>>,
    limiters: Limiters,
    dispatcher: Option<Arc<dyn Dispatcher>>,
}

/// Loads and runs workflows. Cheap to clone; clones share the registry and the
/// shared limits.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("registry", &self.inner.registry)
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new()
    }
}

/// Options of one run.
#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    input: Option<Value>,
    strategy: Option<Arc<dyn Strategy>>,
    cancel: Option<CancellationToken>,
    events: Option<EventSender>,
    strategy_spec: Option<StrategySpec>,
    journal: Option<flow_journal::Writer>,
    run_id: Option<Arc<str>>,
}

impl RunOptions {
    /// Default options: the workflow's own input and strategy.
    pub fn new() -> Self {
        RunOptions::default()
    }

    /// The run's input (replaces the workflow's default input).
    pub fn input(mut self, input: Value) -> Self {
        self.input = Some(input);
        self
    }

    /// Runs with this strategy instead of the workflow's.
    pub fn strategy(mut self, strategy: Arc<dyn Strategy>) -> Self {
        self.strategy = Some(strategy);
        self
    }

    /// Runs with the strategy `spec` describes instead of the workflow's (built
    /// with this engine's strategy kinds, and journaled as the run's strategy, so
    /// a resumed run uses it too).
    pub fn strategy_spec(mut self, spec: StrategySpec) -> Self {
        self.strategy_spec = Some(spec);
        self
    }

    /// Makes the run durable: its records go to `writer`'s journal, each
    /// attempt's start durable before the node's side effect, each result
    /// before anything downstream starts. See `docs/durability.md`.
    pub fn journal(mut self, writer: flow_journal::Writer) -> Self {
        self.journal = Some(writer);
        self
    }

    /// Gives the run this id instead of a fresh UUIDv7 (a service that must
    /// answer with the id before the run starts). Ids must be unique.
    pub fn run_id(mut self, id: impl Into<Arc<str>>) -> Self {
        self.run_id = Some(id.into());
        self
    }

    /// Cancels the run when this token is cancelled.
    pub fn cancel_token(mut self, token: CancellationToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// Sends the run's events to this channel.
    pub fn events(mut self, sender: EventSender) -> Self {
        self.events = Some(sender);
        self
    }

    /// Subscribes to the run's events: returns the receiving end.
    pub fn subscribe(&mut self) -> EventReceiver {
        let (tx, rx) = mpsc::unbounded_channel();
        self.events = Some(tx);
        rx
    }
}

/// A run started with [`Engine::start`].
#[derive(Debug)]
pub struct RunHandle {
    run_id: Arc<str>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<Report>>,
}

impl RunHandle {
    /// The run's id: a UUIDv7, as in its report and events.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Cancels the run: running nodes stop at once, the rest become `cancelled`.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// A token that cancels the run when cancelled.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Waits for the report.
    pub async fn wait(self) -> Result<Report> {
        self.task.await.map_err(|e| Error::Aborted(e.to_string()))?
    }
}

impl Engine {
    /// An engine with every built-in node kind and strategy, and default limits.
    pub fn new() -> Engine {
        EngineBuilder::default().build()
    }

    /// A builder, to register custom kinds and strategies, or set limits.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// The node kinds, strategy kinds and engine-wide limits this engine knows.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Where this engine's attempts run, when not in this process.
    pub(crate) fn inner_dispatcher(&self) -> Option<Arc<dyn Dispatcher>> {
        self.inner.dispatcher.clone()
    }

    /// The strategy kinds this engine knows.
    pub fn strategies(&self) -> &StrategyRegistry {
        &self.inner.strategies
    }

    /// The limits this engine loads workflows with.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Reads and validates a workflow file (JSON or YAML by extension).
    pub fn load(&self, path: impl AsRef<Path>) -> Result<Arc<Workflow>> {
        Ok(Arc::new(Workflow::load(
            path.as_ref(),
            &self.inner.registry,
            &self.inner.limits,
        )?))
    }

    /// Parses and validates a workflow document.
    pub fn parse(&self, text: &str, format: Format) -> Result<Arc<Workflow>> {
        Ok(Arc::new(Workflow::from_str(
            text,
            format,
            &self.inner.registry,
            &self.inner.limits,
        )?))
    }

    /// Parses and validates a YAML workflow.
    pub fn parse_yaml(&self, text: &str) -> Result<Arc<Workflow>> {
        self.parse(text, Format::Yaml)
    }

    /// Parses and validates a JSON workflow.
    pub fn parse_json(&self, text: &str) -> Result<Arc<Workflow>> {
        self.parse(text, Format::Json)
    }

    /// Builds the strategy a `strategy:` section describes, with this engine's
    /// strategy kinds.
    ///
    /// # Errors
    ///
    /// [`Error::Workflow`] with every problem, each at its place
    /// (`strategy.per_second`, `strategy.kind`).
    pub fn build_strategy(&self, spec: &StrategySpec) -> Result<Arc<dyn Strategy>> {
        self.inner
            .strategies
            .build(&spec.kind, &spec.options)
            .map_err(|problems| {
                let problems = problems
                    .into_iter()
                    .map(|p| flow_core::Problem::new(path("strategy", &p.option), p.message))
                    .collect();
                Error::Workflow(flow_core::Error::Invalid(problems))
            })
    }

    /// The strategy a run of `workflow` uses: the run's override, else the engine's,
    /// else the file's `strategy:` section, else `parallel`.
    pub fn strategy_for(&self, workflow: &Workflow, options: &RunOptions) -> Result<Arc<dyn Strategy>> {
        if let Some(s) = options.strategy.as_ref().or(self.inner.strategy.as_ref()) {
            return Ok(s.clone());
        }
        match workflow.strategy() {
            Some(spec) => self.build_strategy(spec),
            None => Ok(Arc::new(flow_strategy::Parallel::new())),
        }
    }

    /// The run's driver, with its journal and, for a resumed run, what it
    /// restores.
    fn driver(
        &self,
        workflow: &Arc<Workflow>,
        options: RunOptions,
        durable: Durable,
    ) -> Result<(Driver, CancellationToken)> {
        let strategy = match &options.strategy_spec {
            Some(spec) => self.build_strategy(spec)?,
            None => self.strategy_for(workflow, &options)?,
        };
        let cancel = options.cancel.unwrap_or_default();
        let driver = Driver::new(DriverParts {
            workflow: workflow.clone(),
            strategy,
            input: options.input.unwrap_or_else(|| workflow.input().clone()),
            secrets: secrets(workflow),
            cancel: cancel.clone(),
            events: options.events,
            run_id: durable.run_id,
            limits: self.inner.limiters.for_run(workflow),
            max_items: self.inner.limits.max_items,
            journal: durable.log,
            restore: durable.restore,
            offset: durable.offset,
            dispatcher: self.inner.dispatcher.clone(),
        });
        Ok((driver, cancel))
    }

    /// Runs `workflow` to the end in the calling task and returns its report.
    ///
    /// With a journal ([`RunOptions::journal`]), the run is recorded first; an
    /// error doing so is [`Error::Journal`] and nothing runs.
    pub async fn run(&self, workflow: &Arc<Workflow>, mut options: RunOptions) -> Result<Report> {
        let run_id = options.run_id.take().unwrap_or_else(new_run_id);
        let durable = self.begin(workflow, &mut options, run_id).await?;
        let (driver, _) = self.driver(workflow, options, durable)?;
        Ok(driver.run().await)
    }

    /// Starts `workflow` on its own task; the handle cancels it or waits for the report.
    /// A journaled run is recorded on that task; [`RunHandle::wait`] reports a
    /// journal error.
    pub fn start(&self, workflow: &Arc<Workflow>, mut options: RunOptions) -> Result<RunHandle> {
        let run_id = options.run_id.take().unwrap_or_else(new_run_id);
        if options.journal.is_none() {
            let (driver, cancel) = self.driver(workflow, options, Durable::none(run_id.clone()))?;
            let run = driver.run();
            return Ok(RunHandle {
                run_id,
                cancel,
                task: tokio::spawn(async move { Ok(run.await) }),
            });
        }
        // Checked now, so a bad strategy is an error here, not at `wait`.
        match &options.strategy_spec {
            Some(spec) => self.build_strategy(spec)?,
            None => self.strategy_for(workflow, &options)?,
        };
        let cancel = options.cancel.get_or_insert_with(CancellationToken::new).clone();
        let (engine, workflow, id) = (self.clone(), workflow.clone(), run_id.clone());
        let task = tokio::spawn(async move {
            let durable = engine.begin(&workflow, &mut options, id).await?;
            let (driver, _) = engine.driver(&workflow, options, durable)?;
            Ok(driver.run().await)
        });
        Ok(RunHandle { run_id, cancel, task })
    }

    /// As [`Engine::start`], but a journaled run is recorded before this
    /// returns (an error doing so is [`Error::Journal`] and nothing runs): a
    /// reader of the journal finds the run as soon as its handle is given.
    pub async fn start_recorded(&self, workflow: &Arc<Workflow>, mut options: RunOptions) -> Result<RunHandle> {
        let run_id = options.run_id.take().unwrap_or_else(new_run_id);
        // Checked first, so a bad strategy leaves nothing in the journal.
        match &options.strategy_spec {
            Some(spec) => self.build_strategy(spec)?,
            None => self.strategy_for(workflow, &options)?,
        };
        let cancel = options.cancel.get_or_insert_with(CancellationToken::new).clone();
        let durable = self.begin(workflow, &mut options, run_id.clone()).await?;
        let (driver, _) = self.driver(workflow, options, durable)?;
        let run = driver.run();
        Ok(RunHandle {
            run_id,
            cancel,
            task: tokio::spawn(async move { Ok(run.await) }),
        })
    }
}

/// A fresh run id: a UUIDv7 (time-ordered, unique across processes and machines).
pub fn new_run_id() -> Arc<str> {
    Arc::from(uuid::Uuid::now_v7().to_string())
}

/// The secrets `workflow` declares, read from the environment now (they are
/// never journaled: a resumed run reads them again).
fn secrets(workflow: &Workflow) -> BTreeMap<String, String> {
    workflow
        .secrets()
        .iter()
        .filter_map(|name| std::env::var(name).ok().map(|v| (name.clone(), v)))
        .collect()
}

/// How `strategy` paces starts, for [`flow_core::Plan::bounds`].
pub fn pace(strategy: &dyn Strategy) -> flow_core::Pace {
    let rate = strategy.rate();
    flow_core::Pace {
        max_concurrency: strategy.max_concurrency().map(|n| n.get()),
        per_second: rate.map(|r| r.per_second),
        burst: rate.map_or(1, |r| r.burst),
    }
}

/// Compiles and runs the examples of `docs/nodes.md` ("Writing a node kind")
/// as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/nodes.md")]
pub struct NodesGuide;

/// Compiles and runs the examples of `docs/plugins.md` (a strategy kind named
/// from a workflow file) as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/plugins.md")]
pub struct PluginsGuide;
