//! Where a node's attempt runs. The driver keeps everything that decides (the
//! state machine, rendering, retries, timeouts, trigger rules, the strategy's
//! admission, limits, the journal) and hands each attempt, rendered, to a
//! [`Dispatcher`]. Without one (the default) the attempt runs in this process,
//! by a direct call of its [`NodeKind`](flow_core::NodeKind): the local path
//! has no seam to pay for. `flow-dist` has the dispatcher that queues attempts
//! in PostgreSQL for workers on other machines.

use std::sync::Arc;
use std::time::Duration;

use flow_core::{NodeCall, NodeError};
use serde_json::Value;

/// One attempt of one node, as the driver hands it over.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Task {
    /// The run's id.
    pub run_id: Arc<str>,
    /// The node's id.
    pub node: Arc<str>,
    /// The node's kind, as the workflow names it (`http`, `delay`...).
    pub kind: Arc<str>,
    /// For an item of a `for_each` node, its index.
    pub item: Option<usize>,
    /// 1 for the first attempt, 2 for the first retry...
    pub attempt: u32,
    /// The attempt's side-effect key ([`NodeCall::idempotency_key`]): the same
    /// for every attempt of the node (or item), wherever it runs.
    pub idempotency_key: String,
    /// The node's `timeout_ms`: the driver stops waiting then (and drops the
    /// dispatch), a worker may stop working then.
    pub timeout: Option<Duration>,
    /// Where the dispatcher tells the run's operators about this attempt.
    pub notices: Notices,
}

/// Tells a run's operators something about one attempt under way (a task no
/// worker takes yet): a `notice` record in the run's journal and event
/// stream. It changes nothing in the run.
#[derive(Clone)]
pub struct Notices {
    shared: Arc<crate::driver::Shared>,
    node: usize,
    item: Option<usize>,
    attempt: u32,
}

impl Notices {
    pub(crate) fn new(shared: Arc<crate::driver::Shared>, node: usize, item: Option<usize>, attempt: u32) -> Notices {
        Notices {
            shared,
            node,
            item,
            attempt,
        }
    }

    /// Records `message` for the attempt, and publishes it.
    pub fn say(&self, message: &str) {
        let fact = crate::fact::Fact::Notice {
            node: self.node,
            item: self.item,
            attempt: self.attempt,
            message,
            at_ms: self.shared.now_ms(),
        };
        self.shared.note(&fact, true);
    }
}

impl std::fmt::Debug for Notices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notices")
            .field("run_id", &self.shared.run_id)
            .field("node", &self.node)
            .field("item", &self.item)
            .field("attempt", &self.attempt)
            .finish()
    }
}

/// Runs attempts somewhere. The future it returns resolves to the attempt's
/// outcome; **dropping it cancels the attempt** (the run was cancelled, a
/// fail-fast strategy gave up, the timeout passed): a dispatcher must then stop
/// the attempt wherever it runs.
#[async_trait::async_trait]
pub trait Dispatcher: Send + Sync + std::fmt::Debug + 'static {
    /// Runs `task`; `call` is what the kind would get in this process: the
    /// rendered config, the attempt number, the item, and a read-only view of
    /// the run.
    async fn dispatch(&self, task: Task, call: NodeCall) -> Result<Value, NodeError>;

    /// Called when this process takes run `run_id` over (`Engine::resume`),
    /// before anything of it runs again: attempts the previous owner left
    /// under way are its to stop. The default does nothing.
    async fn adopt(&self, run_id: &str) -> Result<(), String> {
        let _ = run_id;
        Ok(())
    }

    /// Admits one start under a limit's quota shared by every process that
    /// dispatches to the same place (coordinators on several machines):
    /// `Some(Ok(()))` to start now, `Some(Err(wait))` to ask again after
    /// `wait`. `None`, the default, leaves the quota to this process (the
    /// engine's own limiter).
    async fn admit(&self, quota: &Quota<'_>) -> Option<Result<(), Duration>> {
        let _ = quota;
        None
    }

    /// Takes one of the `max_concurrency` slots of a limit, shared by every
    /// process that dispatches to the same place: `Some(Ok(guard))` holds it
    /// until the guard is dropped (when the attempt ends), `Some(Err(wait))`
    /// to ask again after `wait`. `None`, the default, leaves the cap to this
    /// process (the engine's own semaphore).
    async fn slot(&self, slot: &Slot<'_>) -> Option<Result<SlotGuard, Duration>> {
        let _ = slot;
        None
    }
}

/// A limit's concurrency cap, as [`Dispatcher::slot`] is asked for a slot of it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Slot<'a> {
    /// Who shares it: the workflow's name for a limit declared in a file,
    /// `None` for one declared on the engine.
    pub workflow: Option<&'a str>,
    /// The limit's name.
    pub name: &'a str,
    /// The node's rendered key (`limit_key`), `""` without one.
    pub key: &'a str,
    /// Attempts at once under the limit (and key).
    pub max_concurrency: u32,
}

/// A held slot of a shared limit: dropping it gives the slot back.
pub type SlotGuard = Box<dyn std::any::Any + Send + Sync>;

/// A limit's quota, as [`Dispatcher::admit`] is asked for a start under it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Quota<'a> {
    /// Who shares it: the workflow's name for a limit declared in a file,
    /// `None` for one declared on the engine.
    pub workflow: Option<&'a str>,
    /// The limit's name.
    pub name: &'a str,
    /// The node's rendered key (`limit_key`), `""` without one.
    pub key: &'a str,
    /// Starts per second.
    pub per_second: f64,
    /// Starts admitted at once after an idle time.
    pub burst: u32,
}
