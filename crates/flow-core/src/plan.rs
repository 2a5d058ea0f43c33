//! The plan of a workflow, without running it: levels of nodes that can run side
//! by side, the critical path, and bounds of a run's time under each strategy.
//!
//! Durations come from the caller, one [`AttemptTime`] per node (this crate knows
//! no node kind); timeouts and retry policies come from the workflow. Every bound
//! assumes that every node runs: a `when:` that is false, or a failure, can make a
//! real run shorter. Engine overhead is not counted.

use crate::workflow::{Node, Workflow};

/// How long one attempt of a node takes, as far as its config tells.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttemptTime {
    /// Succeeds after this many milliseconds (a `delay`, or ~0 for `noop`).
    Succeeds(f64),
    /// Fails after this many milliseconds, every time (a `fail` node): every
    /// attempt its retry policy allows is made.
    Fails(f64),
    /// Not known before running (an HTTP call, a templated wait).
    Unknown,
}

/// How long a node takes in all: its attempts, their timeouts and the waits
/// between them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// At least this long, in milliseconds.
    pub min_ms: f64,
    /// At most this long, in milliseconds, when known (from timeouts).
    pub max_ms: Option<f64>,
    /// Whether the duration comes from the config (false: only a timeout, or nothing).
    pub known: bool,
}

impl Estimate {
    /// The estimate of `node` whose attempts take `attempt`.
    pub fn of(node: &Node, attempt: AttemptTime) -> Estimate {
        let retry = node.retry();
        let timeout = node.timeout().map(|t| t.as_secs_f64() * 1000.0);
        let n = retry.max_attempts.max(1);
        let waits = |unit: f64| -> f64 { (1..n).map(|a| retry.delay(a, unit).as_secs_f64() * 1000.0).sum() };
        let all_attempts = |each: f64| {
            let min = f64::from(n) * each + waits(0.0);
            let max = f64::from(n) * each + waits(1.0);
            (min, max)
        };
        match (attempt, timeout) {
            (AttemptTime::Succeeds(ms), Some(t)) if ms > t => {
                // Every attempt times out.
                let (min, max) = all_attempts(t);
                Estimate::range(min, max)
            }
            (AttemptTime::Succeeds(ms), _) => Estimate::range(ms, ms),
            (AttemptTime::Fails(ms), t) => {
                let (min, max) = all_attempts(t.map_or(ms, |t| ms.min(t)));
                Estimate::range(min, max)
            }
            (AttemptTime::Unknown, t) => Estimate {
                min_ms: 0.0,
                max_ms: t.map(|t| all_attempts(t).1),
                known: false,
            },
        }
    }

    /// A duration measured in past runs: `p50_ms` counts as the least (what a
    /// typical run takes), `p95_ms` as the most (what a slow one does).
    pub fn measured(p50_ms: f64, p95_ms: f64) -> Estimate {
        Estimate::range(p50_ms, p95_ms.max(p50_ms))
    }

    fn range(min_ms: f64, max_ms: f64) -> Estimate {
        Estimate {
            min_ms,
            max_ms: Some(max_ms),
            known: true,
        }
    }

    /// Whether the duration is known exactly.
    pub fn is_exact(&self) -> bool {
        self.known && self.max_ms == Some(self.min_ms)
    }
}

/// What limits a lower bound most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// One node at a time: the sum of every duration.
    Work,
    /// The longest chain of dependent nodes.
    CriticalPath,
    /// The total work spread over the concurrency cap.
    Concurrency,
    /// The rate limit: `(nodes - burst) / per_second`.
    Rate,
}

/// Bounds of a run's time under one strategy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// No run where every node runs is faster than this, in milliseconds.
    pub lower_ms: f64,
    /// What makes the lower bound.
    pub limit: Limit,
    /// No such run is slower than this, in milliseconds, when every node's duration
    /// has a bound (a known duration or a timeout) and the strategy allows one.
    pub upper_ms: Option<f64>,
}

/// The plan of a workflow: see the module docs.
#[derive(Debug, Clone)]
pub struct Plan {
    levels: Vec<Vec<usize>>,
    estimates: Vec<Estimate>,
    critical_path: Vec<usize>,
    critical_ms: f64,
    critical_max_ms: Option<f64>,
    work_ms: f64,
    work_max_ms: Option<f64>,
}

impl Plan {
    /// The plan of `workflow`, where `attempt` tells how long one attempt of each
    /// node takes.
    pub fn new(workflow: &Workflow, mut attempt: impl FnMut(usize, &Node) -> AttemptTime) -> Plan {
        Plan::from_estimates(workflow, |i, node| Estimate::of(node, attempt(i, node)))
    }

    /// The plan of `workflow`, where `estimate` tells how long each node takes in
    /// all (as [`Estimate::measured`] from past runs, say).
    pub fn from_estimates(workflow: &Workflow, mut estimate: impl FnMut(usize, &Node) -> Estimate) -> Plan {
        let estimates: Vec<Estimate> = workflow
            .nodes()
            .iter()
            .enumerate()
            .map(|(i, node)| estimate(i, node))
            .collect();
        let (critical_ms, critical_path) = longest_path(workflow, |i| estimates[i].min_ms);
        let all_max: Option<Vec<f64>> = estimates.iter().map(|e| e.max_ms).collect();
        let critical_max_ms = all_max.as_ref().map(|max| longest_path(workflow, |i| max[i]).0);
        Plan {
            levels: workflow.levels(),
            critical_path,
            critical_ms,
            critical_max_ms,
            work_ms: estimates.iter().map(|e| e.min_ms).sum(),
            work_max_ms: all_max.map(|m| m.iter().sum()),
            estimates,
        }
    }

    /// The DAG's levels (see [`Workflow::levels`]): nodes of one level can run side by side.
    pub fn levels(&self) -> &[Vec<usize>] {
        &self.levels
    }

    /// The index of the widest level (the first of equally wide ones).
    pub fn widest_level(&self) -> Option<usize> {
        let widest = self.levels.iter().map(Vec::len).max()?;
        self.levels.iter().position(|l| l.len() == widest)
    }

    /// Each node's estimate, in file order.
    pub fn estimates(&self) -> &[Estimate] {
        &self.estimates
    }

    /// Nodes whose duration the config does not tell.
    pub fn unknown(&self) -> impl Iterator<Item = usize> + '_ {
        self.estimates
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.known)
            .map(|(i, _)| i)
    }

    /// The longest chain of dependent nodes by their least durations, first to last.
    /// Ties are broken the same way every time: the chain ends at the latest node in
    /// topological order (so zero-length nodes at the end are included), and each
    /// step back follows the first edge in file order.
    pub fn critical_path(&self) -> &[usize] {
        &self.critical_path
    }

    /// The critical path's least duration, in milliseconds.
    pub fn critical_ms(&self) -> f64 {
        self.critical_ms
    }

    /// The sum of every node's least duration, in milliseconds.
    pub fn work_ms(&self) -> f64 {
        self.work_ms
    }

    /// Bounds of a run's time under a strategy that paces starts as `pace` says.
    /// A cap of 1 is sequential: the sum of every duration.
    pub fn bounds(&self, pace: Pace) -> Bounds {
        let nodes = self.estimates.len() as f64;
        let cap = pace
            .max_concurrency
            .filter(|&m| m > 0)
            .map(|m| (m as f64).min(nodes.max(1.0)));
        if pace.max_concurrency == Some(1) {
            return Bounds {
                lower_ms: self.work_ms,
                limit: Limit::Work,
                upper_ms: if pace.per_second.is_some() {
                    None
                } else {
                    self.work_max_ms
                },
            };
        }
        let mut lower = (self.critical_ms, Limit::CriticalPath);
        if let Some(m) = cap {
            let spread = self.work_ms / m;
            if spread > lower.0 {
                lower = (spread, Limit::Concurrency);
            }
        }
        if let Some(rate) = pace.per_second.filter(|r| r.is_finite() && *r > 0.0) {
            let burst = f64::from(pace.burst.max(1));
            let admitted = (nodes - burst).max(0.0) / rate * 1000.0;
            if admitted > lower.0 {
                lower = (admitted, Limit::Rate);
            }
        }
        // Greedy list scheduling (start whatever is ready while a slot is free) ends
        // within work / m + (1 - 1/m) * critical path (Graham's bound).
        let upper = match (pace.per_second, cap) {
            (Some(_), _) => None,
            (None, None) => self.critical_max_ms,
            (None, Some(m)) => self
                .work_max_ms
                .zip(self.critical_max_ms)
                .map(|(w, c)| w / m + (1.0 - 1.0 / m) * c),
        };
        Bounds {
            lower_ms: lower.0,
            limit: lower.1,
            upper_ms: upper,
        }
    }
}

/// How a strategy paces a run's starts, as far as planning needs: the engine
/// asks the strategy (`Strategy::max_concurrency` and `Strategy::rate`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Pace {
    /// At most this many nodes at once (`Some(1)`: one at a time).
    pub max_concurrency: Option<usize>,
    /// Starts admitted per second, when a quota spaces them.
    pub per_second: Option<f64>,
    /// Starts admitted at once after an idle time (with `per_second`).
    pub burst: u32,
}

/// The longest node-weighted path: its weight and its nodes, first to last.
fn longest_path(workflow: &Workflow, weight: impl Fn(usize) -> f64) -> (f64, Vec<usize>) {
    let n = workflow.nodes().len();
    let mut best = vec![0.0f64; n];
    let mut via: Vec<Option<usize>> = vec![None; n];
    for &i in workflow.topological() {
        let i = i as usize;
        let mut from = None;
        let mut start = 0.0f64;
        for &e in workflow.incoming(i) {
            let pred = workflow.edges()[e as usize].from;
            if from.is_none() || best[pred] > start {
                start = best[pred];
                from = Some(pred);
            }
        }
        best[i] = start + weight(i);
        via[i] = from;
    }
    let Some(mut end) =
        workflow
            .topological()
            .iter()
            .map(|&i| i as usize)
            .fold(None, |acc: Option<usize>, i| match acc {
                Some(a) if best[a] > best[i] => Some(a),
                _ => Some(i),
            })
    else {
        return (0.0, Vec::new());
    };
    let total = best[end];
    let mut path = vec![end];
    while let Some(prev) = via[end] {
        path.push(prev);
        end = prev;
    }
    path.reverse();
    (total, path)
}
