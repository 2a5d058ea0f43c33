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

/// A unit of work: a node, and for an item of a `for_each` node its index.
type Unit = (usize, Option<usize>);

/// What the waiting units of a run wait for: the earliest instant one is
/// due, the signals they take, and each unit with its wait.
pub(crate) type Summary = (Option<i64>, Vec<String>, Vec<(usize, Option<usize>, Waiting)>);

/// The units of a run that wait now, and what for: the driver parks the run
/// when every unit under way waits.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    /// What each unit that began a wait waits for, by (node, item).
    what: Mutex<HashMap<Unit, (Waiting, usize)>>,
    /// Units inside a wait now (sleeping or waiting for a signal).
    now: AtomicU64,
    /// Rung when a unit enters a wait.
    pub(crate) bell: Notify,
}

impl Waiters {
    /// How many units wait now.
    pub(crate) fn count(&self) -> usize {
        self.now.load(Ordering::Acquire) as usize
    }

    /// What the waiting units wait for: the earliest instant one is due,
    /// and the signals they take.
    pub(crate) fn summary(&self) -> Summary {
        let what = self.what.lock().unwrap_or_else(PoisonError::into_inner);
        let mut due: Option<i64> = None;
        let mut signals: Vec<String> = Vec::new();
        let mut units = Vec::new();
        for ((node, item), (waiting, inside)) in what.iter() {
            if *inside == 0 {
                continue;
            }
            if let Some(at) = waiting.due_ms() {
                due = Some(due.map_or(at, |d| d.min(at)));
            }
            if let Some(name) = &waiting.signal
                && !signals.contains(name)
            {
                signals.push(name.clone());
            }
            units.push((*node, *item, waiting.clone()));
        }
        signals.sort();
        (due, signals, units)
    }
}

/// Held while a unit is inside a wait: counts it as waiting.
struct Inside<'a> {
    waiters: &'a Waiters,
    unit: (usize, Option<usize>),
}

impl<'a> Inside<'a> {
    fn enter(waiters: &'a Waiters, unit: (usize, Option<usize>)) -> Inside<'a> {
        let first = {
            let mut what = waiters.what.lock().unwrap_or_else(PoisonError::into_inner);
            match what.get_mut(&unit) {
                Some((_, inside)) => {
                    *inside += 1;
                    *inside == 1
                }
                None => false,
            }
        };
        if first {
            waiters.now.fetch_add(1, Ordering::AcqRel);
            waiters.bell.notify_one();
        }
        Inside { waiters, unit }
    }
}

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        let last = {
            let mut what = self.waiters.what.lock().unwrap_or_else(PoisonError::into_inner);
            match what.get_mut(&self.unit) {
                Some((_, inside)) if *inside > 0 => {
                    *inside -= 1;
                    *inside == 0
                }
                _ => false,
            }
        };
        if last {
            self.waiters.now.fetch_sub(1, Ordering::AcqRel);
        }
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

impl Drop for UnitWaits {
    /// The attempt is over: it waits no more.
    fn drop(&mut self) {
        self.shared
            .waiters
            .what
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(self.node, self.item));
    }
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
        self.shared
            .waiters
            .what
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((self.node, self.item), (waiting.clone(), 0));
        Ok(waiting)
    }

    async fn sleep_until(&self, until_ms: i64) {
        let _inside = Inside::enter(&self.shared.waiters, (self.node, self.item));
        let left = until_ms - flow_journal::now_ms();
        if left > 0 {
            flow_nodes::timer::sleep(Duration::from_millis(left as u64)).await;
        }
    }

    async fn next_signal(&self, name: &str) -> Result<Value, NodeError> {
        if let Some((_, Some((_, payload)))) = &self.restored {
            return Ok(payload.clone());
        }
        let shared = &self.shared;
        // Counted as waiting only once a look found nothing: a run woken for
        // a signal takes it before it could be parked again.
        let mut inside = None;
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
            if inside.is_none() {
                inside = Some(Inside::enter(&shared.waiters, (self.node, self.item)));
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
