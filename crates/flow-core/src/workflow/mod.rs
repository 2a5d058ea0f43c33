//! A validated workflow: nodes and edges by index, adjacency lists, topological
//! order, compiled templates and resolved node kinds.

mod compile;
mod retry;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Problem, Result};
use crate::load::{Format, Limits, Locator, parse_str, read_file, unknown_fields};
use crate::node::{NodeKind, Registry};
use crate::spec::{LimitSpec, StrategySpec, Trigger, WorkflowSpec};
use crate::template::{Expr, TemplateSet, ValueTemplate};

pub use compile::depth;
pub(crate) use compile::limit_problems;
pub use retry::RetryPolicy;

/// A validated workflow, ready to run any number of times.
pub struct Workflow {
    spec: WorkflowSpec,
    nodes: Vec<Node>,
    edges: Vec<Edge>,
    index: HashMap<Arc<str>, usize>,
    out_start: Vec<u32>,
    out_edges: Vec<u32>,
    in_start: Vec<u32>,
    in_edges: Vec<u32>,
    topo: Vec<u32>,
    templates: TemplateSet,
    uses_limits: bool,
    output: Option<ValueTemplate>,
}

/// A node of a validated workflow.
pub struct Node {
    id: Arc<str>,
    kind_name: String,
    kind: Arc<dyn NodeKind>,
    config: ValueTemplate,
    retry: RetryPolicy,
    timeout: Option<Duration>,
    trigger: Trigger,
    continue_on_error: bool,
    limit: Option<NodeLimit>,
    for_each: Option<ForEach>,
}

/// A node's `for_each`: the list it runs over, the name its item has in
/// `config`, and the caps on its items.
#[derive(Debug)]
pub struct ForEach {
    list: ValueTemplate,
    path: Option<ListPath>,
    item: Arc<str>,
    max_concurrency: Option<usize>,
    tolerance: Tolerated,
}

/// A `for_each` template that is only a path into the input or a node's output
/// (`{{ input.users }}`, `{{ nodes.fetch.output.body.items }}`): the list is
/// read from the JSON directly, without a round trip through the template engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPath {
    /// `None` for `input`, else the index of the node whose output it reads.
    pub node: Option<usize>,
    /// The keys below the root, in order.
    pub keys: Vec<String>,
}

/// `tolerated_failures`, validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Tolerated {
    Count(u64),
    Percent(f64),
}

impl ForEach {
    /// The template that renders to the list of items.
    pub fn list(&self) -> &ValueTemplate {
        &self.list
    }
    /// The list's template as a plain path, when it is one.
    pub fn path(&self) -> Option<&ListPath> {
        self.path.as_ref()
    }
    /// The item's name in `config` (`as`, default `item`).
    pub fn item_name(&self) -> &Arc<str> {
        &self.item
    }
    /// At most this many items of the node run at once.
    pub fn max_concurrency(&self) -> Option<usize> {
        self.max_concurrency
    }
    /// How many of `total` items may fail with the node still succeeding
    /// (a percentage rounds down).
    pub fn tolerated(&self, total: usize) -> usize {
        match self.tolerance {
            Tolerated::Count(n) => usize::try_from(n).unwrap_or(usize::MAX),
            Tolerated::Percent(p) => ((total as f64) * p / 100.0).floor() as usize,
        }
    }
    /// `tolerated_failures` as written: `2`, `10%`.
    pub fn tolerance_text(&self) -> String {
        match self.tolerance {
            Tolerated::Count(n) => n.to_string(),
            Tolerated::Percent(p) => format!("{p}%"),
        }
    }
}

/// The shared limit a node takes before each attempt (its `limit:` field).
#[derive(Debug)]
pub struct NodeLimit {
    name: Arc<str>,
    spec: LimitSpec,
    scope: LimitScope,
    key: Option<ValueTemplate>,
}

/// Who shares a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LimitScope {
    /// Declared in the workflow's `limits:`: every run of the workflow (by name) in one engine.
    Workflow,
    /// Declared on the engine: every run of every workflow in it.
    Engine,
}

impl NodeLimit {
    /// The limit's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }
    /// The limit's quota and cap.
    pub fn spec(&self) -> &LimitSpec {
        &self.spec
    }
    /// Where the limit was declared.
    pub fn scope(&self) -> LimitScope {
        self.scope
    }
    /// The compiled key template, when starts are counted per key.
    pub fn key(&self) -> Option<&ValueTemplate> {
        self.key.as_ref()
    }
}

/// An edge of a validated workflow.
#[derive(Debug)]
pub struct Edge {
    /// Index of the source node.
    pub from: usize,
    /// Index of the target node.
    pub to: usize,
    /// The compiled `when:` condition.
    pub when: Option<Expr>,
}

impl Node {
    /// The node's id.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// The node's id, shared.
    pub fn id_arc(&self) -> &Arc<str> {
        &self.id
    }
    /// The kind's name, as written.
    pub fn kind_name(&self) -> &str {
        &self.kind_name
    }
    /// The kind.
    pub fn kind(&self) -> &Arc<dyn NodeKind> {
        &self.kind
    }
    /// The compiled config.
    pub fn config(&self) -> &ValueTemplate {
        &self.config
    }
    /// The retry policy.
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }
    /// The per-attempt time limit.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
    /// The trigger rule.
    pub fn trigger(&self) -> Trigger {
        self.trigger
    }
    /// Whether a failure lets the downstream run as if the node succeeded.
    pub fn continue_on_error(&self) -> bool {
        self.continue_on_error
    }
    /// The shared limit each attempt takes, if any.
    pub fn limit(&self) -> Option<&NodeLimit> {
        self.limit.as_ref()
    }
    /// The node's `for_each`, when it runs once per item of a list.
    pub fn for_each(&self) -> Option<&ForEach> {
        self.for_each.as_ref()
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("kind", &self.kind_name)
            .field("trigger", &self.trigger)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Workflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workflow")
            .field("name", &self.spec.name)
            .field("nodes", &self.nodes.len())
            .field("edges", &self.edges.len())
            .finish_non_exhaustive()
    }
}

impl Workflow {
    /// Reads, parses and validates a workflow file (JSON or YAML by extension).
    pub fn load(path: &Path, registry: &Registry, limits: &Limits) -> Result<Workflow> {
        let text = read_file(path, limits)?;
        let format = Format::from_path(path).unwrap_or_else(|| Format::sniff(&text));
        Workflow::from_str(&text, format, registry, limits)
    }

    /// Parses and validates a workflow document.
    pub fn from_str(text: &str, format: Format, registry: &Registry, limits: &Limits) -> Result<Workflow> {
        let spec = match parse_str(text, format, limits) {
            Ok(spec) => spec,
            Err(Error::Parse(first)) if first.message.starts_with("unknown field `") => {
                // Every unknown field at once, and what the checks after
                // parsing find in the rest: a file with four typos is one round.
                let locator = Locator::new(text);
                let (mut problems, spec) = unknown_fields(text, format, first, &locator);
                if let Some(spec) = spec
                    && let Err(Error::Invalid(more)) = Workflow::compile_located(spec, registry, limits, Some(&locator))
                {
                    problems.extend(more);
                }
                return Err(match problems.len() {
                    1 => Error::Parse(problems.remove(0)),
                    _ => Error::Invalid(problems),
                });
            }
            Err(e) => return Err(e),
        };
        Workflow::compile_located(spec, registry, limits, Some(&Locator::new(text)))
    }

    /// Validates a parsed spec: every problem found is reported at once.
    pub fn compile(spec: WorkflowSpec, registry: &Registry, limits: &Limits) -> Result<Workflow> {
        Workflow::compile_located(spec, registry, limits, None)
    }

    fn compile_located(
        spec: WorkflowSpec,
        registry: &Registry,
        limits: &Limits,
        locator: Option<&Locator>,
    ) -> Result<Workflow> {
        let parts = compile::Compiler::new(&spec, registry, limits, locator).compile()?;
        let n = parts.nodes.len();
        let (out_start, out_edges) = csr(n, parts.edges.iter().map(|e| e.from));
        let (in_start, in_edges) = csr(n, parts.edges.iter().map(|e| e.to));
        let mut wf = Workflow {
            spec,
            nodes: parts.nodes,
            edges: parts.edges,
            index: parts.index,
            out_start,
            out_edges,
            in_start,
            in_edges,
            topo: Vec::new(),
            templates: parts.templates.finish(),
            uses_limits: false,
            output: parts.output,
        };
        wf.uses_limits = wf.nodes.iter().any(|n| n.limit.is_some());
        match wf.topological_order() {
            Ok(topo) => wf.topo = topo,
            Err(cycle) => {
                let names: Vec<&str> = cycle.iter().map(|&i| wf.nodes[i].id()).collect();
                let first = names.first().copied().unwrap_or_default();
                return Err(Error::Invalid(vec![
                    Problem::new(
                        "edges",
                        format!("the graph has a cycle: {} -> {first}", names.join(" -> ")),
                    )
                    .at(locator.and_then(|l| l.node(first)), None),
                ]));
            }
        }
        Ok(wf)
    }

    /// Kahn's algorithm with ties broken by file order; on a cycle, one cycle's nodes.
    fn topological_order(&self) -> std::result::Result<Vec<u32>, Vec<usize>> {
        let n = self.nodes.len();
        let mut indegree: Vec<u32> = (0..n).map(|i| self.in_start[i + 1] - self.in_start[i]).collect();
        let mut heap: BinaryHeap<Reverse<u32>> = (0..n as u32)
            .filter(|&i| indegree[i as usize] == 0)
            .map(Reverse)
            .collect();
        let mut order = Vec::with_capacity(n);
        while let Some(Reverse(i)) = heap.pop() {
            order.push(i);
            for &e in self.outgoing(i as usize) {
                let to = self.edges[e as usize].to;
                indegree[to] -= 1;
                if indegree[to] == 0 {
                    heap.push(Reverse(to as u32));
                }
            }
        }
        if order.len() == n {
            return Ok(order);
        }
        // Walk forward inside the remaining nodes until one repeats: that is a cycle.
        let Some(start) = (0..n).find(|&i| indegree[i] > 0) else {
            return Err(Vec::new());
        };
        let mut path = vec![start];
        let mut pos: HashMap<usize, usize> = HashMap::from([(start, 0)]);
        let mut cur = start;
        loop {
            let Some(next) = self
                .outgoing(cur)
                .iter()
                .map(|&e| self.edges[e as usize].to)
                .find(|&t| indegree[t] > 0)
            else {
                return Err(path);
            };
            if let Some(&p) = pos.get(&next) {
                return Err(path[p..].to_vec());
            }
            pos.insert(next, path.len());
            path.push(next);
            cur = next;
        }
    }

    /// The top-level `output:`, compiled (`None` when the file has none).
    pub fn output(&self) -> Option<&ValueTemplate> {
        self.output.as_ref()
    }

    /// The workflow's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }
    /// The spec this workflow was compiled from.
    pub fn spec(&self) -> &WorkflowSpec {
        &self.spec
    }
    /// The `strategy:` section, if the file has one.
    pub fn strategy(&self) -> Option<&StrategySpec> {
        self.spec.strategy.as_ref()
    }
    /// The `limits:` section: limits shared by every run of this workflow.
    pub fn limits(&self) -> &BTreeMap<String, LimitSpec> {
        &self.spec.limits
    }
    /// Whether any node takes a shared limit.
    pub fn uses_limits(&self) -> bool {
        self.uses_limits
    }
    /// The default input (`null` when none).
    pub fn input(&self) -> &Value {
        self.spec.input.as_ref().unwrap_or(&Value::Null)
    }
    /// The declared secret names.
    pub fn secrets(&self) -> &[String] {
        &self.spec.secrets
    }
    /// Every node, in file order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }
    /// Every edge, in file order.
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }
    /// The index of node `id`.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }
    /// Indices (into [`Workflow::edges`]) of the edges leaving node `node`.
    pub fn outgoing(&self, node: usize) -> &[u32] {
        &self.out_edges[self.out_start[node] as usize..self.out_start[node + 1] as usize]
    }
    /// Indices of the edges entering node `node`.
    pub fn incoming(&self, node: usize) -> &[u32] {
        &self.in_edges[self.in_start[node] as usize..self.in_start[node + 1] as usize]
    }
    /// Node indices in topological order, ties broken by file order.
    pub fn topological(&self) -> &[u32] {
        &self.topo
    }
    /// The compiled string templates.
    pub(crate) fn templates(&self) -> &TemplateSet {
        &self.templates
    }
    /// The DAG's levels: level 0 holds the nodes without predecessors, level k the
    /// nodes whose longest path from a root has k edges. Nodes of one level never
    /// depend on each other, so they can run side by side.
    pub fn levels(&self) -> Vec<Vec<usize>> {
        let mut level = vec![0usize; self.nodes.len()];
        for &i in &self.topo {
            for &e in self.outgoing(i as usize) {
                let to = self.edges[e as usize].to;
                level[to] = level[to].max(level[i as usize] + 1);
            }
        }
        let depth = level.iter().copied().max().map_or(0, |m| m + 1);
        let mut levels = vec![Vec::new(); depth];
        for (i, &l) in level.iter().enumerate() {
            levels[l].push(i);
        }
        levels
    }
}

fn csr(n: usize, keys: impl Iterator<Item = usize> + Clone) -> (Vec<u32>, Vec<u32>) {
    let mut start = vec![0u32; n + 1];
    for k in keys.clone() {
        start[k + 1] += 1;
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    let mut fill = start.clone();
    let mut list = vec![0u32; start[n] as usize];
    for (e, k) in keys.enumerate() {
        list[fill[k] as usize] = e as u32;
        fill[k] += 1;
    }
    (start, list)
}
