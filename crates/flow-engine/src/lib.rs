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

mod driver;
mod event;
mod redact;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use event::{Event, EventKind, EventReceiver, EventSender};
pub use flow_core::{
    self as core, Format, Limits, NodeCall, NodeError, NodeKind, NodeReport, NodeStatus, Registry, Report, RunStatus,
    Workflow,
};
pub use flow_strategy::{self as strategy, Strategy};
pub use redact::Redactor;

use driver::{Driver, DriverParts};

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a workflow could not be loaded or a run could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The workflow file is unreadable, malformed or invalid.
    #[error(transparent)]
    Workflow(#[from] flow_core::Error),
    /// The strategy's options are invalid.
    #[error("{0}")]
    Strategy(#[from] flow_strategy::Error),
    /// The run's driver task ended abnormally (a bug: please report it).
    #[error("the run ended abnormally: {0}")]
    Aborted(String),
}

/// Builds an [`Engine`].
#[derive(Debug)]
pub struct EngineBuilder {
    registry: Registry,
    limits: Limits,
    strategy: Option<Arc<dyn Strategy>>,
}

impl Default for EngineBuilder {
    fn default() -> Self {
        EngineBuilder {
            registry: flow_nodes::registry(),
            limits: Limits::default(),
            strategy: None,
        }
    }
}

impl EngineBuilder {
    /// Registers a node kind (replacing a built-in one of the same name).
    pub fn register(mut self, name: impl Into<String>, kind: impl NodeKind) -> Self {
        self.registry.register(name, kind);
        self
    }

    /// Starts from this registry instead of the built-in kinds.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = registry;
        self
    }

    /// Runs every workflow with this strategy, whatever its file says.
    pub fn strategy(mut self, strategy: Arc<dyn Strategy>) -> Self {
        self.strategy = Some(strategy);
        self
    }

    /// Limits on the workflows this engine loads.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The engine.
    pub fn build(self) -> Engine {
        Engine {
            inner: Arc::new(Inner {
                registry: self.registry,
                limits: self.limits,
                strategy: self.strategy,
                next_run: AtomicU64::new(1),
            }),
        }
    }
}

struct Inner {
    registry: Registry,
    limits: Limits,
    strategy: Option<Arc<dyn Strategy>>,
    next_run: AtomicU64,
}

/// Loads and runs workflows. Cheap to clone; clones share the registry.
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
    run_id: u64,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Report>,
}

impl RunHandle {
    /// The run's id.
    pub fn run_id(&self) -> u64 {
        self.run_id
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
        self.task.await.map_err(|e| Error::Aborted(e.to_string()))
    }
}

impl Engine {
    /// An engine with every built-in node kind and default limits.
    pub fn new() -> Engine {
        EngineBuilder::default().build()
    }

    /// A builder, to register custom kinds or set a strategy and limits.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// The node kinds this engine knows.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
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

    /// The strategy a run of `workflow` uses: the run's override, else the engine's,
    /// else the file's `strategy:` section, else `parallel`.
    pub fn strategy_for(&self, workflow: &Workflow, options: &RunOptions) -> Result<Arc<dyn Strategy>> {
        if let Some(s) = options.strategy.as_ref().or(self.inner.strategy.as_ref()) {
            return Ok(s.clone());
        }
        Ok(strategy_config(workflow.strategy()).build()?)
    }

    fn driver(&self, workflow: &Arc<Workflow>, options: RunOptions) -> Result<(Driver, CancellationToken, u64)> {
        let strategy = self.strategy_for(workflow, &options)?;
        let cancel = options.cancel.unwrap_or_default();
        let run_id = self.inner.next_run.fetch_add(1, Ordering::Relaxed);
        let secrets: BTreeMap<String, String> = workflow
            .secrets()
            .iter()
            .filter_map(|name| std::env::var(name).ok().map(|v| (name.clone(), v)))
            .collect();
        let driver = Driver::new(DriverParts {
            workflow: workflow.clone(),
            strategy,
            input: options.input.unwrap_or_else(|| workflow.input().clone()),
            secrets,
            cancel: cancel.clone(),
            events: options.events,
            run_id,
        });
        Ok((driver, cancel, run_id))
    }

    /// Runs `workflow` to the end in the calling task and returns its report.
    pub async fn run(&self, workflow: &Arc<Workflow>, options: RunOptions) -> Result<Report> {
        let (driver, _, _) = self.driver(workflow, options)?;
        Ok(driver.run().await)
    }

    /// Starts `workflow` on its own task; the handle cancels it or waits for the report.
    pub fn start(&self, workflow: &Arc<Workflow>, options: RunOptions) -> Result<RunHandle> {
        let (driver, cancel, run_id) = self.driver(workflow, options)?;
        Ok(RunHandle {
            run_id,
            cancel,
            task: tokio::spawn(driver.run()),
        })
    }
}

/// The strategy options a file's `strategy:` section gives (default: `parallel`).
pub fn strategy_config(spec: Option<&flow_core::StrategySpec>) -> flow_strategy::StrategyConfig {
    let Some(spec) = spec else {
        return flow_strategy::StrategyConfig::new(flow_strategy::StrategyKind::Parallel);
    };
    let mut config = flow_strategy::StrategyConfig::new(strategy_kind(spec.kind));
    config.max_concurrency = spec.max_concurrency.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    config.per_second = spec.per_second;
    config.burst = spec.burst.map(|b| u32::try_from(b).unwrap_or(u32::MAX));
    config.fail_fast = spec.fail_fast;
    config
}

/// The flow-strategy kind of a file's strategy kind.
pub fn strategy_kind(kind: flow_core::StrategyKind) -> flow_strategy::StrategyKind {
    match kind {
        flow_core::StrategyKind::Sequential => flow_strategy::StrategyKind::Sequential,
        flow_core::StrategyKind::Parallel => flow_strategy::StrategyKind::Parallel,
        flow_core::StrategyKind::AllSettled => flow_strategy::StrategyKind::AllSettled,
        flow_core::StrategyKind::RateLimited => flow_strategy::StrategyKind::RateLimited,
    }
}
