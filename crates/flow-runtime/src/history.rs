//! How long each node of a workflow took in its past runs, for estimates
//! (`flow explain --journal`).

use std::collections::HashMap;

use flow_core::{NodeStatus, RunStatus};
use flow_engine::journal::RunFilter;

use crate::{Result, Runs};

/// Runs read per page of the journal's list.
const PAGE: usize = 200;

/// The measured durations of a workflow's nodes: see [`Runs::history`].
#[derive(Debug, Clone, Default)]
pub struct History {
    runs: usize,
    /// Each node's durations (first attempt's start to last attempt's end), by id.
    durations: HashMap<String, Vec<f64>>,
}

/// One node's measured duration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// The median, in ms.
    pub p50_ms: f64,
    /// The 95th percentile, in ms.
    pub p95_ms: f64,
    /// How many runs the node ran in.
    pub samples: usize,
}

impl History {
    /// How many finished runs the durations come from.
    pub fn runs(&self) -> usize {
        self.runs
    }

    /// The measured duration of node `id`, `None` when it never ran in them.
    pub fn node(&self, id: &str) -> Option<Measured> {
        let samples = self.durations.get(id)?;
        Some(Measured {
            p50_ms: percentile(samples, 0.50)?,
            p95_ms: percentile(samples, 0.95)?,
            samples: samples.len(),
        })
    }

    /// Adds one finished run's nodes: those that ran (succeeded or failed)
    /// with both ends known.
    fn add<'a>(&mut self, nodes: impl Iterator<Item = (&'a str, &'a flow_core::NodeReport)>) {
        self.runs += 1;
        for (id, node) in nodes {
            if !matches!(node.status, NodeStatus::Succeeded | NodeStatus::Failed) {
                continue;
            }
            if let (Some(start), Some(end)) = (node.started_ms, node.finished_ms)
                && end >= start
            {
                self.durations.entry(id.to_owned()).or_default().push(end - start);
            }
        }
    }

    /// Sorts every node's samples, so percentiles read them in order.
    fn sort(&mut self) {
        for samples in self.durations.values_mut() {
            samples.sort_by(f64::total_cmp);
        }
    }
}

/// The nearest-rank percentile of sorted `samples`.
fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let rank = (p * samples.len() as f64).ceil() as usize;
    samples.get(rank.clamp(1, samples.len()) - 1).copied()
}

impl Runs {
    /// How long each node of workflow `workflow` took in its newest
    /// `max_runs` finished runs that ran to an end (succeeded or failed: a
    /// cancelled or unfinished run's times are cut short).
    ///
    /// # Errors
    ///
    /// [`crate::Error::Journal`].
    pub async fn history(&self, workflow: &str, max_runs: usize) -> Result<History> {
        let mut history = History::default();
        let mut before = None;
        'pages: while history.runs < max_runs {
            let rows = self
                .journal()
                .list(&RunFilter {
                    workflow: Some(workflow.to_owned()),
                    status: None,
                    limit: PAGE,
                    before: before.take(),
                    top_level: false,
                })
                .await?;
            let last = rows.len() < PAGE;
            for row in &rows {
                if history.runs >= max_runs {
                    break 'pages;
                }
                if !matches!(row.status, RunStatus::Succeeded | RunStatus::Failed) {
                    continue;
                }
                let Some(stored) = self.journal().load(&row.run_id).await? else {
                    continue;
                };
                let recovered = flow_core::Recovered::fold(stored.records.iter().map(|(_, r)| r));
                if let Some(report) = &recovered.finished {
                    history.add(report.nodes.iter());
                }
            }
            match rows.last() {
                Some(row) if !last => before = Some((row.started_at_ms, row.run_id.clone())),
                _ => break,
            }
        }
        history.sort();
        Ok(history)
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&samples, 0.5), Some(10.0));
        assert_eq!(percentile(&samples, 0.95), Some(19.0));
        assert_eq!(percentile(&[7.0], 0.95), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
