//! The execution report: what a run did, node by node. The CLI's `--report` writes
//! this type serialised; an embedder gets it from the engine.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunStatus {
    /// No node failed (a failure under `continue_on_error` does not count).
    Succeeded,
    /// At least one node failed.
    Failed,
    /// The run was cancelled from outside (API, Ctrl-C).
    Cancelled,
    /// Not finished: its process is still at it (only in a report rebuilt from a
    /// journal).
    Running,
    /// Not finished, and its process is gone (killed, crashed): `flow resume`
    /// continues it (only in a report rebuilt from a journal).
    Interrupted,
    /// Not finished: nothing runs, and its nodes wait for a time or a signal;
    /// no process holds it (it is parked in its journal until woken).
    Waiting,
}

impl std::str::FromStr for RunStatus {
    type Err = String;

    /// Reads the name [`RunStatus::as_str`] gives (`"interrupted"`).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(Value::String(name.to_owned())).map_err(|_| format!("unknown run status `{name}`"))
    }
}

impl RunStatus {
    /// Whether the run has ended: succeeded, failed or cancelled.
    pub fn is_finished(self) -> bool {
        matches!(self, RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled)
    }

    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Running => "running",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Waiting => "waiting",
        }
    }
}

/// How a node ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NodeStatus {
    /// Ran and produced an output.
    Succeeded,
    /// Ran (or could not start) and failed after its retries.
    Failed,
    /// Did not run: no incoming edge was taken.
    Skipped,
    /// Did not run: a predecessor failed.
    UpstreamFailed,
    /// Stopped or never started because the run was cancelled.
    Cancelled,
    /// Not settled yet, and not started (only in a report of an unfinished run).
    Pending,
    /// Started and not settled yet (only in a report of an unfinished run).
    Running,
    /// Started, and waiting for a time or a signal (only in a report of an
    /// unfinished run).
    Waiting,
}

impl NodeStatus {
    /// Every status a settled node can have, in documentation order.
    pub const ALL: [NodeStatus; 5] = [
        NodeStatus::Succeeded,
        NodeStatus::Failed,
        NodeStatus::Skipped,
        NodeStatus::UpstreamFailed,
        NodeStatus::Cancelled,
    ];

    /// The name used in reports and templates.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Succeeded => "succeeded",
            NodeStatus::Failed => "failed",
            NodeStatus::Skipped => "skipped",
            NodeStatus::UpstreamFailed => "upstream_failed",
            NodeStatus::Cancelled => "cancelled",
            NodeStatus::Pending => "pending",
            NodeStatus::Running => "running",
            NodeStatus::Waiting => "waiting",
        }
    }
}

impl std::fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The report of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Report {
    /// The workflow's name.
    pub workflow: String,
    /// The run's id: a UUIDv7 (time-ordered), unique across processes and machines.
    /// (Reports of flow 0.1 held a number; it reads as its decimal text.)
    #[serde(default, deserialize_with = "run_id_text")]
    pub run_id: String,
    /// The run that started this one, for a child run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Parent>,
    /// The strategy's name.
    pub strategy: String,
    /// How the run ended.
    pub status: RunStatus,
    /// Wall time of the run in milliseconds.
    #[serde(serialize_with = "ms")]
    pub duration_ms: f64,
    /// Every node, in file order.
    pub nodes: NodeReports,
    /// The workflow's `output:`, rendered when the run succeeded; `null` when
    /// the file has none or the run did not succeed.
    #[serde(default)]
    pub output: Value,
    /// Why the `output:` could not be rendered (the run then failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_error: Option<String>,
}

impl Parent {
    /// The signal a child run's end sends this parent: what the `workflow`
    /// node's unit waits for (`flow.child:<node>`, `:<item>` under `for_each`).
    pub fn end_signal(&self) -> String {
        match self.item {
            None => format!("flow.child:{}", self.node),
            Some(item) => format!("flow.child:{}:{item}", self.node),
        }
    }
}

/// Which run started this one, from which node (and `for_each` item): a
/// child run's `parent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parent {
    /// The parent run's id.
    pub run_id: String,
    /// The `workflow` node that started this run.
    pub node: String,
    /// The `for_each` item of that node, when it has items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
}

/// Milliseconds to the microsecond: `150.713`, not the `150.71300000000002`
/// that adding floats gives.
fn ms<S: serde::Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(to_micros(*value))
}

fn opt_ms<S: serde::Serializer>(value: &Option<f64>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => serializer.serialize_some(&to_micros(*v)),
        None => serializer.serialize_none(),
    }
}

/// Milliseconds rounded to the microsecond, as reports show them.
pub fn round_ms(ms: f64) -> f64 {
    to_micros(ms)
}

fn to_micros(ms: f64) -> f64 {
    if ms.is_finite() && ms.abs() < 1e12 {
        (ms * 1000.0).round() / 1000.0
    } else {
        ms
    }
}

/// A run id as text: a string, or the number older reports held.
fn run_id_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(u64),
    }
    Ok(match Id::deserialize(deserializer)? {
        Id::Text(text) => text,
        Id::Number(n) => n.to_string(),
    })
}

impl Report {
    /// A report of run `run_id` of `workflow`.
    pub fn new(
        workflow: impl Into<String>,
        run_id: impl Into<String>,
        strategy: impl Into<String>,
        status: RunStatus,
        duration_ms: f64,
        nodes: NodeReports,
    ) -> Self {
        Report {
            workflow: workflow.into(),
            run_id: run_id.into(),
            strategy: strategy.into(),
            status,
            duration_ms,
            nodes,
            output: Value::Null,
            output_error: None,
            parent: None,
        }
    }

    /// The entry of node `id`.
    pub fn node(&self, id: &str) -> Option<&NodeReport> {
        self.nodes.get(id)
    }
}

/// A node's entry in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NodeReport {
    /// How the node ended.
    pub status: NodeStatus,
    /// Attempts made (0 when it never started).
    pub attempts: u32,
    /// Offset from the run's start of the first attempt's start, in ms.
    #[serde(serialize_with = "opt_ms")]
    pub started_ms: Option<f64>,
    /// Offset from the run's start of the last attempt's end, in ms.
    #[serde(serialize_with = "opt_ms")]
    pub finished_ms: Option<f64>,
    /// The output (`null` when none).
    pub output: Value,
    /// The error, when the node failed or could not run.
    pub error: Option<String>,
    /// Every attempt, with its own start, end and error.
    #[serde(default)]
    pub attempts_detail: Vec<AttemptReport>,
    /// Time spent waiting for the node's shared limit (`limit:`), over every
    /// attempt, in ms; only for a node that takes a limit.
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "opt_ms")]
    pub limit_wait_ms: Option<f64>,
    /// A `for_each` node's items, counted by how they ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<ItemCounts>,
    /// A `for_each` node's items, one entry each, in index order (their outputs
    /// are in `output`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_runs: Option<Vec<ItemRun>>,
    /// For a `waiting` node: what it waits for, `{"signal": name,
    /// "timeout_at": <RFC 3339>}` or `{"until": <RFC 3339>}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<Value>,
    /// For a `workflow` node (without `for_each`): the child run it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_run_id: Option<String>,
}

/// A `for_each` node's items, counted by how they ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemCounts {
    /// Items the list gave.
    pub total: usize,
    /// Items that succeeded.
    pub succeeded: usize,
    /// Items that failed after their retries.
    pub failed: usize,
    /// Items stopped or never started (the node failed fast, or the run was cancelled).
    pub cancelled: usize,
}

/// One item of a `for_each` node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemRun {
    /// The item's 0-based position in the list.
    pub index: usize,
    /// `succeeded`, `failed` or `cancelled`.
    pub status: NodeStatus,
    /// Attempts made (0 when it never started).
    pub attempts: u32,
    /// Offset from the run's start of the first attempt's start, in ms.
    #[serde(serialize_with = "opt_ms")]
    pub started_ms: Option<f64>,
    /// Offset from the run's start of the last attempt's end, in ms.
    #[serde(serialize_with = "opt_ms")]
    pub finished_ms: Option<f64>,
    /// The error, when the item failed.
    pub error: Option<String>,
    /// For an item of a `workflow` node: the child run it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_run_id: Option<String>,
}

impl ItemRun {
    /// The item's attempts as far as its entry tells: its count, each over the
    /// item's span, the last with its error.
    pub fn attempt_reports(&self) -> Vec<AttemptReport> {
        (0..self.attempts)
            .map(|a| AttemptReport {
                started_ms: self.started_ms.unwrap_or(0.0),
                finished_ms: self.finished_ms.unwrap_or(0.0),
                error: if a + 1 == self.attempts {
                    self.error.clone()
                } else {
                    None
                },
                limit_wait_ms: None,
            })
            .collect()
    }
}

impl NodeReport {
    /// An entry with `status` and nothing else: no attempt, no output.
    pub fn new(status: NodeStatus) -> Self {
        NodeReport {
            status,
            attempts: 0,
            started_ms: None,
            finished_ms: None,
            output: Value::Null,
            error: None,
            attempts_detail: Vec::new(),
            limit_wait_ms: None,
            items: None,
            item_runs: None,
            waiting_for: None,
            child_run_id: None,
        }
    }
}

/// One attempt of a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptReport {
    /// Offset from the run's start, in ms.
    #[serde(serialize_with = "ms")]
    pub started_ms: f64,
    /// Offset from the run's start, in ms.
    #[serde(serialize_with = "ms")]
    pub finished_ms: f64,
    /// The attempt's error, if it failed.
    pub error: Option<String>,
    /// Time this attempt waited for the node's shared limit before it started,
    /// in ms (only for a node that takes a limit).
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "opt_ms")]
    pub limit_wait_ms: Option<f64>,
}

/// The report's nodes, in file order, serialised as a JSON object keyed by node id.
#[derive(Debug, Clone, Default)]
pub struct NodeReports {
    entries: Vec<(std::sync::Arc<str>, NodeReport)>,
    /// Built on the first lookup by id, so building a report costs no hashing.
    index: std::sync::OnceLock<std::collections::HashMap<std::sync::Arc<str>, usize>>,
}

impl PartialEq for NodeReports {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl NodeReports {
    /// An empty list with room for `n` entries.
    pub fn with_capacity(n: usize) -> Self {
        NodeReports {
            entries: Vec::with_capacity(n),
            index: std::sync::OnceLock::new(),
        }
    }

    /// Adds a node's entry (in file order).
    pub fn push(&mut self, id: impl Into<std::sync::Arc<str>>, report: NodeReport) {
        self.index.take();
        self.entries.push((id.into(), report));
    }

    /// Entries built elsewhere, in file order.
    pub fn from_entries(entries: Vec<(std::sync::Arc<str>, NodeReport)>) -> Self {
        NodeReports {
            entries,
            index: std::sync::OnceLock::new(),
        }
    }

    /// The entry of node `id`.
    pub fn get(&self, id: &str) -> Option<&NodeReport> {
        let index = self.index.get_or_init(|| {
            self.entries
                .iter()
                .enumerate()
                .map(|(i, (id, _))| (id.clone(), i))
                .collect()
        });
        index.get(id).map(|&i| &self.entries[i].1)
    }

    /// Every entry, in file order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &NodeReport)> {
        self.entries.iter().map(|(id, r)| (&**id, r))
    }

    /// Every entry, mutably, in file order.
    pub fn iter_mut(&mut self) -> impl ExactSizeIterator<Item = (&str, &mut NodeReport)> {
        self.entries.iter_mut().map(|(id, r)| (&**id, r))
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Serialize for NodeReports {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (id, report) in &self.entries {
            map.serialize_entry(id, report)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for NodeReports {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = NodeReports;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of node id to node report")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<NodeReports, A::Error> {
                let mut nodes = NodeReports::default();
                while let Some((id, report)) = access.next_entry::<String, NodeReport>()? {
                    nodes.push(id, report);
                }
                Ok(nodes)
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}
