//! Every attempt of one node: its shared limit, timeouts, retries with backoff,
//! cancellation and caught panics. The driver polls this future once inline and
//! spawns it only if it suspends.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use flow_core::{AttemptReport, InFlight, NodeCall, NodeError};
use futures::FutureExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::driver::{Shared, ms};
use crate::event::EventKind;
use crate::limit::{Held, SharedLimit, Slot};

/// What one node's execution (all its attempts) produced.
pub(crate) struct Finished {
    pub(crate) node: usize,
    /// For an item of a `for_each` node, its index.
    pub(crate) item: Option<usize>,
    pub(crate) result: Result<Value, NodeError>,
    pub(crate) cancelled: bool,
    pub(crate) attempts: Vec<AttemptReport>,
}

impl Finished {
    /// A node that failed before its first attempt (its config could not be
    /// rendered, say): one attempt of no duration, with the error.
    pub(crate) fn failed_to_start(node: usize, item: Option<usize>, at_ms: f64, message: String) -> Finished {
        Finished {
            node,
            item,
            result: Err(NodeError::permanent(message.clone())),
            cancelled: false,
            attempts: vec![AttemptReport {
                started_ms: at_ms,
                finished_ms: at_ms,
                error: Some(message),
                limit_wait_ms: None,
            }],
        }
    }
}

/// The shared limit one node takes, with its rendered key.
pub(crate) struct Limit {
    pub(crate) name: Arc<str>,
    pub(crate) shared: Arc<SharedLimit>,
    pub(crate) key: String,
}

pub(crate) struct Attempts {
    pub(crate) node: usize,
    pub(crate) item: Option<usize>,
    pub(crate) call: Option<NodeCall>,
    /// For a unit a resumed run takes over mid-flight: its attempts so far.
    pub(crate) resumed: Option<Box<InFlight>>,
    pub(crate) limit: Option<Limit>,
    pub(crate) shared: Arc<Shared>,
}

impl Attempts {
    fn finished(&self, result: Result<Value, NodeError>, attempts: Vec<AttemptReport>) -> Finished {
        Finished {
            node: self.node,
            item: self.item,
            result,
            cancelled: false,
            attempts,
        }
    }

    fn cancelled(&self, attempts: Vec<AttemptReport>) -> Finished {
        Finished {
            node: self.node,
            item: self.item,
            result: Err(NodeError::permanent("cancelled")),
            cancelled: true,
            attempts,
        }
    }

    pub(crate) async fn run(mut self) -> Finished {
        let shared = self.shared.clone();
        let node = &shared.workflow.nodes()[self.node];
        let policy = *node.retry();
        let timeout = node.timeout();
        let kind = node.kind();
        // A resumed unit that was waiting waits for the same (its first
        // attempt here only: a retry waits afresh).
        let mut restored = None;
        let (mut attempts, mut attempt) = match self.resumed.take() {
            None => (Vec::with_capacity(1), 1),
            Some(flight) => {
                let flight = *flight;
                if flight.waiting.is_some() || flight.received.is_some() {
                    restored = Some((flight.waiting, flight.received));
                }
                (flight.attempts, flight.attempt + 1)
            }
        };
        loop {
            // The limit is taken before each attempt, and held while it runs.
            let (held, waited): (Held, Option<f64>) = match &self.limit {
                None => (None, None),
                Some(limit) => {
                    let asked = shared.now_ms();
                    // Boxed: its waits would otherwise make every node's future larger.
                    let Some(held) = Box::pin(acquire(
                        &limit.shared,
                        &limit.key,
                        &shared.cancel,
                        shared.dispatcher.as_deref(),
                    ))
                    .await
                    else {
                        return self.cancelled(attempts);
                    };
                    let waited = shared.now_ms() - asked;
                    shared.emit(|| EventKind::LimitWaited {
                        node: node.id_arc().clone(),
                        item: self.item,
                        attempt,
                        limit: limit.name.clone(),
                        waited_ms: waited,
                    });
                    (held, Some(waited))
                }
            };
            let started = shared.now_ms();
            // Durable before the side effect begins: a run resumed after a
            // crash knows this attempt may have happened. A kind without
            // effects run here starts at once, its start committed alongside.
            let guarded = kind.effects() || (shared.dispatcher.is_some() && !kind.waits() && !kind.runs_workflows());
            if let Some(durable) = shared.attempt_started(self.node, self.item, attempt, started, guarded)
                && let Err(e) = durable.await
            {
                let error = NodeError::permanent(format!("not started: {e}"));
                return self.finished(Err(error), attempts);
            }
            let span = tracing::debug_span!(
                parent: &shared.span,
                "node",
                node = node.id(),
                kind = node.kind_name(),
                attempt
            );
            // The last attempt hands its call over; earlier ones need a copy.
            let next = if attempt < policy.max_attempts {
                self.call.clone()
            } else {
                self.call.take()
            };
            let Some(mut call) = next else {
                let error = NodeError::permanent("internal error: no call left for this attempt");
                return self.finished(Err(error), attempts);
            };
            call.attempt = attempt;
            let waits = kind.waits().then(|| {
                Arc::new(crate::waits::UnitWaits {
                    shared: shared.clone(),
                    node: self.node,
                    item: self.item,
                    attempt,
                    restored: restored.take(),
                })
            });
            if kind.runs_workflows() {
                call.children = Some(Arc::new(crate::child::UnitChildren {
                    shared: shared.clone(),
                    node: self.node,
                    item: self.item,
                    waits: waits.clone(),
                }));
            }
            if let Some(waits) = waits {
                call.waits = Some(waits);
            }
            let work = match &shared.dispatcher {
                // A kind that waits runs here: its waits are the run's.
                Some(dispatcher) if !kind.waits() && !kind.runs_workflows() => {
                    dispatch(&**dispatcher, &shared, self.node, self.item, call)
                }
                _ => kind.run(call),
            };
            let work = AssertUnwindSafe(work).catch_unwind().instrument(span.clone());
            let outcome = if kind.runs_workflows() {
                // A child run sees the cancel itself (its token is the run's
                // child) and ends, its end journaled, before this attempt
                // ends as cancelled: dropped mid-way, it would end nowhere.
                let r = with_timeout(work, timeout).await;
                (!shared.cancel.is_cancelled()).then_some(r)
            } else {
                tokio::select! {
                    biased;
                    r = with_timeout(work, timeout) => Some(r),
                    _ = shared.cancel.cancelled() => None,
                }
            };
            drop(held);
            let finished = shared.now_ms();
            let result = match outcome {
                None => {
                    attempts.push(AttemptReport {
                        started_ms: started,
                        finished_ms: finished,
                        error: Some("cancelled".to_owned()),
                        limit_wait_ms: waited,
                    });
                    return self.cancelled(attempts);
                }
                Some(Err(TimedOut)) => Err(NodeError::new(format!(
                    "timed out after {} ms (timeout_ms)",
                    timeout.map_or(0, |t| t.as_millis())
                ))),
                Some(Ok(Err(panic))) => Err(NodeError::permanent(format!(
                    "panicked: {}",
                    flow_core::panic_message(&*panic)
                ))),
                Some(Ok(Ok(r))) => r,
            };
            let error = result.as_ref().err().map(|e| shared.redactor.redact(e.message()));
            attempts.push(AttemptReport {
                started_ms: started,
                finished_ms: finished,
                error: error.clone(),
                limit_wait_ms: waited,
            });
            match result {
                Err(e) if attempt < policy.max_attempts && e.is_retryable() => {
                    let unit = (RandomState::new().hash_one((self.node, attempt)) >> 11) as f64 / (1u64 << 53) as f64;
                    let mut wait = policy.delay(attempt, unit);
                    if let Some(asked) = e.retry_after() {
                        wait = wait.max(asked.min(policy.max_backoff));
                    }
                    // (`attempts` has this attempt's report: it was pushed above.)
                    if let Some(detail) = attempts.last() {
                        shared.attempt_failed(self.node, self.item, attempt, detail, ms(wait));
                    }
                    tracing::debug!(
                        parent: &span,
                        node = node.id(),
                        attempt,
                        wait_ms = ms(wait),
                        "attempt failed; retrying"
                    );
                    tokio::select! {
                        biased;
                        _ = shared.cancel.cancelled() => return self.cancelled(attempts),
                        _ = tokio::time::sleep(wait) => {}
                    }
                    attempt += 1;
                }
                result => return self.finished(result, attempts),
            }
        }
    }
}

type Work<'a> = std::pin::Pin<Box<dyn Future<Output = Result<Value, NodeError>> + Send + 'a>>;

/// Hands one attempt to the dispatcher. Out of line: the local path's future
/// does not hold what only a dispatched attempt needs.
#[inline(never)]
fn dispatch<'a>(
    dispatcher: &'a dyn crate::Dispatcher,
    shared: &Arc<Shared>,
    index: usize,
    item: Option<usize>,
    call: NodeCall,
) -> Work<'a> {
    let node = &shared.workflow.nodes()[index];
    let task = crate::Task {
        run_id: shared.run_id.clone(),
        node: node.id_arc().clone(),
        kind: Arc::from(node.kind_name()),
        item,
        attempt: call.attempt,
        idempotency_key: call.idempotency_key(),
        timeout: node.timeout(),
        notices: crate::Notices::new(shared.clone(), index, item, call.attempt),
    };
    dispatcher.dispatch(task, call)
}

/// Takes `limit` for `key`: its concurrency slot first (so the quota is spent
/// only by starts that can begin), then a start from its quota. `None` when the
/// run is cancelled meanwhile.
async fn acquire(
    limit: &SharedLimit,
    key: &str,
    cancel: &CancellationToken,
    dispatcher: Option<&dyn crate::Dispatcher>,
) -> Option<Held> {
    let permit = match shared_slot(limit, key, cancel, dispatcher).await {
        Some(Some(guard)) => Some(Slot::Shared(guard)),
        Some(None) => return None,
        None => match limit.semaphore(key) {
            None => None,
            Some(semaphore) => tokio::select! {
                biased;
                _ = cancel.cancelled() => return None,
                permit = semaphore.acquire_owned() => permit.ok().map(Slot::Local),
            },
        },
    };
    while let Err(wait) = admit(limit, key, dispatcher).await {
        let at = tokio::time::Instant::now() + wait;
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return None,
            _ = sleep_until(Some(at)) => {}
        }
    }
    Some(permit)
}

/// A slot of `limit`'s cap from the dispatcher, when it shares caps beyond
/// this process: `None` when it does not (or the limit has no cap),
/// `Some(None)` when the run was cancelled while waiting.
async fn shared_slot(
    limit: &SharedLimit,
    key: &str,
    cancel: &CancellationToken,
    dispatcher: Option<&dyn crate::Dispatcher>,
) -> Option<Option<crate::SlotGuard>> {
    let (dispatcher, cap) = (dispatcher?, limit.max_concurrency()?);
    let slot = crate::Slot {
        workflow: limit.scope.as_deref(),
        name: &limit.name,
        key,
        max_concurrency: cap as u32,
    };
    loop {
        match dispatcher.slot(&slot).await? {
            Ok(guard) => return Some(Some(guard)),
            Err(wait) => {
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return Some(None),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// One start under `limit`'s quota: from the dispatcher when it shares quotas
/// beyond this process, else from the engine's own limiter.
async fn admit(limit: &SharedLimit, key: &str, dispatcher: Option<&dyn crate::Dispatcher>) -> Result<(), Duration> {
    if let (Some(dispatcher), Some((per_second, burst))) = (dispatcher, limit.rate) {
        let quota = crate::Quota {
            workflow: limit.scope.as_deref(),
            name: &limit.name,
            key,
            per_second,
            burst,
        };
        if let Some(verdict) = dispatcher.admit(&quota).await {
            return verdict;
        }
    }
    limit.admit(key)
}

struct TimedOut;

async fn with_timeout<F: Future>(work: F, timeout: Option<Duration>) -> Result<F::Output, TimedOut> {
    match timeout {
        None => Ok(work.await),
        Some(limit) => tokio::time::timeout(limit, work).await.map_err(|_| TimedOut),
    }
}

/// Waits for the next admission. tokio's timer fires on the first 1 ms tick at or
/// after the deadline, and under a quota with no burst every late start is lost for
/// good (at 50/s, 1 ms late per start is a 5% slower rate). So the timer covers all
/// but the last 2 ms, and a blocking-pool thread sleeps the rest precisely.
pub(crate) async fn sleep_until(at: Option<tokio::time::Instant>) {
    const FINE: Duration = Duration::from_millis(2);
    let Some(at) = at else {
        return std::future::pending().await;
    };
    if let Some(coarse) = at.checked_sub(FINE)
        && coarse > tokio::time::Instant::now()
    {
        tokio::time::sleep_until(coarse).await;
    }
    let rest = at.saturating_duration_since(tokio::time::Instant::now());
    if !rest.is_zero() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
    }
}
