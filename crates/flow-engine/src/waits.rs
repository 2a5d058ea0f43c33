//! The engine's side of nodes that wait ([`flow_core::Waits`]): each wait is
//! recorded (`node_waiting`, with its instants fixed) before it begins, and
//! each signal a wait takes is recorded (`signal_received`) before the node
//! goes on, so a run resumed from its journal waits until the same instant
//! and never takes a signal twice.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use flow_core::{NodeError, Waiting};
use serde_json::Value;
use tokio::sync::Notify;

use crate::driver::Shared;
use crate::fact::Fact;

/// How often a waiting node looks in the journal for a signal another
/// process sent (one sent through [`Signals::ring`] is seen at once).
const POLL: Duration = Duration::from_millis(100);

/// A run's signals: sent in memory to a run without a journal, or a bell
/// rung when one was written to the run's journal. Cloned, it is the same.
#[derive(Debug, Clone, Default)]
pub struct Signals {
    inner: Arc<SignalsInner>,
}

#[derive(Debug, Default)]
struct SignalsInner {
    /// Sent in memory, oldest first: number, name, payload.
    sent: Mutex<VecDeque<(u64, String, Value)>>,
    next: AtomicU64,
    bell: Notify,
}

impl Signals {
    /// No signal yet.
    pub fn new() -> Signals {
        Signals::default()
    }

    /// Sends signal `name` with `payload` to a run that has no journal (with
    /// a journal, signals are written to it: `Journal::send_signal`, then
    /// [`Signals::ring`]). Of several of one name, the oldest is taken first.
    /// Returns its number.
    pub fn send(&self, name: &str, payload: Value) -> u64 {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.inner
            .sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back((id, name.to_owned(), payload));
        self.ring();
        id
    }

    /// Tells the run's waiting nodes that a signal was written to its journal:
    /// they look at once, not at their next look.
    pub fn ring(&self) {
        self.inner.bell.notify_waiters();
    }

    /// The oldest signal `name` sent in memory numbered above `after`.
    fn in_memory(&self, name: &str, after: u64) -> Option<(u64, Value)> {
        let sent = self.inner.sent.lock().unwrap_or_else(PoisonError::into_inner);
        sent.iter()
            .find(|(id, n, _)| *id > after && n == name)
            .map(|(id, _, payload)| (*id, payload.clone()))
    }
}

/// The signals a run's waits have taken: the newest number, by name. One
/// take at a time, so two waits for one name never take the same signal.
pub(crate) type Taken = tokio::sync::Mutex<HashMap<String, u64>>;

/// What an attempt a restart cut short was waiting for, and the signal it
/// had taken (its number and payload).
pub(crate) type Restored = (Option<Waiting>, Option<(u64, Value)>);

/// One attempt's waits.
pub(crate) struct UnitWaits {
    pub(crate) shared: Arc<Shared>,
    pub(crate) node: usize,
    pub(crate) item: Option<usize>,
    pub(crate) attempt: u32,
    /// What the attempt a restart cut short was waiting for, and the signal it
    /// had taken: this attempt waits for the same, and gets the same.
    pub(crate) restored: Option<Restored>,
}

#[async_trait::async_trait]
impl flow_core::Waits for UnitWaits {
    async fn begin(&self, what: Waiting) -> Result<Waiting, NodeError> {
        let waiting = match self.restored.as_ref().and_then(|(w, _)| w.clone()) {
            Some(kept) => kept,
            None => Waiting {
                since_ms: flow_journal::now_ms(),
                ..what
            },
        };
        let fact = Fact::NodeWaiting {
            node: self.node,
            item: self.item,
            attempt: self.attempt,
            waiting: &waiting,
            at_ms: self.shared.now_ms(),
        };
        self.shared
            .note_durable(&fact)
            .await
            .map_err(|e| NodeError::permanent(format!("not waiting: {e}")))?;
        Ok(waiting)
    }

    async fn next_signal(&self, name: &str) -> Result<Value, NodeError> {
        if let Some((_, Some((_, payload)))) = &self.restored {
            return Ok(payload.clone());
        }
        let shared = &self.shared;
        loop {
            let bell = shared.signals.inner.bell.notified();
            tokio::pin!(bell);
            bell.as_mut().enable();
            {
                let mut taken = shared.taken.lock().await;
                let after = taken.get(name).copied().unwrap_or(0);
                let found = match &shared.journal {
                    None => shared.signals.in_memory(name, after),
                    Some(log) => match log.writer().journal().next_signal(&shared.run_id, name, after).await {
                        Ok(found) => found,
                        Err(e) => {
                            tracing::warn!(error = %e, signal = name, "looking for a signal failed; looking again");
                            None
                        }
                    },
                };
                if let Some((id, payload)) = found {
                    let fact = Fact::SignalReceived {
                        node: self.node,
                        item: self.item,
                        attempt: self.attempt,
                        name,
                        id,
                        payload: &payload,
                        at_ms: shared.now_ms(),
                    };
                    shared
                        .note_durable(&fact)
                        .await
                        .map_err(|e| NodeError::permanent(format!("signal `{name}` not taken: {e}")))?;
                    taken.insert(name.to_owned(), id);
                    return Ok(payload);
                }
            }
            match &shared.journal {
                None => bell.await,
                Some(_) => {
                    tokio::select! {
                        () = bell => {}
                        () = tokio::time::sleep(POLL) => {}
                    }
                }
            }
        }
    }
}
