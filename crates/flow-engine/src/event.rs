//! Typed events of a run, for an embedder's UI or store, and for `flow run`'s
//! progress display. Nothing is built when nobody subscribes.
//!
//! Order: a run's events arrive in the order they happened. `RunStarted` comes
//! first and `RunFinished` last; for each node `NodeReady` comes before its first
//! `NodeStarted`, each `AttemptFailed` before the next `NodeStarted`, and exactly one
//! `NodeSettled` ends it (a node that never ran gets only `NodeSettled`, with
//! `attempts: 0`, or `NodeReady` then `NodeSettled` when the run is cancelled before
//! it starts). A node becomes ready only once its trigger rule is decided by
//! predecessors that have settled.
//!
//! Events serialise to JSON (serde) as one flat object tagged by `event`:
//! `{"run_id":"0193…","at_ms":0.42,"event":"node_started","node":"a","attempt":1}`.

use std::sync::Arc;

use flow_core::{NodeStatus, RunStatus};
use serde::Serialize;
use tokio::sync::mpsc;

/// One thing that happened in a run.
///
/// Subscribe with [`crate::RunOptions::subscribe`] before starting the run; the
/// channel closes after [`EventKind::RunFinished`].
///
/// ```
/// use flow_engine::{Engine, EventKind, RunOptions};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let engine = Engine::new();
/// let workflow = engine.parse_yaml("name: one\nnodes: [{ id: a, kind: noop }]")?;
/// let mut options = RunOptions::new();
/// let mut events = options.subscribe();
/// let ui = tokio::spawn(async move {
///     let mut seen = Vec::new();
///     while let Some(event) = events.recv().await {
///         // Drive a UI, or store `serde_json::to_string(&event)?`.
///         seen.push(event.kind);
///     }
///     seen
/// });
/// engine.start(&workflow, options)?.wait().await?;
/// let seen = ui.await?;
/// assert!(matches!(seen.first(), Some(EventKind::RunStarted { .. })));
/// assert!(matches!(seen.last(), Some(EventKind::RunFinished { .. })));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Event {
    /// The run it belongs to.
    pub run_id: Arc<str>,
    /// Monotonic time since the run started, in milliseconds.
    pub at_ms: f64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Event {
    /// The node this event is about, if any.
    pub fn node(&self) -> Option<&str> {
        self.kind.node()
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// The run started.
    RunStarted {
        /// The workflow's name.
        workflow: String,
        /// The strategy's name.
        strategy: String,
        /// How many nodes the workflow has.
        nodes: usize,
    },
    /// A node's predecessors allow it to run; it waits for the strategy to start it.
    NodeReady {
        /// The node's id.
        node: Arc<str>,
    },
    /// An attempt of a node started.
    NodeStarted {
        /// The node's id.
        node: Arc<str>,
        /// 1 for the first attempt.
        attempt: u32,
    },
    /// An attempt failed and the node will try again after `retry_in_ms`.
    AttemptFailed {
        /// The node's id.
        node: Arc<str>,
        /// For an item of a `for_each` node, its index.
        #[serde(skip_serializing_if = "Option::is_none")]
        item: Option<usize>,
        /// The attempt that failed.
        attempt: u32,
        /// Why.
        error: String,
        /// The wait before the next attempt, in milliseconds.
        retry_in_ms: f64,
    },
    /// A node that takes a shared limit (`limit:`) got it, before an attempt
    /// (sent just before that attempt's `NodeStarted`).
    LimitWaited {
        /// The node's id.
        node: Arc<str>,
        /// For an item of a `for_each` node, its index.
        #[serde(skip_serializing_if = "Option::is_none")]
        item: Option<usize>,
        /// The attempt about to start.
        attempt: u32,
        /// The limit's name.
        limit: Arc<str>,
        /// How long the node waited for the limit, in milliseconds.
        waited_ms: f64,
    },
    /// Every node under way waits: the run is parked in its journal (no
    /// process holds it) until `wake_at_ms` or one of `signals` comes.
    RunWaiting {
        /// The earliest instant a wait is due, ms since the Unix epoch.
        wake_at_ms: Option<i64>,
        /// The signals its waits take.
        signals: Vec<String>,
    },
    /// An attempt of a `wait` or `signal` node began to wait: what for.
    NodeWaiting {
        /// The node's id.
        node: Arc<str>,
        /// For an item of a `for_each` node, its index.
        item: Option<usize>,
        /// What it waits for (instants in ms since the Unix epoch).
        waiting: flow_core::Waiting,
    },
    /// A waiting attempt took a signal sent to its run.
    SignalReceived {
        /// The node's id.
        node: Arc<str>,
        /// For an item of a `for_each` node, its index.
        item: Option<usize>,
        /// The signal's name.
        name: String,
    },
    /// Something to know about an attempt under way (a task no worker takes
    /// yet); it changes nothing in the run.
    Notice {
        /// The node's id.
        node: Arc<str>,
        /// For an item of a `for_each` node, its index.
        item: Option<usize>,
        /// What to know.
        message: String,
    },
    /// A `for_each` node rendered its list: `items` units of work follow.
    ItemsListed {
        /// The node's id.
        node: Arc<str>,
        /// How many items the list has.
        items: usize,
    },
    /// An attempt of one item of a `for_each` node starts.
    ItemStarted {
        /// The node's id.
        node: Arc<str>,
        /// The item's index.
        index: usize,
        /// 1 for the first attempt.
        attempt: u32,
    },
    /// An item of a `for_each` node ended: succeeded, failed or cancelled (one
    /// event per item, also for items that never started).
    ItemSettled {
        /// The node's id.
        node: Arc<str>,
        /// The item's index.
        index: usize,
        /// How it ended.
        status: NodeStatus,
        /// Attempts made.
        attempts: u32,
        /// The error, when it failed.
        error: Option<String>,
    },
    /// A node settled: succeeded, failed, skipped, upstream_failed or cancelled.
    NodeSettled {
        /// The node's id.
        node: Arc<str>,
        /// How it ended.
        status: NodeStatus,
        /// Attempts made.
        attempts: u32,
        /// The error, when it failed.
        error: Option<String>,
    },
    /// The run finished.
    RunFinished {
        /// How it ended.
        status: RunStatus,
        /// Wall time in milliseconds.
        duration_ms: f64,
    },
}

impl EventKind {
    /// The node this event is about, if any.
    pub fn node(&self) -> Option<&str> {
        match self {
            EventKind::NodeReady { node }
            | EventKind::NodeStarted { node, .. }
            | EventKind::AttemptFailed { node, .. }
            | EventKind::LimitWaited { node, .. }
            | EventKind::ItemsListed { node, .. }
            | EventKind::ItemStarted { node, .. }
            | EventKind::ItemSettled { node, .. }
            | EventKind::NodeSettled { node, .. }
            | EventKind::NodeWaiting { node, .. }
            | EventKind::SignalReceived { node, .. }
            | EventKind::Notice { node, .. } => Some(node),
            _ => None,
        }
    }
}

/// Where a run sends its events: the sending half of an unbounded channel, so a
/// slow consumer never slows the run down.
pub type EventSender = mpsc::UnboundedSender<Event>;

/// The receiving half that [`crate::RunOptions::subscribe`] returns.
pub type EventReceiver = mpsc::UnboundedReceiver<Event>;
