//! Typed events of a run, for an embedder's UI or store, and for `flow run`'s
//! progress display. Nothing is built when nobody subscribes.

use std::sync::Arc;

use flow_core::{NodeStatus, RunStatus};
use tokio::sync::mpsc;

/// One thing that happened in a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The run it belongs to.
    pub run_id: u64,
    /// Monotonic time since the run started, in milliseconds.
    pub at_ms: f64,
    /// What happened.
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
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
        /// The attempt that failed.
        attempt: u32,
        /// Why.
        error: String,
        /// The wait before the next attempt, in milliseconds.
        retry_in_ms: f64,
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
            | EventKind::NodeSettled { node, .. } => Some(node),
            _ => None,
        }
    }
}

/// Where a run sends its events: the sending half of an unbounded channel, so a
/// slow consumer never slows the run down.
pub type EventSender = mpsc::UnboundedSender<Event>;

/// The receiving half that [`crate::RunOptions::subscribe`] returns.
pub type EventReceiver = mpsc::UnboundedReceiver<Event>;
