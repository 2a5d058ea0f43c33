//! The workflow file as written: serde types, one per section of the format.
//!
//! These types mirror `docs/workflow-format.md` field by field. Unknown fields are
//! rejected (`deny_unknown_fields`) so a typo never silently changes behaviour.

use std::collections::BTreeMap;

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
    /// Limits shared by every run of this workflow in one engine, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, LimitSpec>,
    /// Environment variables that templates may read as `env.NAME`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// The nodes, in file order (file order breaks ties in the sequential strategy).
    pub nodes: Vec<NodeSpec>,
    /// The edges between nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edges: Vec<EdgeSpec>,
    /// The run's output: any JSON whose strings are templates (reading
    /// `input`, `nodes` and `env`), rendered when the run succeeds. A
    /// `workflow` node that runs this workflow outputs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
}

/// The `strategy:` section: a kind, and that kind's options.
///
/// The options are read by the strategy kind registered under `kind` (the
/// engine's strategy registry: the four built-in kinds, or an embedder's), so
/// this type holds them as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategySpec {
    /// Which strategy: `sequential`, `parallel`, `all-settled`,
    /// `rate-limited`, or a kind an embedder registered.
    pub kind: String,
    /// Every other field of the section (`max_concurrency`, `per_second`, …).
    #[serde(flatten)]
    pub options: serde_json::Map<String, Value>,
}

impl StrategySpec {
    /// A section naming `kind`, with no options.
    pub fn new(kind: impl Into<String>) -> Self {
        StrategySpec {
            kind: kind.into(),
            options: serde_json::Map::new(),
        }
    }

    /// The same section with option `name` set to `value`.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.options.insert(name.into(), value.into());
        self
    }
}

/// One entry of `limits:`: a limit shared by every run of the workflow (or,
/// declared on the engine, by every workflow) in one engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSpec {
    /// Starts admitted per second (fractions allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_second: Option<f64>,
    /// Starts admitted at once after an idle time (default 1; with `per_second`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Attempts running at once, at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
}

impl LimitSpec {
    /// Every problem of this limit, each with its path inside the limit
    /// (`per_second`, or empty for the limit as a whole).
    pub fn problems(&self) -> Vec<crate::node::ConfigProblem> {
        crate::workflow::limit_problems(self)
            .into_iter()
            .map(|(field, message)| crate::node::ConfigProblem::new(field.trim_start_matches('.'), message))
            .collect()
    }
}

/// A node's `limit:` field: the name of a limit, or a name and a key template
/// (one quota per rendered key, such as one per tenant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LimitUse {
    /// `limit: crm_api`.
    Name(String),
    /// `limit: { name: crm_api, key: "{{ input.tenant }}" }`.
    Keyed(KeyedLimit),
}

/// The long form of a node's `limit:` field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyedLimit {
    /// The limit's name.
    pub name: String,
    /// A template rendered at each attempt: starts with different keys are
    /// counted apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl LimitUse {
    /// The limit's name.
    pub fn name(&self) -> &str {
        match self {
            LimitUse::Name(name) => name,
            LimitUse::Keyed(k) => &k.name,
        }
    }

    /// The key template, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            LimitUse::Name(_) => None,
            LimitUse::Keyed(k) => k.key.as_deref(),
        }
    }
}

/// One entry of `nodes:`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// A shared limit every attempt of this node takes before it starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<LimitUse>,
    /// Runs the node once per item of the list this template renders to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<String>,
    /// With `for_each`: the name the item has in `config` (default `item`).
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub item_name: Option<String>,
    /// With `for_each`: at most this many items of this node run at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u64>,
    /// With `for_each`: failed items that still let the node succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerated_failures: Option<Tolerance>,
}

/// How many failed items a `for_each` node tolerates: a count (`2`) or a
/// percentage of its items (`"10%"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Tolerance {
    /// At most this many items may fail.
    Count(u64),
    /// At most this share of the items may fail, written `"10%"` (0% to 100%).
    Percent(String),
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
