//! The node-kind trait: what a kind of node does, and what it is given to do it.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::context::Context;
use crate::plan::AttemptTime;
use crate::spec::LimitSpec;

/// A kind of node: `http`, `delay`, or one written by an embedder.
///
/// A kind is registered once per engine and shared by every node of that kind in
/// every run, so it is the place for shared resources (a connection pool, say).
///
/// Contract:
/// - [`NodeKind::check`] runs at validation, before anything runs; it sees the
///   config as written (strings may still hold `{{ }}` templates) and returns every
///   problem it finds, each with a path relative to `config`.
/// - [`NodeKind::run`] runs one attempt with the config rendered. It must be
///   cancel-safe: the engine drops the future to cancel it (timeouts, fail-fast,
///   Ctrl-C). A kind that completes without awaiting anything costs no task.
/// - An `Err` is a failed attempt; the node's retry policy decides what follows.
///   Panics are caught and become the node's failure.
#[async_trait::async_trait]
pub trait NodeKind: Send + Sync + 'static {
    /// Checks a node's config at validation time. Default: accept anything.
    fn check(&self, config: &Value) -> Vec<ConfigProblem> {
        let _ = config;
        Vec::new()
    }

    /// How long one attempt takes, as far as the config as written tells (for
    /// `flow explain`; templates are not rendered). Default: not known.
    fn estimate(&self, config: &Value) -> AttemptTime {
        let _ = config;
        AttemptTime::Unknown
    }

    /// Whether the kind waits for time or for a signal through
    /// [`NodeCall::waits`]: such a kind runs in the engine (never on a
    /// worker), and its waits are kept in the run's journal. Default: no.
    fn waits(&self) -> bool {
        false
    }

    /// Whether the kind starts child runs through [`NodeCall::children`]
    /// (the `workflow` kind): it runs in the engine, never on a worker.
    /// Default: no.
    fn runs_workflows(&self) -> bool {
        false
    }

    /// Whether an attempt may act outside the run (a request sent, a message
    /// delivered). With a journal, such an attempt's start is durable before
    /// it begins, so a run resumed after a crash knows it may have happened.
    /// A kind that answers `false` (it only computes, or only sleeps) starts
    /// at once, its start record committed alongside: a crash before that
    /// commit runs it again, with nobody outside the wiser. Default: yes.
    fn effects(&self) -> bool {
        true
    }

    /// Runs one attempt.
    async fn run(&self, call: NodeCall) -> Result<Value, NodeError>;
}

/// Everything one attempt of a node receives.
///
/// The context is a read-only view of the run: a kind reads the input, the
/// settled nodes and the declared secrets, and only the engine records results.
#[derive(Clone)]
#[non_exhaustive]
pub struct NodeCall {
    /// The node's id.
    pub node_id: Arc<str>,
    /// The node's config with every template rendered.
    pub config: Arc<Value>,
    /// 1 for the first attempt, 2 for the first retry, and so on.
    pub attempt: u32,
    /// The run's context, read-only: input, settled nodes, secrets.
    pub context: Context,
    /// For an item of a `for_each` node, its 0-based position in the list.
    pub item: Option<usize>,
    /// For a kind that waits ([`NodeKind::waits`]): the engine's side of
    /// the wait. `None` for every other kind.
    pub waits: Option<Arc<dyn crate::Waits>>,
    /// For a kind that runs workflows ([`NodeKind::runs_workflows`]): the
    /// engine's side, which starts this attempt's child run. `None` for every
    /// other kind.
    pub children: Option<Arc<dyn ChildRuns>>,
}

/// What a kind that runs other workflows asks the engine: start (or, for a
/// retry or a resumed run, continue) this attempt's child run, and wait for
/// its end.
#[async_trait::async_trait]
pub trait ChildRuns: Send + Sync {
    /// Runs the workflow named `workflow` with `input` (`None`: the
    /// workflow's own default input) as this unit's child run, and returns
    /// its `output`; a child that does not succeed is an error that names it.
    async fn run_child(&self, workflow: &str, input: Option<Value>) -> Result<Value, NodeError>;
}

impl NodeCall {
    /// The first attempt of node `node_id` with this (rendered) config.
    pub fn new(node_id: Arc<str>, config: Arc<Value>, context: Context) -> Self {
        NodeCall {
            node_id,
            config,
            attempt: 1,
            context,
            item: None,
            waits: None,
            children: None,
        }
    }

    /// The run's id (a UUIDv7), from the context; empty outside a run.
    pub fn run_id(&self) -> &str {
        self.context.run_id()
    }

    /// The key that names this node's side effect across retries and resumes:
    /// `<run_id>:<node_id>`, with `:<item index>` for an item of a `for_each`
    /// node. The same for every attempt, and again when a journaled run resumes,
    /// so a receiver that remembers keys applies the effect once.
    pub fn idempotency_key(&self) -> String {
        match self.item {
            None => format!("{}:{}", self.run_id(), self.node_id),
            Some(index) => format!("{}:{}:{index}", self.run_id(), self.node_id),
        }
    }
}

impl fmt::Debug for NodeCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeCall")
            .field("node_id", &self.node_id)
            .field("config", &self.config)
            .field("attempt", &self.attempt)
            .field("item", &self.item)
            .field("run_id", &self.run_id())
            .finish_non_exhaustive()
    }
}

/// One problem in a node's config, found by [`NodeKind::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Path inside `config`, such as `ms` or `headers.Authorization`; empty for the config itself.
    pub path: String,
    /// What is wrong, for a person.
    pub message: String,
}

impl ConfigProblem {
    /// A problem at `path` (relative to the node's `config`).
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigProblem {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A failed attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeError {
    message: String,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl NodeError {
    /// A failure that the node's retry policy may retry.
    pub fn new(message: impl Into<String>) -> Self {
        NodeError {
            message: message.into(),
            retryable: true,
            retry_after: None,
        }
    }

    /// A failure that no retry can fix (a bad config, a failed check).
    pub fn permanent(message: impl Into<String>) -> Self {
        NodeError {
            retryable: false,
            ..NodeError::new(message)
        }
    }

    /// Asks the retry policy to wait at least this long (an HTTP `Retry-After`).
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// The message, for a person.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether a retry may help.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The wait the remote side asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NodeError {}

impl From<String> for NodeError {
    fn from(message: String) -> Self {
        NodeError::new(message)
    }
}

impl From<&str> for NodeError {
    fn from(message: &str) -> Self {
        NodeError::new(message)
    }
}

/// Checks a `strategy:` section's options for one strategy kind: every problem,
/// each with its path inside the section (`per_second`, or empty for the whole).
pub type StrategyCheck = Arc<dyn Fn(&serde_json::Map<String, Value>) -> Vec<ConfigProblem> + Send + Sync>;

/// What validation knows beyond the file: the node kinds, the strategy kinds and
/// the engine-wide limits of one engine, by name.
///
/// The engine fills it (built-in kinds, an embedder's own); flow-core alone
/// knows no kind of either sort.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: HashMap<String, Arc<dyn NodeKind>>,
    strategies: HashMap<String, StrategyCheck>,
    limits: HashMap<String, LimitSpec>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Adds (or replaces) the kind called `name`.
    pub fn register(&mut self, name: impl Into<String>, kind: impl NodeKind) -> &mut Self {
        self.kinds.insert(name.into(), Arc::new(kind));
        self
    }

    /// Adds (or replaces) a kind that is already shared.
    pub fn register_arc(&mut self, name: impl Into<String>, kind: Arc<dyn NodeKind>) -> &mut Self {
        self.kinds.insert(name.into(), kind);
        self
    }

    /// The kind called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn NodeKind>> {
        self.kinds.get(name)
    }

    /// The names of every registered kind, sorted.
    pub fn names(&self) -> Vec<&str> {
        sorted(self.kinds.keys())
    }

    /// Adds (or replaces) the strategy kind called `name`, with the check of its
    /// options that validation runs on a file's `strategy:` section.
    pub fn register_strategy(&mut self, name: impl Into<String>, check: StrategyCheck) -> &mut Self {
        self.strategies.insert(name.into(), check);
        self
    }

    /// The check of the strategy kind called `name`.
    pub fn strategy(&self, name: &str) -> Option<&StrategyCheck> {
        self.strategies.get(name)
    }

    /// The names of every strategy kind, sorted.
    pub fn strategy_names(&self) -> Vec<&str> {
        sorted(self.strategies.keys())
    }

    /// Declares an engine-wide limit that any workflow's nodes may take by name.
    pub fn declare_limit(&mut self, name: impl Into<String>, limit: LimitSpec) -> &mut Self {
        self.limits.insert(name.into(), limit);
        self
    }

    /// The engine-wide limit called `name`.
    pub fn limit(&self, name: &str) -> Option<&LimitSpec> {
        self.limits.get(name)
    }

    /// The names of every engine-wide limit, sorted.
    pub fn limit_names(&self) -> Vec<&str> {
        sorted(self.limits.keys())
    }
}

fn sorted<'a>(keys: impl Iterator<Item = &'a String>) -> Vec<&'a str> {
    let mut names: Vec<&str> = keys.map(String::as_str).collect();
    names.sort_unstable();
    names
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("kinds", &self.names())
            .field("strategies", &self.strategy_names())
            .field("limits", &self.limit_names())
            .finish()
    }
}
