//! A run as a stream of durable records, and the run rebuilt from them.
//!
//! The engine appends a [`Record`] at every transition it cannot derive again:
//! the run's start (with its document and input), each attempt's start (before
//! its side effect), each failed attempt, each node or item that settled after
//! running, and the run's end. Everything else (a node skipped by a condition,
//! `upstream_failed` downstream of a failure) follows from those through the
//! [`RunState`] machine, so it is derived again rather than stored.
//!
//! [`Recovered::fold`] reads a record stream back: what ran, what was in flight,
//! how the run ended if it did. [`Recovered::report`] turns it into the same
//! [`Report`] a run returns, with `pending` and `running` nodes for a run that
//! has not finished.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::context::{ContextWriter, Settled};
use crate::report::{AttemptReport, ItemCounts, ItemRun, NodeReport, NodeReports, NodeStatus, Report, RunStatus};
use crate::run::{Phase, RunState, Transition};
use crate::spec::{StrategySpec, WorkflowSpec};
use crate::workflow::Workflow;

/// One durable fact about a run. Serialised as JSON with a `kind` tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Record {
    /// The run began: everything needed to run it again without the file.
    RunStarted {
        /// The workflow's name.
        workflow: String,
        /// The workflow document, as JSON (a resumed run uses it, not the file).
        document: Value,
        /// The document's hash (hex SHA-256 of its canonical JSON).
        hash: String,
        /// The run's input (secrets never are part of it).
        input: Value,
        /// The strategy the run uses, when not the file's own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        strategy: Option<StrategySpec>,
        /// Wall-clock start, in milliseconds since the Unix epoch.
        started_at_ms: i64,
        /// The idempotency key of the submission that started it, as the
        /// journal binds it: in the same commit as this record, so a key is
        /// never seen without its run. When the key is bound already, the run
        /// is not created.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        idempotency_key: Option<String>,
        /// For a child run: the run and the `workflow` node that started it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent: Option<crate::Parent>,
        /// How deep the run is nested: 0 for a run nobody started, 1 for its
        /// children, and so on.
        #[serde(default, skip_serializing_if = "is_zero")]
        depth: u32,
    },
    /// An attempt of a node (or of one item) is about to run. Written, and made
    /// durable, before the node's side effect begins.
    NodeStarted {
        /// The node's id.
        node: String,
        /// For an item of a `for_each` node, its index.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<usize>,
        /// The attempt's number (1 for the first).
        attempt: u32,
        /// Offset from the run's start, in ms.
        at_ms: f64,
    },
    /// An attempt failed and another one will follow.
    AttemptFailed {
        /// The node's id.
        node: String,
        /// For an item of a `for_each` node, its index.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<usize>,
        /// The attempt that failed.
        attempt: u32,
        /// The failed attempt, with its error.
        detail: AttemptReport,
        /// The wait before the next attempt, in ms.
        retry_in_ms: f64,
    },
    /// A node that ran (or tried to) settled: its whole entry of the report.
    NodeSettled {
        /// The node's id.
        node: String,
        /// Its report entry: status, output, error, attempts.
        report: NodeReport,
    },
    /// A `for_each` node's list was rendered: how many items it has.
    ItemsListed {
        /// The node's id.
        node: String,
        /// How many items.
        items: usize,
    },
    /// One item of a `for_each` node settled.
    ItemSettled {
        /// The node's id.
        node: String,
        /// The item's entry.
        item: ItemRun,
        /// The item's output (`null` unless it succeeded).
        #[serde(default)]
        output: Value,
    },
    /// An attempt began to wait (a `wait` or `signal` node): what for, with
    /// its instants fixed. Durable before the wait begins.
    NodeWaiting {
        /// The node's id.
        node: String,
        /// For an item of a `for_each` node, its index.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<usize>,
        /// The attempt's number.
        attempt: u32,
        /// What it waits for.
        waiting: crate::Waiting,
        /// Offset from the run's start, in ms.
        at_ms: f64,
    },
    /// A waiting attempt took a signal sent to the run: it is this attempt's
    /// (no other wait takes it), and its payload the node's output.
    SignalReceived {
        /// The node's id.
        node: String,
        /// For an item of a `for_each` node, its index.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<usize>,
        /// The attempt's number.
        attempt: u32,
        /// The signal's name.
        name: String,
        /// The signal's number among those sent to the run (they are taken
        /// oldest first).
        id: u64,
        /// What was sent.
        payload: Value,
        /// Offset from the run's start, in ms.
        at_ms: f64,
    },
    /// Nothing runs and every unit under way waits: the run is parked (no
    /// process holds it) until `wake_at_ms` or a signal of `signals`.
    RunWaiting {
        /// Offset from the run's start, in ms.
        at_ms: f64,
        /// The earliest instant a wait is due (ms since the Unix epoch), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wake_at_ms: Option<i64>,
        /// The signals its waits take.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        signals: Vec<String>,
    },
    /// A parked run was taken up again (a timer came due, a signal came).
    RunWoken {
        /// Offset from the run's start, in ms.
        at_ms: f64,
    },
    /// Something the run's operators should know about an attempt under way,
    /// that changes nothing in the run (a task no worker takes yet).
    Notice {
        /// The node's id.
        node: String,
        /// For an item of a `for_each` node, its index.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<usize>,
        /// The attempt's number.
        attempt: u32,
        /// What to know, in a sentence.
        message: String,
        /// Offset from the run's start, in ms.
        at_ms: f64,
    },
    /// The run was cancelled from outside.
    RunCancelled {
        /// Offset from the run's start, in ms.
        at_ms: f64,
    },
    /// A process took the run over to continue it (`flow resume`).
    RunResumed {
        /// Offset from the run's start, in ms.
        at_ms: f64,
        /// Whether failed nodes and items were reset to run again.
        retry_failed: bool,
    },
    /// The run ended: its final report.
    RunFinished {
        /// How it ended.
        status: RunStatus,
        /// Its duration, in ms.
        duration_ms: f64,
        /// The final report, as `flow run --report` writes it.
        report: Box<Report>,
    },
}

impl Record {
    /// The record's kind, as in its `kind` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::RunStarted { .. } => "run_started",
            Record::NodeStarted { .. } => "node_started",
            Record::AttemptFailed { .. } => "attempt_failed",
            Record::NodeSettled { .. } => "node_settled",
            Record::ItemsListed { .. } => "items_listed",
            Record::ItemSettled { .. } => "item_settled",
            Record::NodeWaiting { .. } => "node_waiting",
            Record::SignalReceived { .. } => "signal_received",
            Record::Notice { .. } => "notice",
            Record::RunWaiting { .. } => "run_waiting",
            Record::RunWoken { .. } => "run_woken",
            Record::RunCancelled { .. } => "run_cancelled",
            Record::RunResumed { .. } => "run_resumed",
            Record::RunFinished { .. } => "run_finished",
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The hex SHA-256 of a workflow document's JSON: the `hash` of [`Record::RunStarted`].
pub fn document_hash(document: &Value) -> String {
    use sha2::Digest;
    let text = serde_json::to_string(document).unwrap_or_default();
    let digest = sha2::Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The workflow document a [`Record::RunStarted`] holds.
pub fn document_of(spec: &WorkflowSpec) -> Value {
    serde_json::to_value(spec).unwrap_or(Value::Null)
}

/// One unit of work: a node, or one item of a `for_each` node.
pub type UnitKey = (String, Option<usize>);

/// A unit that had started an attempt and not settled when the records end.
#[derive(Debug, Clone, PartialEq)]
pub struct InFlight {
    /// The attempt that was running.
    pub attempt: u32,
    /// When it started, ms from the run's start.
    pub at_ms: f64,
    /// Every attempt so far, the interrupted one last (its error says so).
    pub attempts: Vec<AttemptReport>,
    /// What the interrupted attempt was waiting for, if it waited: a resumed
    /// run waits for the same (a retry after a failure waits afresh).
    pub waiting: Option<crate::Waiting>,
    /// The signal the interrupted attempt had taken (its number and payload).
    pub received: Option<(u64, Value)>,
}

/// What a record stream says about a run.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    /// The workflow's name.
    pub workflow: String,
    /// The document the run started with.
    pub document: Value,
    /// Its hash.
    pub hash: String,
    /// The run's input.
    pub input: Value,
    /// The strategy override, if any.
    pub strategy: Option<StrategySpec>,
    /// Wall-clock start, ms since the Unix epoch.
    pub started_at_ms: i64,
    /// For a child run: the run that started it.
    pub parent: Option<crate::Parent>,
    /// How deep the run is nested (0: nobody started it).
    pub depth: u32,
    /// The nodes that ran and settled, by id, in the order they settled.
    pub settled: Vec<(String, NodeReport)>,
    /// The items that settled, by node id, then index: entry and output.
    pub items: HashMap<String, BTreeMap<usize, (ItemRun, Value)>>,
    /// Units that had started and not settled.
    pub in_flight: HashMap<UnitKey, InFlight>,
    /// How many items each `for_each` node's list had, by node id.
    pub listed: HashMap<String, usize>,
    /// Whether the run was cancelled from outside.
    pub cancelled: bool,
    /// The final report, when the run finished.
    pub finished: Option<Report>,
    /// The latest offset any record names, in ms.
    pub last_ms: f64,
    /// How many records were read.
    pub records: u64,
    /// Signals taken by the run's waits: the newest number taken, by name
    /// (they are taken oldest first, so every older one is taken too).
    pub signals_taken: HashMap<String, u64>,
}

impl Recovered {
    /// Folds a run's records, in order. Later records win (a node settled again
    /// after `--retry-failed` replaces its earlier entry).
    pub fn fold<'a>(records: impl IntoIterator<Item = &'a Record>) -> Recovered {
        let mut r = Recovered::default();
        let mut settled_at: HashMap<String, usize> = HashMap::new();
        for record in records {
            r.records += 1;
            match record {
                Record::RunStarted {
                    workflow,
                    document,
                    hash,
                    input,
                    strategy,
                    started_at_ms,
                    parent,
                    depth,
                    ..
                } => {
                    r.parent = parent.clone();
                    r.depth = *depth;
                    r.workflow = workflow.clone();
                    r.document = document.clone();
                    r.hash = hash.clone();
                    r.input = input.clone();
                    r.strategy = strategy.clone();
                    r.started_at_ms = *started_at_ms;
                }
                Record::NodeStarted {
                    node,
                    item,
                    attempt,
                    at_ms,
                } => {
                    r.last_ms = r.last_ms.max(*at_ms);
                    let flight = r.in_flight.entry((node.clone(), *item)).or_insert_with(|| InFlight {
                        attempt: *attempt,
                        at_ms: *at_ms,
                        attempts: Vec::new(),
                        waiting: None,
                        received: None,
                    });
                    flight.attempt = *attempt;
                    flight.at_ms = *at_ms;
                }
                Record::AttemptFailed { node, item, detail, .. } => {
                    r.last_ms = r.last_ms.max(detail.finished_ms);
                    if let Some(flight) = r.in_flight.get_mut(&(node.clone(), *item)) {
                        flight.attempts.push(detail.clone());
                        // The next attempt is a retry: it waits afresh.
                        flight.waiting = None;
                        flight.received = None;
                    }
                }
                Record::NodeWaiting {
                    node,
                    item,
                    waiting,
                    at_ms,
                    ..
                } => {
                    r.last_ms = r.last_ms.max(*at_ms);
                    if let Some(flight) = r.in_flight.get_mut(&(node.clone(), *item)) {
                        flight.waiting = Some(waiting.clone());
                    }
                }
                Record::SignalReceived {
                    node,
                    item,
                    name,
                    id,
                    payload,
                    at_ms,
                    ..
                } => {
                    r.last_ms = r.last_ms.max(*at_ms);
                    let taken = r.signals_taken.entry(name.clone()).or_insert(0);
                    *taken = (*taken).max(*id);
                    if let Some(flight) = r.in_flight.get_mut(&(node.clone(), *item)) {
                        flight.received = Some((*id, payload.clone()));
                    }
                }
                Record::NodeSettled { node, report } => {
                    if let Some(end) = report.finished_ms {
                        r.last_ms = r.last_ms.max(end);
                    }
                    r.in_flight.remove(&(node.clone(), None));
                    match settled_at.get(node) {
                        Some(&i) => r.settled[i].1 = report.clone(),
                        None => {
                            settled_at.insert(node.clone(), r.settled.len());
                            r.settled.push((node.clone(), report.clone()));
                        }
                    }
                }
                Record::ItemsListed { node, items } => {
                    r.listed.insert(node.clone(), *items);
                }
                Record::ItemSettled { node, item, output } => {
                    if let Some(end) = item.finished_ms {
                        r.last_ms = r.last_ms.max(end);
                    }
                    r.in_flight.remove(&(node.clone(), Some(item.index)));
                    r.items
                        .entry(node.clone())
                        .or_default()
                        .insert(item.index, (item.clone(), output.clone()));
                }
                // A notice changes nothing in the run; nor does parking it
                // (its units under way are folded as in flight, waiting).
                Record::Notice { at_ms, .. } | Record::RunWaiting { at_ms, .. } | Record::RunWoken { at_ms } => {
                    r.last_ms = r.last_ms.max(*at_ms)
                }
                Record::RunCancelled { at_ms } => {
                    r.last_ms = r.last_ms.max(*at_ms);
                    r.cancelled = true;
                }
                Record::RunResumed { at_ms, .. } => {
                    r.last_ms = r.last_ms.max(*at_ms);
                    r.finished = None;
                    r.cancelled = false;
                }
                Record::RunFinished {
                    duration_ms, report, ..
                } => {
                    r.last_ms = r.last_ms.max(*duration_ms);
                    r.finished = Some((**report).clone());
                }
            }
        }
        // Finished attempts of an in-flight unit are followed by the one that was
        // cut short.
        for flight in r.in_flight.values_mut() {
            flight.attempts.push(AttemptReport {
                started_ms: flight.at_ms,
                finished_ms: flight.at_ms,
                error: Some("interrupted: the process running it stopped".to_owned()),
                limit_wait_ms: None,
            });
        }
        r
    }

    /// The entry of node `id` if it settled after running.
    pub fn settled(&self, id: &str) -> Option<&NodeReport> {
        self.settled.iter().rev().find(|(n, _)| n == id).map(|(_, r)| r)
    }

    /// Forgets what failed, so a resumed run runs it again (`--retry-failed`):
    /// nodes that failed or were cancelled, and their failed or cancelled items.
    /// Succeeded nodes and items are kept. What runs again goes on with its next
    /// attempt number, its earlier attempts kept in its report.
    pub fn reset_failed(&mut self) {
        self.in_flight.clear();
        for (id, report) in &self.settled {
            if report.status == NodeStatus::Succeeded || report.items.is_some() || report.attempts == 0 {
                continue;
            }
            self.in_flight.insert(
                (id.clone(), None),
                InFlight {
                    attempt: report.attempts,
                    at_ms: report.started_ms.unwrap_or(0.0),
                    attempts: report.attempts_detail.clone(),
                    waiting: None,
                    received: None,
                },
            );
        }
        self.settled
            .retain(|(_, report)| report.status == NodeStatus::Succeeded);
        for (id, items) in &mut self.items {
            items.retain(|index, (item, _)| {
                if item.status == NodeStatus::Succeeded {
                    return true;
                }
                if item.attempts > 0 {
                    let attempts = item.attempt_reports();
                    self.in_flight.insert(
                        (id.clone(), Some(*index)),
                        InFlight {
                            attempt: item.attempts,
                            at_ms: item.started_ms.unwrap_or(0.0),
                            attempts,
                            waiting: None,
                            received: None,
                        },
                    );
                }
                false
            });
        }
        self.finished = None;
        self.cancelled = false;
    }

    /// The run's report as the records leave it: the final report when it
    /// finished; otherwise the nodes that settled, those decided by them (skipped,
    /// upstream_failed), `running` for those in flight and `pending` for the
    /// rest, with `status` given by the caller (`running` or `interrupted`).
    pub fn report(&self, workflow: &Arc<Workflow>, run_id: &str, strategy: &str, status: RunStatus) -> Report {
        if let Some(report) = &self.finished {
            return report.clone();
        }
        let mut state = RunState::new(workflow);
        let writer = ContextWriter::new(workflow.clone(), self.input.clone(), BTreeMap::new());
        let mut entries: Vec<NodeReport> = workflow
            .nodes()
            .iter()
            .map(|_| NodeReport::new(NodeStatus::Pending))
            .collect();
        let mut transitions = Vec::new();
        state.initial();
        for (id, report) in &self.settled {
            let Some(index) = workflow.index_of(id) else { continue };
            if matches!(state.phase(index), Phase::Settled(_)) {
                continue;
            }
            entries[index] = report.clone();
            writer.record(
                index,
                Settled::new(report.status, report.output.clone(), report.error.clone()),
            );
            let node = &workflow.nodes()[index];
            let passes = report.status == NodeStatus::Succeeded
                || (report.status == NodeStatus::Failed && node.continue_on_error());
            let context = writer.context().clone();
            let mut when = |e: usize| match &workflow.edges()[e].when {
                None => Ok(true),
                Some(expr) => expr.is_true(&context).map_err(|err| err.to_string()),
            };
            state.settle(workflow, index, report.status, passes, &mut when, &mut transitions);
            for t in transitions.drain(..) {
                if let Transition::Settled { node, status, error } = t {
                    entries[node].status = status;
                    entries[node].error = error.clone();
                    writer.record(node, Settled::new(status, Value::Null, error));
                }
            }
        }
        let empty = BTreeMap::new();
        for (index, node) in workflow.nodes().iter().enumerate() {
            if matches!(state.phase(index), Phase::Settled(_)) {
                continue;
            }
            let entry = &mut entries[index];
            if let Some(flight) = self.in_flight.get(&(node.id().to_owned(), None)) {
                entry.status = NodeStatus::Running;
                entry.attempts = flight.attempt;
                entry.started_ms = flight.attempts.first().map(|a| a.started_ms);
                if let (Some(waiting), None) = (&flight.waiting, &flight.received) {
                    entry.status = NodeStatus::Waiting;
                    entry.waiting_for = Some(waiting.described());
                    entry.child_run_id = waiting.child_run_id.clone();
                }
            }
            let id = node.id();
            let listed = self.listed.get(id).copied();
            if listed.is_some() || self.in_flight.keys().any(|(n, item)| n == id && item.is_some()) {
                entry.status = NodeStatus::Running;
            }
            if let Some(items) = self.items.get(id).or(listed.map(|_| &empty)) {
                entry.status = NodeStatus::Running;
                let mut counts = ItemCounts::default();
                for (item, _) in items.values() {
                    match item.status {
                        NodeStatus::Succeeded => counts.succeeded += 1,
                        NodeStatus::Failed => counts.failed += 1,
                        _ => counts.cancelled += 1,
                    }
                }
                counts.total = listed.unwrap_or(items.len());
                entry.attempts = items.values().map(|(item, _)| item.attempts).sum();
                entry.started_ms = items.values().filter_map(|(item, _)| item.started_ms).reduce(f64::min);
                entry.items = Some(counts);
                entry.item_runs = Some(items.values().map(|(item, _)| item.clone()).collect());
            }
        }
        let nodes = NodeReports::from_entries(
            workflow
                .nodes()
                .iter()
                .map(|n| n.id_arc().clone())
                .zip(entries)
                .collect(),
        );
        let mut report = Report::new(workflow.name(), run_id, strategy, status, self.last_ms, nodes);
        report.parent = self.parent.clone();
        report
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_as_tagged_json() {
        let record = Record::NodeStarted {
            node: "a".into(),
            item: Some(3),
            attempt: 2,
            at_ms: 1.5,
        };
        let text = serde_json::to_string(&record).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"node_started","node":"a","item":3,"attempt":2,"at_ms":1.5}"#
        );
        assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), record);
        assert_eq!(record.kind(), "node_started");
    }

    #[test]
    fn a_started_unit_without_its_settle_is_in_flight() {
        let records = [
            Record::NodeStarted {
                node: "a".into(),
                item: None,
                attempt: 1,
                at_ms: 1.0,
            },
            Record::AttemptFailed {
                node: "a".into(),
                item: None,
                attempt: 1,
                detail: AttemptReport {
                    started_ms: 1.0,
                    finished_ms: 2.0,
                    error: Some("boom".into()),
                    limit_wait_ms: None,
                },
                retry_in_ms: 5.0,
            },
            Record::NodeStarted {
                node: "a".into(),
                item: None,
                attempt: 2,
                at_ms: 7.0,
            },
            Record::NodeStarted {
                node: "b".into(),
                item: None,
                attempt: 1,
                at_ms: 7.0,
            },
            Record::NodeSettled {
                node: "b".into(),
                report: NodeReport::new(NodeStatus::Succeeded),
            },
        ];
        let r = Recovered::fold(&records);
        let a = &r.in_flight[&("a".to_owned(), None)];
        assert_eq!(a.attempt, 2);
        assert_eq!(a.attempts.len(), 2);
        assert_eq!(a.attempts[0].error.as_deref(), Some("boom"));
        assert!(a.attempts[1].error.as_deref().unwrap_or("").starts_with("interrupted"));
        assert!(!r.in_flight.contains_key(&("b".to_owned(), None)));
        assert_eq!(r.settled("b").map(|n| n.status), Some(NodeStatus::Succeeded));
        assert_eq!(r.last_ms, 7.0);
    }

    #[test]
    fn reset_failed_keeps_only_what_succeeded() {
        let mut r = Recovered::fold(&[
            Record::NodeSettled {
                node: "ok".into(),
                report: NodeReport::new(NodeStatus::Succeeded),
            },
            Record::NodeSettled {
                node: "bad".into(),
                report: NodeReport::new(NodeStatus::Failed),
            },
            Record::ItemSettled {
                node: "each".into(),
                item: ItemRun {
                    index: 0,
                    status: NodeStatus::Failed,
                    attempts: 1,
                    started_ms: None,
                    finished_ms: None,
                    error: None,
                    child_run_id: None,
                },
                output: Value::Null,
            },
            Record::ItemSettled {
                node: "each".into(),
                item: ItemRun {
                    index: 1,
                    status: NodeStatus::Succeeded,
                    attempts: 1,
                    started_ms: None,
                    finished_ms: None,
                    error: None,
                    child_run_id: None,
                },
                output: Value::from(1),
            },
        ]);
        r.reset_failed();
        assert!(r.settled("ok").is_some());
        assert!(r.settled("bad").is_none());
        let items = &r.items["each"];
        assert_eq!(items.keys().copied().collect::<Vec<_>>(), vec![1]);
    }
}
