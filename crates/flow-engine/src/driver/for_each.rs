//! `for_each` nodes: one unit of work per item of a list, each with its own
//! attempts, status and admission, counted by the run's strategy like nodes and
//! by the node's own `max_concurrency`.
//!
//! The node is one node for the run's state machine: it starts when its list is
//! rendered and settles once, when its last item has; in between, the ready queue
//! holds at most one `items` unit for it, which stands for "start its next item".

use std::sync::Arc;

use flow_core::{AttemptReport, ItemCounts, ItemRun, ListPath, NodeCall, NodeError, NodeStatus};
use serde_json::Value;

use super::{Driver, Unit};
use crate::attempt::{Attempts, Finished};
use crate::fact::Fact;

/// The items of one `for_each` node in one run.
pub(super) struct ForEachRun {
    items: Arc<Vec<Value>>,
    /// The next item to start.
    pub(super) next: usize,
    running: usize,
    cap: usize,
    /// No item starts any more: the node failed fast.
    stopped: bool,
    /// Whether an `items` unit of this node waits in the ready queue.
    queued: bool,
    outputs: Vec<Value>,
    runs: Vec<ItemRun>,
    counts: ItemCounts,
    limit_wait_ms: f64,
    /// Kept as items settle, so settling the node reads no item twice.
    first_start: Option<f64>,
    last_end: Option<f64>,
    attempts: u32,
    first_failed: Option<usize>,
}

impl ForEachRun {
    fn can_start(&self) -> bool {
        !self.stopped && self.next < self.items.len() && self.running < self.cap
    }
}

/// What a node's list rendered to is, in words: "an object", "a string".
fn what(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

impl Driver {
    pub(super) fn is_for_each(&self, node: usize) -> bool {
        self.shared.workflow.nodes()[node].for_each().is_some()
    }

    /// Renders the node's list and queues its first item; a node whose list is
    /// not a list, or too long, fails; an empty list succeeds with `[]`.
    pub(super) fn begin_for_each(&mut self, index: usize) {
        if !self.state.start(index) {
            return;
        }
        let shared = self.shared.clone();
        let node = &shared.workflow.nodes()[index];
        let Some(for_each) = node.for_each() else { return };
        let rendered = match for_each.path() {
            Some(path) => self.read_list(path).map(Arc::new),
            None => for_each.list().render(self.writer.context()).map_err(|e| e.to_string()),
        };
        let items = match rendered {
            Ok(list) => match &*list {
                Value::Array(items) if items.len() > self.max_items => Err(format!(
                    "for_each gave {} items, over the limit of {} (max_items)",
                    items.len(),
                    self.max_items
                )),
                // A rendered list is the run's own: taken whole, not copied.
                Value::Array(_) => match Arc::try_unwrap(list) {
                    Ok(Value::Array(items)) => Ok(Arc::new(items)),
                    Ok(_) => Ok(Arc::default()),
                    Err(shared) => Ok(Arc::new(shared.as_array().cloned().unwrap_or_default())),
                },
                other => Err(format!("for_each must give a list, got {}", what(other))),
            },
            Err(e) => Err(shared.redactor.redact(&format!("for_each: {e}"))),
        };
        let items = match items {
            Ok(items) => items,
            Err(message) => {
                let at = shared.now_ms();
                self.complete(Finished::failed_to_start(index, None, at, message));
                return;
            }
        };
        let total = items.len();
        shared.note(
            &Fact::ItemsListed {
                node: index,
                items: total,
            },
            true,
        );
        let run = ForEachRun {
            items,
            next: 0,
            running: 0,
            cap: for_each.max_concurrency().unwrap_or(usize::MAX),
            stopped: false,
            queued: total > 0,
            outputs: vec![Value::Null; total],
            runs: (0..total)
                .map(|index| ItemRun {
                    index,
                    status: NodeStatus::Cancelled,
                    attempts: 0,
                    started_ms: None,
                    finished_ms: None,
                    error: None,
                    child_run_id: None,
                })
                .collect(),
            counts: ItemCounts {
                total,
                ..ItemCounts::default()
            },
            limit_wait_ms: 0.0,
            first_start: None,
            last_end: None,
            attempts: 0,
            first_failed: None,
        };
        self.for_each.insert(index, run);
        if total == 0 {
            self.finish_for_each(index);
        } else {
            self.ready.push(Unit::items(index));
        }
    }

    /// The list a plain path reads, copied out of the input or a node's output.
    fn read_list(&self, path: &ListPath) -> Result<Value, String> {
        let context = self.writer.context();
        let (mut value, mut shown) = match path.node {
            None => (context.input(), "input".to_owned()),
            Some(node) => {
                let id = self.shared.workflow.nodes()[node].id();
                match context.settled(node) {
                    Some(settled) => (&settled.output, format!("nodes.{id}.output")),
                    None => return Err(format!("reads `nodes.{id}`, but `{id}` has not run yet")),
                }
            }
        };
        for key in &path.keys {
            shown.push('.');
            shown.push_str(key);
            value = value
                .get(key)
                .ok_or_else(|| format!("undefined value (`{shown}` is not there)"))?;
        }
        Ok(value.clone())
    }

    /// Whether the node's next item may start now; when not, its `items` unit
    /// leaves the queue (an item that settles puts it back).
    pub(super) fn item_ready(&mut self, node: usize) -> bool {
        let Some(run) = self.for_each.get_mut(&node) else {
            return false;
        };
        let ready = run.can_start();
        run.queued = ready;
        ready
    }

    /// Takes the node's next item off its list, as started; returns its index
    /// and the list.
    pub(super) fn item_taken(&mut self, node_index: usize) -> Option<(usize, Arc<Vec<Value>>)> {
        let run = self.for_each.get_mut(&node_index)?;
        let index = run.next;
        run.next += 1;
        run.running += 1;
        let items = run.items.clone();
        if run.can_start() {
            // More to start: stay first in line, so a node's items start in order.
            self.ready.put_back(Unit::items(node_index));
        } else {
            run.queued = false;
        }
        Some((index, items))
    }

    /// Starts the node's next item (admitted by the strategy already).
    pub(super) fn start_item(&mut self, node_index: usize) {
        let Some((index, items)) = self.item_taken(node_index) else {
            return;
        };
        let shared = self.shared.clone();
        let node = &shared.workflow.nodes()[node_index];
        let Some(for_each) = node.for_each() else { return };
        let config = node
            .config()
            .render_item(self.writer.context(), for_each.item_name(), &items[index], index)
            .map_err(|e| shared.redactor.redact(&super::config_error(&e)));
        let prepared = config.and_then(|config| {
            let limit = match node.limit() {
                None => None,
                Some(_) => {
                    let position = Value::from(index);
                    let extra = [(&**for_each.item_name(), &items[index]), ("index", &position)];
                    self.limit(node_index, &extra)?
                }
            };
            Ok((config, limit))
        });
        let (config, limit) = match prepared {
            Ok(prepared) => prepared,
            Err(message) => {
                let at = shared.now_ms();
                self.complete(Finished::failed_to_start(node_index, Some(index), at, message));
                return;
            }
        };
        let mut call = NodeCall::new(node.id_arc().clone(), config, self.writer.context().clone());
        call.item = Some(index);
        let resumed = self.in_flight(node_index, Some(index));
        self.launch(Attempts {
            node: node_index,
            item: Some(index),
            call: Some(call),
            resumed,
            limit,
            shared: self.shared.clone(),
        });
    }

    /// One item ended: its entry, its event, and the node's fate.
    pub(super) fn complete_item(
        &mut self,
        node_index: usize,
        index: usize,
        result: Result<Value, NodeError>,
        cancelled: bool,
        attempts: Vec<AttemptReport>,
    ) {
        let shared = self.shared.clone();
        let Some(run) = self.for_each.get_mut(&node_index) else {
            return;
        };
        run.running -= 1;
        let (status, error) = match result {
            _ if cancelled => (NodeStatus::Cancelled, None),
            Ok(output) => {
                run.outputs[index] = output;
                (NodeStatus::Succeeded, None)
            }
            Err(e) => (NodeStatus::Failed, Some(shared.redactor.redact(e.message()))),
        };
        match status {
            NodeStatus::Succeeded => run.counts.succeeded += 1,
            NodeStatus::Failed => run.counts.failed += 1,
            _ => run.counts.cancelled += 1,
        }
        run.limit_wait_ms += attempts.iter().filter_map(|a| a.limit_wait_ms).sum::<f64>();
        let (started, finished) = (
            attempts.first().map(|a| a.started_ms),
            attempts.last().map(|a| a.finished_ms),
        );
        run.first_start = match (run.first_start, started) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        run.last_end = match (run.last_end, finished) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        run.attempts += attempts.len() as u32;
        if status == NodeStatus::Failed && run.first_failed.is_none_or(|first| index < first) {
            run.first_failed = Some(index);
        }
        let entry = &mut run.runs[index];
        entry.status = status;
        entry.attempts = attempts.len() as u32;
        entry.started_ms = started;
        entry.finished_ms = finished;
        entry.error = error.clone();
        if shared.family.has_children() {
            entry.child_run_id = shared.family.child_of(node_index, Some(index));
        }
        let settled = Fact::ItemSettled {
            node: node_index,
            item: entry,
            output: &run.outputs[index],
        };
        shared.note(&settled, !self.replaying);
        let node = &shared.workflow.nodes()[node_index];
        let tolerated = node.for_each().map_or(0, |f| f.tolerated(run.counts.total));
        if run.counts.failed > tolerated && self.fail_fast && !run.stopped {
            // Beyond the tolerance the node has failed: under a fail-fast strategy
            // its waiting items do not start, and the run stops (unless the node
            // may fail: `continue_on_error`).
            run.stopped = true;
            if !node.continue_on_error() {
                self.failed = true;
            }
        }
        let done = run.running == 0 && (run.stopped || self.cancelling || run.next == run.counts.total);
        let more = !run.queued && run.can_start() && !self.cancelling;
        if more {
            run.queued = true;
        }
        if done {
            self.finish_for_each(node_index);
        } else if more {
            self.ready.push(Unit::items(node_index));
        }
        if self.failed && self.fail_fast && !self.cancelling {
            self.cancel();
        }
    }

    /// Settles a `for_each` node from its items: items that never started are
    /// cancelled; the node fails when more items failed than it tolerates.
    pub(super) fn finish_for_each(&mut self, node_index: usize) {
        let Some(mut run) = self.for_each.remove(&node_index) else {
            return;
        };
        let shared = self.shared.clone();
        for entry in &mut run.runs[run.next..] {
            run.counts.cancelled += 1;
            // Never started: cancelled, 0 attempts, no error (as the entry was made).
            let never = Fact::ItemSettled {
                node: node_index,
                item: entry,
                output: &Value::Null,
            };
            shared.publish(&never);
        }
        let node = &shared.workflow.nodes()[node_index];
        let counts = run.counts;
        let tolerated = node.for_each().map_or(0, |f| f.tolerated(counts.total));
        let (status, error) = if counts.failed > tolerated {
            let first = run
                .first_failed
                .and_then(|i| run.runs.get(i))
                .map(|r| format!("; item {}: {}", r.index, r.error.as_deref().unwrap_or("failed")))
                .unwrap_or_default();
            let message = format!(
                "{} of {} items failed ({tolerated} tolerated){first}",
                counts.failed, counts.total
            );
            (NodeStatus::Failed, Some(message))
        } else if counts.cancelled > 0 {
            (NodeStatus::Cancelled, None)
        } else {
            (NodeStatus::Succeeded, None)
        };
        let entry = &mut self.entries[node_index].1;
        entry.started_ms = run.first_start;
        entry.finished_ms = run.last_end;
        if entry.finished_ms.is_none() {
            entry.finished_ms = Some(shared.now_ms());
            entry.started_ms = entry.started_ms.or(entry.finished_ms);
        }
        entry.attempts = run.attempts;
        if node.limit().is_some() {
            entry.limit_wait_ms = Some(run.limit_wait_ms);
        }
        entry.items = Some(counts);
        entry.item_runs = Some(run.runs);
        let output = Value::Array(run.outputs);
        let passes = status == NodeStatus::Succeeded || (status == NodeStatus::Failed && node.continue_on_error());
        self.settle(node_index, status, passes, output, error);
    }
}
