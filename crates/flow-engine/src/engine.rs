//! [`Engine`] and its builder: the registries, limits and dispatcher runs share;
//! loading workflows and starting, running and resuming runs.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::dispatch::Dispatcher;
use crate::driver::{Driver, DriverParts};
use crate::durable::Durable;
use crate::limit::Limiters;
use crate::{
    Error, Format, LimitSpec, Limits, NodeKind, Options, Registry, Report, Result, RunHandle, RunOptions, Strategy,
    StrategyFactory, StrategyRegistry, StrategySpec, Workflow,
};

/// Builds an [`Engine`].
#[derive(Debug)]
pub struct EngineBuilder {
    pub(crate) registry: Registry,
    pub(crate) strategies: StrategyRegistry,
    pub(crate) shared_limits: BTreeMap<String, LimitSpec>,
    pub(crate) limits: Limits,
    pub(crate) strategy: Option<Arc<dyn Strategy>>,
    pub(crate) dispatcher: Option<Arc<dyn Dispatcher>>,
    pub(crate) catalog: Option<Arc<dyn crate::Catalog>>,
    pub(crate) max_depth: u32,
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
            catalog: None,
            max_depth: crate::child::DEFAULT_MAX_DEPTH,
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

    /// Where `workflow` nodes find the workflows they run, by name (a
    /// [`crate::FolderCatalog`] of files, workflows an embedder [`crate::RegisteredCatalog`]).
    /// Without one, every `workflow` node names an unknown workflow.
    pub fn catalog(mut self, catalog: Arc<dyn crate::Catalog>) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// How deep runs may nest (default 16): a `workflow` node of a run
    /// nested this deep fails instead of starting a child.
    pub fn max_depth(mut self, depth: u32) -> Self {
        self.max_depth = depth;
        self
    }

    /// The engine.
    pub fn build(self) -> Engine {
        let mut registry = self.registry;
        let mut engine_cell = None;
        if registry.get("workflow").is_none() {
            let kind = crate::child::WorkflowKind::new(self.catalog.clone());
            engine_cell = Some(kind.engine_cell());
            registry.register("workflow", kind);
        }
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
        let engine = Engine {
            inner: Arc::new(Inner {
                registry,
                strategies: self.strategies,
                limits: self.limits,
                strategy: self.strategy,
                limiters: Limiters::default(),
                dispatcher: self.dispatcher,
                catalog: self.catalog,
                max_depth: self.max_depth,
                children: Default::default(),
                waiting_parents: Default::default(),
            }),
        };
        if let Some(cell) = engine_cell {
            let _ = cell.set(Arc::downgrade(&engine.inner));
        }
        engine
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

pub(crate) struct Inner {
    pub(crate) registry: Registry,
    pub(crate) strategies: StrategyRegistry,
    pub(crate) limits: Limits,
    pub(crate) strategy: Option<Arc<dyn Strategy>>,
    pub(crate) limiters: Limiters,
    pub(crate) dispatcher: Option<Arc<dyn Dispatcher>>,
    pub(crate) catalog: Option<Arc<dyn crate::Catalog>>,
    pub(crate) max_depth: u32,
    /// Child runs started on their own task, while they run: their cancel tokens.
    pub(crate) children: std::sync::Mutex<std::collections::HashMap<String, CancellationToken>>,
    /// Parent units waiting in this process for a child's end, by child run id.
    pub(crate) waiting_parents: std::sync::Mutex<std::collections::HashMap<String, Arc<crate::child::Told>>>,
}

/// Loads and runs workflows. Cheap to clone; clones share the registry and the
/// shared limits.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
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

    /// A run's own input must fit the limits a file's `input:` does.
    fn check_input(&self, options: &RunOptions) -> Result<()> {
        let max = self.inner.limits.max_depth;
        match &options.input {
            Some(input) if flow_core::depth(input) > max => Err(Error::Input(format!(
                "nested deeper than the limit of {max} (the `max_depth` limit)"
            ))),
            _ => Ok(()),
        }
    }

    /// The run's driver, with its journal and, for a resumed run, what it
    /// restores.
    pub(crate) fn driver(
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
            signals: options.signals.unwrap_or_default(),
            parking: options.park,
            park_now: options.park_now.unwrap_or_default(),
            family: crate::child::Family::new(self.clone(), options.parent, options.depth, options.parent_bell),
            inherited_secrets: options.inherited_secrets,
        });
        Ok((driver, cancel))
    }

    /// Runs `workflow` to the end in the calling task and returns its report.
    ///
    /// With a journal ([`RunOptions::journal`]), the run is recorded first; an
    /// error doing so is [`Error::Journal`] and nothing runs.
    pub async fn run(&self, workflow: &Arc<Workflow>, mut options: RunOptions) -> Result<Report> {
        self.check_input(&options)?;
        let run_id = options.run_id.take().unwrap_or_else(new_run_id);
        let durable = self.begin(workflow, &mut options, run_id).await?;
        let (driver, _) = self.driver(workflow, options, durable)?;
        Ok(driver.run().await)
    }

    /// Starts `workflow` on its own task; the handle cancels it or waits for the report.
    /// A journaled run is recorded on that task; [`RunHandle::wait`] reports a
    /// journal error.
    pub fn start(&self, workflow: &Arc<Workflow>, mut options: RunOptions) -> Result<RunHandle> {
        self.check_input(&options)?;
        let run_id = options.run_id.take().unwrap_or_else(new_run_id);
        let signals = options.signals.get_or_insert_with(crate::Signals::new).clone();
        let park_now = options.park_now.get_or_insert_with(CancellationToken::new).clone();
        if options.journal.is_none() {
            let (driver, cancel) = self.driver(workflow, options, Durable::none(run_id.clone()))?;
            let run = driver.run();
            return Ok(RunHandle {
                run_id,
                cancel,
                task: tokio::spawn(async move { Ok(run.await) }),
                signals,
                park_now,
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
        Ok(RunHandle {
            run_id,
            cancel,
            task,
            signals,
            park_now,
        })
    }

    /// As [`Engine::start`], but a journaled run is recorded before this
    /// returns (an error doing so is [`Error::Journal`] and nothing runs): a
    /// reader of the journal finds the run as soon as its handle is given.
    pub async fn start_recorded(&self, workflow: &Arc<Workflow>, mut options: RunOptions) -> Result<RunHandle> {
        self.check_input(&options)?;
        let run_id = options.run_id.take().unwrap_or_else(new_run_id);
        // Checked first, so a bad strategy leaves nothing in the journal.
        match &options.strategy_spec {
            Some(spec) => self.build_strategy(spec)?,
            None => self.strategy_for(workflow, &options)?,
        };
        let cancel = options.cancel.get_or_insert_with(CancellationToken::new).clone();
        let signals = options.signals.get_or_insert_with(crate::Signals::new).clone();
        let park_now = options.park_now.get_or_insert_with(CancellationToken::new).clone();
        let durable = self.begin(workflow, &mut options, run_id.clone()).await?;
        let (driver, _) = self.driver(workflow, options, durable)?;
        let run = driver.run();
        Ok(RunHandle {
            run_id,
            cancel,
            task: tokio::spawn(async move { Ok(run.await) }),
            signals,
            park_now,
        })
    }
}

/// A fresh run id: a UUIDv7 (time-ordered, unique across processes and machines).
pub fn new_run_id() -> Arc<str> {
    Arc::from(uuid::Uuid::now_v7().to_string())
}

/// The secrets `workflow` declares, read from the environment now (they are
/// never journaled: a resumed run reads them again).
pub(crate) fn secrets(workflow: &Workflow) -> BTreeMap<String, String> {
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
