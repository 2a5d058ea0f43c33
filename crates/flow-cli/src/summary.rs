//! The human summary `flow run` prints on stderr.

use flow_engine::{NodeStatus, Report};

/// Every status a report's node can have, settled ones first (an unfinished run
/// rebuilt from a journal also has `pending`, `running` and `waiting` nodes).
const STATUSES: [NodeStatus; 8] = [
    NodeStatus::Succeeded,
    NodeStatus::Failed,
    NodeStatus::Skipped,
    NodeStatus::UpstreamFailed,
    NodeStatus::Cancelled,
    NodeStatus::Running,
    NodeStatus::Waiting,
    NodeStatus::Pending,
];

pub use flow_view::fmt_ms;

/// The summary: a table of nodes (unless `quiet` and there are many), then one line
/// for the run.
pub fn render(report: &Report, quiet: bool) -> String {
    let mut out = String::new();
    const MAX_ROWS: usize = 50;
    let show_all = !quiet && report.nodes.len() <= MAX_ROWS;
    let width = report
        .nodes
        .iter()
        .map(|(id, _)| id.len())
        .max()
        .unwrap_or(4)
        .clamp(4, 40);
    if show_all || !quiet {
        out.push_str(&format!(
            "{:<width$}  {:<15}  {:>8}  {:>10}  {}\n",
            "node", "status", "attempts", "duration", "error"
        ));
    }
    let mut counts = [0usize; STATUSES.len()];
    let mut hidden = 0;
    for (id, node) in report.nodes.iter() {
        let slot = STATUSES.iter().position(|s| *s == node.status).unwrap_or(0);
        counts[slot] += 1;
        let interesting = matches!(node.status, NodeStatus::Failed | NodeStatus::UpstreamFailed);
        if show_all || (!quiet && interesting) {
            let duration = match (node.started_ms, node.finished_ms) {
                (Some(s), Some(f)) => fmt_ms(f - s),
                _ => "-".to_owned(),
            };
            let error = node.error.as_deref().unwrap_or("");
            let error: String = error.chars().take(160).collect();
            out.push_str(&format!(
                "{:<width$}  {:<15}  {:>8}  {:>10}  {}\n",
                id,
                node.status.as_str(),
                node.attempts,
                duration,
                error.replace('\n', " ")
            ));
        } else {
            hidden += 1;
        }
    }
    if hidden > 0 && !quiet {
        out.push_str(&format!("({hidden} more nodes not shown; use --report for all)\n"));
    }
    let tally: Vec<String> = STATUSES
        .iter()
        .zip(counts)
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect();
    out.push_str(&format!(
        "run {} in {} (strategy {}, workflow `{}`): {}\n",
        report.status.as_str(),
        fmt_ms(report.duration_ms),
        report.strategy,
        report.workflow,
        tally.join(", ")
    ));
    if let Some(error) = &report.output_error {
        out.push_str(&format!("the run's output could not be rendered: {error}\n"));
    }
    out
}
