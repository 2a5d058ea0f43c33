//! A resumed run: results the journal holds are settled again without running,
//! through the same state machine, so everything they decided (edges taken,
//! nodes skipped) is decided again the same way.

use flow_core::{InFlight, NodeError, NodeStatus};

use super::Driver;

impl Driver {
    /// Settles node `index` from the journal if it ran before; `false` when it
    /// must run.
    pub(super) fn replay(&mut self, index: usize) -> bool {
        let Some(report) = self.restore.as_mut().and_then(|r| r.nodes.remove(&index)) else {
            return false;
        };
        if !self.state.start(index) {
            return true;
        }
        let node = &self.shared.workflow.nodes()[index];
        let passes =
            report.status == NodeStatus::Succeeded || (report.status == NodeStatus::Failed && node.continue_on_error());
        let entry = &mut self.entries[index].1;
        entry.attempts = report.attempts;
        entry.started_ms = report.started_ms;
        entry.finished_ms = report.finished_ms;
        entry.attempts_detail = report.attempts_detail;
        entry.limit_wait_ms = report.limit_wait_ms;
        entry.items = report.items;
        entry.item_runs = report.item_runs;
        self.replaying = true;
        self.settle(index, report.status, passes, report.output, report.error);
        self.replaying = false;
        true
    }

    /// Settles the next item of `for_each` node `node` from the journal if it ran
    /// before; `false` when it must run.
    pub(super) fn replay_item(&mut self, node: usize) -> bool {
        let Some(run) = self.for_each.get(&node) else {
            return false;
        };
        let index = run.next;
        let Some((item, output)) = self
            .restore
            .as_mut()
            .and_then(|r| r.items.get_mut(&node))
            .and_then(|items| items.remove(&index))
        else {
            return false;
        };
        self.item_taken(node);
        let result = match item.status {
            NodeStatus::Succeeded => Ok(output),
            _ => Err(NodeError::permanent(item.error.clone().unwrap_or_default())),
        };
        // The item's attempts as the report keeps them: their count and span.
        let attempts = item.attempt_reports();
        self.replaying = true;
        self.complete_item(node, index, result, item.status == NodeStatus::Cancelled, attempts);
        self.replaying = false;
        true
    }

    /// The journal's account of a unit that was cut short, if this one was.
    pub(super) fn in_flight(&mut self, node: usize, item: Option<usize>) -> Option<Box<InFlight>> {
        self.restore.as_mut()?.in_flight.remove(&(node, item)).map(Box::new)
    }
}
