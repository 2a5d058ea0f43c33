//! A validated workflow: nodes and edges by index, adjacency lists, topological
//! order, compiled templates and resolved node kinds.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Problem, Result, did_you_mean};
use crate::load::{Format, Limits, Locator, parse_str, read_file};
use crate::node::{NodeKind, Registry};
use crate::spec::{NodeSpec, RetrySpec, StrategyKind, StrategySpec, Trigger, WorkflowSpec};
use crate::template::{Expr, TemplateSet, TemplateSetBuilder, ValueTemplate};

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

/// How a node retries failed attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all (>= 1).
    pub max_attempts: u32,
    /// Wait before the second attempt.
    pub backoff: Duration,
    /// Growth of each further wait.
    pub factor: f64,
    /// Longest wait.
    pub max_backoff: Duration,
    /// Randomise each wait between half and all of it.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 1,
            backoff: Duration::from_millis(100),
            factor: 2.0,
            max_backoff: Duration::from_secs(30),
            jitter: false,
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based). `unit` in `[0, 1)`
    /// drives the jitter; pass any value when jitter is off.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let exp = self.factor.powi(attempt.saturating_sub(1).min(1000) as i32);
        let base = self.backoff.as_secs_f64() * exp;
        let capped = base.min(self.max_backoff.as_secs_f64());
        let secs = if self.jitter {
            capped * (0.5 + 0.5 * unit.clamp(0.0, 1.0))
        } else {
            capped
        };
        Duration::try_from_secs_f64(secs).unwrap_or(self.max_backoff)
    }

    fn from_spec(spec: &RetrySpec, place: &str, problems: &mut Vec<Problem>) -> RetryPolicy {
        if spec.max_attempts == 0 {
            problems.push(Problem::new(format!("{place}.max_attempts"), "must be at least 1"));
        }
        if !(spec.factor.is_finite() && spec.factor >= 1.0) {
            problems.push(Problem::new(format!("{place}.factor"), "must be a finite number >= 1"));
        }
        if spec.max_backoff_ms < spec.backoff_ms {
            problems.push(Problem::new(
                format!("{place}.max_backoff_ms"),
                format!(
                    "is {} but backoff_ms is {}: the cap must not be below the first wait",
                    spec.max_backoff_ms, spec.backoff_ms
                ),
            ));
        }
        const DAY_MS: u64 = 24 * 3600 * 1000;
        if spec.max_backoff_ms > DAY_MS {
            problems.push(Problem::new(
                format!("{place}.max_backoff_ms"),
                "must be at most one day (86400000)",
            ));
        }
        RetryPolicy {
            max_attempts: spec.max_attempts.max(1),
            backoff: Duration::from_millis(spec.backoff_ms),
            factor: if spec.factor.is_finite() {
                spec.factor.max(1.0)
            } else {
                1.0
            },
            max_backoff: Duration::from_millis(spec.max_backoff_ms.max(spec.backoff_ms)),
            jitter: spec.jitter,
        }
    }
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

/// Lines of nodes and edges in the file, found only once a problem needs them: a
/// valid 100,000-node file pays nothing for them.
struct Lines<'a> {
    spec: &'a WorkflowSpec,
    locator: Option<&'a Locator>,
    nodes: std::cell::OnceCell<Vec<Option<usize>>>,
    edges: std::cell::OnceCell<Vec<Option<usize>>>,
}

impl<'a> Lines<'a> {
    fn new(spec: &'a WorkflowSpec, locator: Option<&'a Locator>) -> Self {
        Lines {
            spec,
            locator,
            nodes: std::cell::OnceCell::new(),
            edges: std::cell::OnceCell::new(),
        }
    }

    /// The line of node `i`; a repeated id points at its own line, not the first.
    fn node(&self, i: usize) -> Option<usize> {
        let locator = self.locator?;
        let lines = self.nodes.get_or_init(|| {
            let mut seen: HashMap<&str, usize> = HashMap::new();
            self.spec
                .nodes
                .iter()
                .map(|n| {
                    let nth = seen.entry(n.id.as_str()).or_default();
                    *nth += 1;
                    locator.node_nth(&n.id, *nth - 1)
                })
                .collect()
        });
        lines.get(i).copied().flatten()
    }

    /// The line of edge `i`; a repeated edge points at its own line.
    fn edge(&self, i: usize) -> Option<usize> {
        let locator = self.locator?;
        let lines = self.edges.get_or_init(|| {
            let mut seen: HashMap<(&str, &str), usize> = HashMap::new();
            self.spec
                .edges
                .iter()
                .map(|e| {
                    let nth = seen.entry((e.from.as_str(), e.to.as_str())).or_default();
                    *nth += 1;
                    locator.edge_nth(&e.from, &e.to, *nth - 1)
                })
                .collect()
        });
        lines.get(i).copied().flatten()
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn depth(value: &Value) -> usize {
    // Iterative, so a deep value cannot overflow the stack here.
    let mut max = 0;
    let mut stack = vec![(value, 1usize)];
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, d + 1))),
            _ => {}
        }
    }
    max
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
        let spec = parse_str(text, format, limits)?;
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
        let mut problems: Vec<Problem> = Vec::new();
        let lines = Lines::new(&spec, locator);
        let key_line = |k: &str| locator.and_then(|l| l.key(k));

        if spec.name.trim().is_empty() {
            problems.push(Problem::new("name", "must not be empty").at(key_line("name"), None));
        }
        if spec.nodes.is_empty() {
            problems.push(Problem::new("nodes", "a workflow needs at least one node").at(key_line("nodes"), None));
        }
        if spec.nodes.len() > limits.max_nodes {
            return Err(Error::Invalid(vec![Problem::new(
                "nodes",
                format!(
                    "{} nodes, over the limit of {} (raise it with --max-nodes)",
                    spec.nodes.len(),
                    limits.max_nodes
                ),
            )]));
        }
        if spec.edges.len() > limits.max_edges {
            return Err(Error::Invalid(vec![Problem::new(
                "edges",
                format!("{} edges, over the limit of {}", spec.edges.len(), limits.max_edges),
            )]));
        }
        if let Some(strategy) = &spec.strategy {
            check_strategy(strategy, &mut problems, key_line("strategy"));
        }
        if let Some(input) = &spec.input
            && depth(input) > limits.max_depth
        {
            problems.push(Problem::new(
                "input",
                format!("nested deeper than the limit of {}", limits.max_depth),
            ));
        }
        let mut seen_secrets = HashSet::new();
        for (i, name) in spec.secrets.iter().enumerate() {
            let ok = !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !name.as_bytes()[0].is_ascii_digit();
            if !ok {
                problems.push(
                    Problem::new(
                        format!("secrets[{i}]"),
                        format!("`{name}` is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"),
                    )
                    .at(key_line("secrets"), None),
                );
            } else if !seen_secrets.insert(name.as_str()) {
                problems.push(
                    Problem::new(format!("secrets[{i}]"), format!("`{name}` is listed twice"))
                        .at(key_line("secrets"), None),
                );
            }
        }

        // Ids first: everything else refers to them.
        let mut index: HashMap<Arc<str>, usize> = HashMap::with_capacity(spec.nodes.len());
        let mut ids: Vec<Arc<str>> = Vec::with_capacity(spec.nodes.len());
        for (i, node) in spec.nodes.iter().enumerate() {
            let id: Arc<str> = Arc::from(node.id.as_str());
            if node.id.is_empty() {
                problems.push(Problem::new(format!("nodes[{i}].id"), "must not be empty"));
            } else if !valid_id(&node.id) {
                problems.push(
                    Problem::new(
                        format!("nodes[{i}].id"),
                        format!("`{}` may only hold letters, digits, `_` and `-`", node.id),
                    )
                    .at(lines.node(i), None),
                );
            } else if let Some(&first) = index.get(&id) {
                problems.push(
                    Problem::new(
                        format!("nodes[{i}].id"),
                        format!("`{}` is already the id of nodes[{first}]", node.id),
                    )
                    .at(lines.node(i), None),
                );
                ids.push(id);
                continue;
            }
            index.insert(id.clone(), i);
            ids.push(id);
        }

        let mut templates = TemplateSetBuilder::new();
        let mut nodes = Vec::with_capacity(spec.nodes.len());
        for (i, node) in spec.nodes.iter().enumerate() {
            let line = || lines.node(i);
            let place = format!("nodes[{i}]");
            nodes.push(compile_node(
                node,
                &ids[i],
                &place,
                registry,
                limits,
                &mut templates,
                &mut problems,
                &line,
                &spec.secrets,
                &index,
            ));
        }

        let mut edges = Vec::with_capacity(spec.edges.len());
        let mut pairs = HashSet::with_capacity(spec.edges.len());
        for (i, edge) in spec.edges.iter().enumerate() {
            let place = format!("edges[{i}]");
            let line = || lines.edge(i);
            let from = resolve(&index, &edge.from, &format!("{place}.from"), &line, &mut problems);
            let to = resolve(&index, &edge.to, &format!("{place}.to"), &line, &mut problems);
            let when = edge.when.as_ref().and_then(|src| match Expr::compile(src) {
                Ok(expr) => {
                    check_references(
                        &expr.references(),
                        &format!("{place}.when"),
                        &line,
                        &spec.secrets,
                        &index,
                        &mut problems,
                    );
                    Some(expr)
                }
                Err(e) => {
                    problems.push(
                        Problem::new(
                            format!("{place}.when"),
                            format!(
                                "invalid expression `{src}`: {e} (edge `{}` -> `{}`)",
                                edge.from, edge.to
                            ),
                        )
                        .at(line(), None),
                    );
                    None
                }
            });
            if let (Some(from), Some(to)) = (from, to) {
                if from == to {
                    problems
                        .push(Problem::new(&place, format!("edge from `{}` to itself", edge.from)).at(line(), None));
                } else if !pairs.insert((from, to)) {
                    problems.push(
                        Problem::new(&place, format!("duplicate edge `{}` -> `{}`", edge.from, edge.to))
                            .at(line(), None),
                    );
                } else {
                    edges.push(Edge { from, to, when });
                }
            }
        }

        if !problems.is_empty() {
            return Err(Error::Invalid(problems));
        }

        let n = nodes.len();
        let (out_start, out_edges) = csr(n, edges.iter().map(|e| e.from));
        let (in_start, in_edges) = csr(n, edges.iter().map(|e| e.to));
        let mut wf = Workflow {
            spec,
            nodes,
            edges,
            index,
            out_start,
            out_edges,
            in_start,
            in_edges,
            topo: Vec::new(),
            templates: templates.finish(),
        };
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
    pub fn templates(&self) -> &TemplateSet {
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

fn resolve(
    index: &HashMap<Arc<str>, usize>,
    id: &str,
    place: &str,
    line: &dyn Fn() -> Option<usize>,
    problems: &mut Vec<Problem>,
) -> Option<usize> {
    if let Some(&i) = index.get(id) {
        return Some(i);
    }
    let hint = did_you_mean(id, index.keys().map(|k| &**k))
        .map(|h| format!(" (did you mean `{h}`?)"))
        .unwrap_or_default();
    problems.push(Problem::new(place, format!("no node has the id `{id}`{hint}")).at(line(), None));
    None
}

fn check_strategy(s: &StrategySpec, problems: &mut Vec<Problem>, line: Option<usize>) {
    let mut bad = |field: &str, msg: &str| problems.push(Problem::new(format!("strategy.{field}"), msg).at(line, None));
    let rate = s.kind == StrategyKind::RateLimited;
    match s.max_concurrency {
        Some(_) if s.kind == StrategyKind::Sequential => bad(
            "max_concurrency",
            "does not apply to sequential, which runs one node at a time",
        ),
        Some(0) => bad("max_concurrency", "must be at least 1"),
        _ => {}
    }
    match s.per_second {
        None if rate => bad("per_second", "is required for rate-limited"),
        Some(r) if rate && !(r.is_finite() && r > 0.0) => bad("per_second", "must be a number above 0"),
        Some(r) if rate && r > 1e9 => bad("per_second", "must be at most 1e9"),
        Some(_) if !rate => bad("per_second", "only applies to rate-limited"),
        _ => {}
    }
    match s.burst {
        Some(0) if rate => bad("burst", "must be at least 1"),
        Some(b) if rate && b > u32::MAX as u64 => bad("burst", "is too large"),
        Some(_) if !rate => bad("burst", "only applies to rate-limited"),
        _ => {}
    }
    if s.fail_fast.is_some() && !rate {
        bad(
            "fail_fast",
            "only applies to rate-limited (parallel always fails fast, all-settled never does)",
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn compile_node(
    spec: &NodeSpec,
    id: &Arc<str>,
    place: &str,
    registry: &Registry,
    limits: &Limits,
    templates: &mut TemplateSetBuilder,
    problems: &mut Vec<Problem>,
    line: &dyn Fn() -> Option<usize>,
    secrets: &[String],
    index: &HashMap<Arc<str>, usize>,
) -> Node {
    let kind = match registry.get(&spec.kind) {
        Some(kind) => {
            // A kind's check is an embedder's code: a panic in it is that node's
            // problem, not the end of validation.
            let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| kind.check(&spec.config)))
                .unwrap_or_else(|panic| {
                    let why = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "(no message)".to_owned());
                    vec![crate::node::ConfigProblem::new(
                        "",
                        format!("the `{}` kind's check panicked: {why}", spec.kind),
                    )]
                });
            for p in checked {
                problems.push(
                    Problem::new(
                        config_path(place, &p.path),
                        format!("{} (node `{}`)", p.message, spec.id),
                    )
                    .at(line(), None),
                );
            }
            kind.clone()
        }
        None => {
            let names = registry.names();
            let hint = did_you_mean(&spec.kind, names.iter().copied())
                .map(|h| format!("did you mean `{h}`? "))
                .unwrap_or_default();
            problems.push(
                Problem::new(
                    format!("{place}.kind"),
                    format!(
                        "unknown node kind `{}` (node `{}`); {hint}known kinds: {}",
                        spec.kind,
                        spec.id,
                        names.join(", ")
                    ),
                )
                .at(line(), None),
            );
            Arc::new(Unknown)
        }
    };
    let config_place = format!("{place}.config");
    let config = if depth(&spec.config) > limits.max_depth {
        problems.push(
            Problem::new(
                &config_place,
                format!("nested deeper than the limit of {}", limits.max_depth),
            )
            .at(line(), None),
        );
        ValueTemplate::literal(Value::Null)
    } else {
        match templates.compile_value(&spec.config, &config_place) {
            Ok(t) => {
                check_references(t.references(), &config_place, line, secrets, index, problems);
                t
            }
            Err(errors) => {
                for (path, e) in errors {
                    problems.push(
                        Problem::new(path, format!("invalid template: {e} (node `{}`)", spec.id)).at(line(), None),
                    );
                }
                ValueTemplate::literal(Value::Null)
            }
        }
    };
    let retry = match &spec.retry {
        Some(r) => RetryPolicy::from_spec(r, &format!("{place}.retry"), problems),
        None => RetryPolicy::default(),
    };
    let timeout = match spec.timeout_ms {
        Some(0) => {
            problems.push(Problem::new(format!("{place}.timeout_ms"), "must be at least 1").at(line(), None));
            None
        }
        Some(ms) if ms > 24 * 3600 * 1000 => {
            problems.push(
                Problem::new(format!("{place}.timeout_ms"), "must be at most one day (86400000)").at(line(), None),
            );
            None
        }
        Some(ms) => Some(Duration::from_millis(ms)),
        None => None,
    };
    Node {
        id: id.clone(),
        kind_name: spec.kind.clone(),
        kind,
        config,
        retry,
        timeout,
        trigger: spec.trigger,
        continue_on_error: spec.continue_on_error,
    }
}

/// The document path of a kind's config problem: its path is already relative to
/// `config` (`ms`, `headers.Authorization`, `expect_status[1]`, or empty).
fn config_path(place: &str, path: &str) -> String {
    if path.is_empty() {
        format!("{place}.config")
    } else if path.starts_with('[') {
        format!("{place}.config{path}")
    } else {
        format!("{place}.config.{path}")
    }
}

fn check_references(
    refs: &crate::template::References,
    place: &str,
    line: &dyn Fn() -> Option<usize>,
    secrets: &[String],
    index: &HashMap<Arc<str>, usize>,
    problems: &mut Vec<Problem>,
) {
    for id in &refs.nodes {
        if !index.contains_key(id.as_str()) {
            let hint = did_you_mean(id, index.keys().map(|k| &**k))
                .map(|h| format!(" (did you mean `{h}`?)"))
                .unwrap_or_default();
            problems.push(
                Problem::new(
                    place,
                    format!("refers to `nodes.{id}`, but no node has the id `{id}`{hint}"),
                )
                .at(line(), None),
            );
        }
    }
    for name in &refs.env {
        if !secrets.iter().any(|s| s == name) {
            problems.push(
                Problem::new(
                    place,
                    format!("reads `env.{name}`, which is not listed under `secrets:`"),
                )
                .at(line(), None),
            );
        }
    }
    for name in &refs.other {
        let hint = did_you_mean(name, ["input", "nodes", "env"])
            .map(|h| format!(" (did you mean `{h}`?)"))
            .unwrap_or_default();
        problems.push(
            Problem::new(
                place,
                format!("unknown variable `{name}`: the context has `input`, `nodes` and `env`{hint}"),
            )
            .at(line(), None),
        );
    }
}

struct Unknown;

#[async_trait::async_trait]
impl NodeKind for Unknown {
    async fn run(&self, _call: crate::node::NodeCall) -> std::result::Result<Value, crate::node::NodeError> {
        Err(crate::node::NodeError::permanent("unknown node kind"))
    }
}
