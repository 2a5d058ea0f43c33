//! One vocabulary for what happens in a run. Each transition is one
//! [`Fact`] value; the journal's [`Record`] and the subscribers'
//! [`EventKind`] are both made from it, in one place ([`Shared::note`]), so
//! what is journaled and what is published cannot drift apart.
//!
//! Not every transition is journaled: a node skipped or cancelled before it
//! started, and the results a resumed run restores, are published only (the
//! journal can tell them again), and some events have no record at all (a node
//! ready, a limit's wait). Records and events are built only when the run has
//! a journal or a subscriber: a plain run builds neither.

use std::future::Future;
use std::pin::Pin;

use flow_core::{AttemptReport, ItemRun, NodeReport, NodeStatus, Record, Report};
use serde_json::Value;

use crate::driver::Shared;
use crate::event::EventKind;

/// One transition of a run (nodes by index).
pub(crate) enum Fact<'a> {
    /// An attempt of a node, or of one item of a `for_each` node, starts.
    AttemptStarted {
        node: usize,
        item: Option<usize>,
        attempt: u32,
        at_ms: f64,
    },
    /// An attempt failed and another one follows after `retry_in_ms`.
    AttemptFailed {
        node: usize,
        item: Option<usize>,
        attempt: u32,
        detail: &'a AttemptReport,
        retry_in_ms: f64,
    },
    /// A `for_each` node's list was rendered.
    ItemsListed { node: usize, items: usize },
    /// One item of a `for_each` node settled (`output` is `null` unless it succeeded).
    ItemSettled {
        node: usize,
        item: &'a ItemRun,
        output: &'a Value,
    },
    /// A node settled: its report entry so far (`base`) with how it ended.
    NodeSettled {
        node: usize,
        base: &'a NodeReport,
        status: NodeStatus,
        output: &'a Value,
        error: &'a Option<String>,
    },
    /// An attempt begins to wait.
    NodeWaiting {
        node: usize,
        item: Option<usize>,
        attempt: u32,
        waiting: &'a flow_core::Waiting,
        at_ms: f64,
    },
    /// A waiting attempt took signal number `id`.
    SignalReceived {
        node: usize,
        item: Option<usize>,
        attempt: u32,
        name: &'a str,
        id: u64,
        payload: &'a Value,
        at_ms: f64,
    },
    /// The run is parked: every unit under way waits.
    RunWaiting {
        at_ms: f64,
        wake_at_ms: Option<i64>,
        signals: &'a [String],
    },
    /// Something to know about an attempt under way.
    Notice {
        node: usize,
        item: Option<usize>,
        attempt: u32,
        message: &'a str,
        at_ms: f64,
    },
    /// The run was cancelled from outside (journaled, not published: the
    /// nodes' own events say it).
    RunCancelled { at_ms: f64 },
    /// The run ended with `report`.
    RunFinished { report: &'a Report },
}

impl Fact<'_> {
    /// The journal's record of it. Outputs are redacted here: secrets never
    /// reach the journal.
    fn record(&self, shared: &Shared) -> Record {
        let id = |node: usize| shared.workflow.nodes()[node].id().to_owned();
        match *self {
            Fact::AttemptStarted {
                node,
                item,
                attempt,
                at_ms,
            } => Record::NodeStarted {
                node: id(node),
                item,
                attempt,
                at_ms,
            },
            Fact::AttemptFailed {
                node,
                item,
                attempt,
                detail,
                retry_in_ms,
            } => Record::AttemptFailed {
                node: id(node),
                item,
                attempt,
                detail: detail.clone(),
                retry_in_ms,
            },
            Fact::ItemsListed { node, items } => Record::ItemsListed { node: id(node), items },
            Fact::ItemSettled { node, item, output } => Record::ItemSettled {
                node: id(node),
                item: item.clone(),
                output: shared.redactor.redact_value(output.clone()),
            },
            Fact::NodeSettled {
                node,
                base,
                status,
                output,
                error,
            } => {
                let mut report = base.clone();
                report.status = status;
                report.output = shared.redactor.redact_value(output.clone());
                report.error = error.clone();
                Record::NodeSettled { node: id(node), report }
            }
            Fact::NodeWaiting {
                node,
                item,
                attempt,
                waiting,
                at_ms,
            } => Record::NodeWaiting {
                node: id(node),
                item,
                attempt,
                waiting: waiting.clone(),
                at_ms,
            },
            Fact::SignalReceived {
                node,
                item,
                attempt,
                name,
                id: number,
                payload,
                at_ms,
            } => Record::SignalReceived {
                node: id(node),
                item,
                attempt,
                name: name.to_owned(),
                id: number,
                payload: payload.clone(),
                at_ms,
            },
            Fact::Notice {
                node,
                item,
                attempt,
                message,
                at_ms,
            } => Record::Notice {
                node: id(node),
                item,
                attempt,
                message: message.to_owned(),
                at_ms,
            },
            Fact::RunWaiting {
                at_ms,
                wake_at_ms,
                signals,
            } => Record::RunWaiting {
                at_ms,
                wake_at_ms,
                signals: signals.to_vec(),
            },
            Fact::RunCancelled { at_ms } => Record::RunCancelled { at_ms },
            Fact::RunFinished { report } => Record::RunFinished {
                status: report.status,
                duration_ms: report.duration_ms,
                report: Box::new(report.clone()),
            },
        }
    }

    /// The subscribers' event of it, if it has one.
    fn event(&self, shared: &Shared) -> Option<EventKind> {
        let id = |node: usize| shared.workflow.nodes()[node].id_arc().clone();
        Some(match *self {
            Fact::AttemptStarted {
                node,
                item: None,
                attempt,
                ..
            } => EventKind::NodeStarted {
                node: id(node),
                attempt,
            },
            Fact::AttemptStarted {
                node,
                item: Some(index),
                attempt,
                ..
            } => EventKind::ItemStarted {
                node: id(node),
                index,
                attempt,
            },
            Fact::AttemptFailed {
                node,
                item,
                attempt,
                detail,
                retry_in_ms,
            } => EventKind::AttemptFailed {
                node: id(node),
                item,
                attempt,
                error: detail.error.clone().unwrap_or_default(),
                retry_in_ms,
            },
            Fact::ItemsListed { node, items } => EventKind::ItemsListed { node: id(node), items },
            Fact::ItemSettled { node, item, .. } => EventKind::ItemSettled {
                node: id(node),
                index: item.index,
                status: item.status,
                attempts: item.attempts,
                error: item.error.clone(),
            },
            Fact::NodeSettled {
                node,
                base,
                status,
                error,
                ..
            } => EventKind::NodeSettled {
                node: id(node),
                status,
                attempts: base.attempts,
                error: error.clone(),
            },
            Fact::NodeWaiting {
                node, item, waiting, ..
            } => EventKind::NodeWaiting {
                node: id(node),
                item,
                waiting: waiting.clone(),
            },
            Fact::SignalReceived { node, item, name, .. } => EventKind::SignalReceived {
                node: id(node),
                item,
                name: name.to_owned(),
            },
            Fact::Notice {
                node, item, message, ..
            } => EventKind::Notice {
                node: id(node),
                item,
                message: message.to_owned(),
            },
            Fact::RunWaiting {
                wake_at_ms, signals, ..
            } => EventKind::RunWaiting {
                wake_at_ms,
                signals: signals.to_vec(),
            },
            Fact::RunCancelled { .. } => return None,
            Fact::RunFinished { report } => EventKind::RunFinished {
                status: report.status,
                duration_ms: report.duration_ms,
            },
        })
    }
}

impl Shared {
    /// The one place a run's transitions go out: the record appended to the
    /// run's journal (when it has one and `journaled` holds), then the event
    /// sent to subscribers (when there are any).
    #[inline]
    pub(crate) fn note(&self, fact: &Fact<'_>, journaled: bool) {
        // A plain run (no journal, no subscriber) pays this test alone.
        if (journaled && self.journal.is_some()) || self.has_subscribers() {
            self.note_out_of_line(fact, journaled);
        }
    }

    #[inline(never)]
    fn note_out_of_line(&self, fact: &Fact<'_>, journaled: bool) {
        if journaled && let Some(journal) = &self.journal {
            journal.append(fact.record(self));
        }
        self.publish(fact);
    }

    /// As [`Shared::note`], the record made durable before the event is sent
    /// (a node's side effect begins only once its start is durable). When the
    /// journal refuses the record, nothing is published and the error returned.
    pub(crate) async fn note_durable(&self, fact: &Fact<'_>) -> Result<(), flow_journal::Error> {
        if let Some(journal) = &self.journal {
            // Boxed: a record is large, and would otherwise make the caller's
            // future larger, journaled or not.
            Box::pin(journal.append_durable(fact.record(self))).await?;
        }
        self.publish(fact);
        Ok(())
    }

    /// An attempt starts: published at once on a run without a journal, or
    /// appended and published at once when it need not be `durable`; else the
    /// returned future makes its record durable, then publishes it. The future is boxed and holds the fact, so an attempt's
    /// own future (one per node) does not grow by either.
    pub(crate) fn attempt_started(
        &self,
        node: usize,
        item: Option<usize>,
        attempt: u32,
        at_ms: f64,
        durable: bool,
    ) -> Option<Pin<Box<impl Future<Output = Result<(), flow_journal::Error>> + Send + '_>>> {
        let fact = Fact::AttemptStarted {
            node,
            item,
            attempt,
            at_ms,
        };
        let journal = match &self.journal {
            Some(journal) if durable => journal,
            _ => {
                self.note(&fact, true);
                return None;
            }
        };
        // One box for the fact and the durable append together.
        Some(Box::pin(async move {
            journal.append_durable(fact.record(self)).await?;
            self.publish(&fact);
            Ok(())
        }))
    }

    /// An attempt failed and another follows after `retry_in_ms`: journaled
    /// and published. Out of line, so the attempt's future holds none of it
    /// across its wait.
    pub(crate) fn attempt_failed(
        &self,
        node: usize,
        item: Option<usize>,
        attempt: u32,
        detail: &AttemptReport,
        retry_in_ms: f64,
    ) {
        let fact = Fact::AttemptFailed {
            node,
            item,
            attempt,
            detail,
            retry_in_ms,
        };
        self.note(&fact, true);
    }

    /// Sends the transition's event only (it is journaled another way, or not
    /// at all).
    #[inline]
    pub(crate) fn publish(&self, fact: &Fact<'_>) {
        if self.has_subscribers() {
            self.publish_out_of_line(fact);
        }
    }

    #[inline(never)]
    fn publish_out_of_line(&self, fact: &Fact<'_>) {
        if let Some(kind) = fact.event(self) {
            self.emit(|| kind);
        }
    }
}
