//! The workflow file as written: serde types, one per section of the format.
//!
//! These types mirror `docs/workflow-format.md` field by field. Unknown fields are
//! rejected (`deny_unknown_fields`) so a typo never silently changes behaviour.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A whole workflow document, as parsed from JSON or YAML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    /// The workflow's name, shown in reports.
    pub name: String,
    /// Free text for people; ignored by the engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How independent branches run side by side (default: `parallel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<StrategySpec>,
    /// Default input of a run; a run's own input replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// Environment variables that templates may read as `env.NAME`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// The nodes, in file order (file order breaks ties in the sequential strategy).
    pub nodes: Vec<NodeSpec>,
    /// The edges between nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edges: Vec<EdgeSpec>,
}

/// The `strategy:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategySpec {
    /// Which strategy.
    pub kind: StrategyKind,
    /// At most this many nodes run at once (every kind but `sequential`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u64>,
    /// `rate-limited` only: node starts admitted per second (required, > 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_second: Option<f64>,
    /// `rate-limited` only: starts admitted at once after an idle time (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    /// `rate-limited` only: the first failure cancels the run (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_fast: Option<bool>,
}

/// The four built-in strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    /// One node at a time, in topological order with ties broken by file order.
    Sequential,
    /// Every ready node at once; the first failure cancels the rest.
    Parallel,
    /// Every ready node at once; a failure only affects its own downstream.
    AllSettled,
    /// Node starts admitted by a rate quota and a concurrency cap.
    RateLimited,
}

impl StrategyKind {
    /// Every kind, in documentation order.
    pub const ALL: [StrategyKind; 4] = [
        StrategyKind::Sequential,
        StrategyKind::Parallel,
        StrategyKind::AllSettled,
        StrategyKind::RateLimited,
    ];

    /// The name used in files, reports and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            StrategyKind::Sequential => "sequential",
            StrategyKind::Parallel => "parallel",
            StrategyKind::AllSettled => "all-settled",
            StrategyKind::RateLimited => "rate-limited",
        }
    }

    /// Parses a name as written in files and on the command line.
    pub fn parse(name: &str) -> Option<StrategyKind> {
        StrategyKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of `nodes:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Unique id, `[A-Za-z0-9_-]+`.
    pub id: String,
    /// The node kind (`noop`, `delay`, `transform`, `fail`, `http`, `notify`, `validate`, or a custom one).
    pub kind: String,
    /// Kind-specific configuration; every string in it is a template.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub config: Value,
    /// Free text for people; ignored by the engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Retry policy for failed attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
    /// Time limit of each attempt, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// When the node runs, given its predecessors' outcomes.
    #[serde(default, skip_serializing_if = "Trigger::is_default")]
    pub trigger: Trigger,
    /// Record a failure but let the downstream run as if the node succeeded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continue_on_error: bool,
}

/// A node's `retry:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Attempts in all, the first included (>= 1).
    pub max_attempts: u32,
    /// Wait before the second attempt, in milliseconds (default 100).
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
    /// Each further wait is the previous one times this (>= 1, default 2).
    #[serde(default = "default_factor")]
    pub factor: f64,
    /// No wait is longer than this, in milliseconds (default 30000).
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Randomise each wait between half and all of it (default false).
    #[serde(default)]
    pub jitter: bool,
}

fn default_backoff_ms() -> u64 {
    100
}
fn default_factor() -> f64 {
    2.0
}
fn default_max_backoff_ms() -> u64 {
    30_000
}

/// Trigger rules: when a node with predecessors runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Runs if at least one incoming edge was taken and no predecessor failed.
    #[default]
    AllSuccess,
    /// Runs once every predecessor has settled, whatever its status.
    AllDone,
    /// Runs as soon as one predecessor succeeded through a taken edge.
    OneSuccess,
}

impl Trigger {
    fn is_default(&self) -> bool {
        *self == Trigger::AllSuccess
    }

    /// The name used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::AllSuccess => "all_success",
            Trigger::AllDone => "all_done",
            Trigger::OneSuccess => "one_success",
        }
    }
}

/// One entry of `edges:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeSpec {
    /// Source node id.
    pub from: String,
    /// Target node id.
    pub to: String,
    /// A minijinja expression; the edge is taken only when it is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
}
