//! Validation of a parsed spec into a [`Workflow`]: one [`Compiler`] holds the
//! state every check shares (the registry, the limits, the problems found so
//! far, the node index, the templates) and collects every problem at once.

use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::retry::RetryPolicy;
use super::{Edge, ForEach, LimitScope, ListPath, Node, NodeLimit, Tolerated};
use crate::error::{Error, Problem, Result, did_you_mean, panic_message};
use crate::load::{Limits, Locator};
use crate::node::{ConfigProblem, NodeCall, NodeError, NodeKind, Registry};
use crate::spec::{LimitSpec, LimitUse, NodeSpec, Tolerance, WorkflowSpec};
use crate::template::{Expr, References, TemplateSetBuilder, ValueTemplate};

/// A rate whose quota window is longer than this is refused (governor counts
/// nanoseconds in 64 bits: about 584 years).
const MAX_WINDOW_SECS: f64 = 100.0 * 365.0 * 24.0 * 3600.0;
const DAY_MS: u64 = 24 * 3600 * 1000;

/// The state of one validation.
pub(super) struct Compiler<'a> {
    spec: &'a WorkflowSpec,
    registry: &'a Registry,
    limits: &'a Limits,
    lines: Lines<'a>,
    problems: Vec<Problem>,
    index: HashMap<Arc<str>, usize>,
    ids: Vec<Arc<str>>,
    templates: TemplateSetBuilder,
}

impl<'a> Compiler<'a> {
    pub(super) fn new(
        spec: &'a WorkflowSpec,
        registry: &'a Registry,
        limits: &'a Limits,
        locator: Option<&'a Locator>,
    ) -> Self {
        Compiler {
            spec,
            registry,
            limits,
            lines: Lines::new(spec, locator),
            problems: Vec::new(),
            index: HashMap::with_capacity(spec.nodes.len()),
            ids: Vec::with_capacity(spec.nodes.len()),
            templates: TemplateSetBuilder::new(),
        }
    }

    /// Everything but the graph's shape: the caller builds the adjacency and
    /// the topological order from the result.
    pub(super) fn compile(mut self) -> Result<Parts> {
        self.check_sizes()?;
        self.check_header();
        self.check_strategy();
        self.check_limits();
        self.check_secrets();
        self.index_ids();
        let nodes: Vec<Node> = (0..self.spec.nodes.len()).map(|i| self.node(i)).collect();
        let edges = self.edges();
        let output = self.output();
        if !self.problems.is_empty() {
            return Err(Error::Invalid(self.problems));
        }
        Ok(Parts {
            nodes,
            edges,
            index: self.index,
            templates: self.templates,
            output,
        })
    }

    /// The top-level `output:`, compiled and its references checked.
    fn output(&mut self) -> Option<ValueTemplate> {
        let value = self.spec.output.as_ref()?;
        let line = self.key_line("output");
        if depth(value) > self.limits.max_depth {
            let message = format!("nested deeper than the limit of {}", self.limits.max_depth);
            self.push("output", message, line);
            return None;
        }
        match self.templates.compile_value(value, "output") {
            Ok(t) => {
                self.check_references(t.references(), "output", line, &[]);
                Some(t)
            }
            Err(errors) => {
                for (path, e) in errors {
                    self.push(path, format!("invalid template: {e}"), line);
                }
                None
            }
        }
    }

    fn key_line(&self, key: &str) -> Option<usize> {
        self.lines.locator.and_then(|l| l.key(key))
    }

    fn push(&mut self, place: impl Into<String>, message: impl Into<String>, line: Option<usize>) {
        self.problems.push(Problem::new(place, message).at(line, None));
    }

    fn check_sizes(&self) -> Result<()> {
        let (spec, limits) = (self.spec, self.limits);
        if spec.nodes.len() > limits.max_nodes {
            return Err(Error::Invalid(vec![Problem::new(
                "nodes",
                format!(
                    "{} nodes, over the limit of {} (the `max_nodes` limit)",
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
        Ok(())
    }

    fn check_header(&mut self) {
        let spec = self.spec;
        if spec.name.trim().is_empty() {
            self.push("name", "must not be empty", self.key_line("name"));
        } else if spec.name.chars().any(char::is_control) {
            // Names go into journals, logs and URLs: no NUL, newline or escape.
            self.push("name", "must not hold control characters", self.key_line("name"));
        }
        if spec.nodes.is_empty() {
            self.push("nodes", "a workflow needs at least one node", self.key_line("nodes"));
        }
        if let Some(input) = &spec.input
            && depth(input) > self.limits.max_depth
        {
            let message = format!("nested deeper than the limit of {}", self.limits.max_depth);
            self.push("input", message, None);
        }
    }

    /// The `strategy:` section, checked by the strategy kind it names.
    fn check_strategy(&mut self) {
        let Some(strategy) = &self.spec.strategy else { return };
        let line = self.key_line("strategy");
        let Some(check) = self.registry.strategy(&strategy.kind) else {
            let message = unknown("strategy kind", &strategy.kind, "", &self.registry.strategy_names());
            self.push("strategy.kind", message, line);
            return;
        };
        let what = format!("the `{}` strategy's check", strategy.kind);
        for p in guarded(&what, || check(&strategy.options)) {
            self.push(sub_path("strategy", &p.path), p.message, line);
        }
    }

    /// The `limits:` section: at least one of the three, each in range.
    fn check_limits(&mut self) {
        let line = self.key_line("limits");
        for (name, limit) in &self.spec.limits {
            let place = format!("limits.{name}");
            if !valid_id(name) {
                self.push(
                    &place,
                    format!("`{name}` may only hold letters, digits, `_` and `-`"),
                    line,
                );
            }
            for (field, message) in limit_problems(limit) {
                self.push(format!("{place}{field}"), message, line);
            }
        }
    }

    fn check_secrets(&mut self) {
        let line = self.key_line("secrets");
        let mut seen = HashSet::new();
        for (i, name) in self.spec.secrets.iter().enumerate() {
            let ok = !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !name.as_bytes()[0].is_ascii_digit();
            if !ok {
                let message = format!("`{name}` is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
                self.push(format!("secrets[{i}]"), message, line);
            } else if !seen.insert(name.as_str()) {
                self.push(format!("secrets[{i}]"), format!("`{name}` is listed twice"), line);
            }
        }
    }

    /// Ids first: everything else refers to them.
    fn index_ids(&mut self) {
        for (i, node) in self.spec.nodes.iter().enumerate() {
            let id: Arc<str> = Arc::from(node.id.as_str());
            if node.id.is_empty() {
                self.push(format!("nodes[{i}].id"), "must not be empty", None);
            } else if !valid_id(&node.id) {
                let message = format!("`{}` may only hold letters, digits, `_` and `-`", node.id);
                self.push(format!("nodes[{i}].id"), message, self.lines.node(i));
            } else if let Some(&first) = self.index.get(&id) {
                let message = format!("`{}` is already the id of nodes[{first}]", node.id);
                self.push(format!("nodes[{i}].id"), message, self.lines.node(i));
                self.ids.push(id);
                continue;
            }
            self.index.insert(id.clone(), i);
            self.ids.push(id);
        }
    }

    fn node(&mut self, i: usize) -> Node {
        let spec = &self.spec.nodes[i];
        let place = format!("nodes[{i}]");
        let kind = self.kind(spec, &place, i);
        let for_each = self.for_each(spec, &place, i);
        let item = for_each.as_ref().map(|f| f.item.clone());
        let bound: Vec<&str> = item
            .iter()
            .map(|n| &**n)
            .chain(item.as_ref().map(|_| "index"))
            .collect();
        let config_place = format!("{place}.config");
        let config = if depth(&spec.config) > self.limits.max_depth {
            let message = format!("nested deeper than the limit of {}", self.limits.max_depth);
            self.push(&config_place, message, self.lines.node(i));
            ValueTemplate::literal(Value::Null)
        } else {
            self.template(&spec.config, &config_place, spec, i, &bound)
        };
        let retry = match &spec.retry {
            Some(r) => RetryPolicy::from_spec(r, &format!("{place}.retry"), &mut self.problems),
            None => RetryPolicy::default(),
        };
        let timeout = match spec.timeout_ms {
            Some(0) => {
                self.push(format!("{place}.timeout_ms"), "must be at least 1", self.lines.node(i));
                None
            }
            Some(ms) if ms > DAY_MS => {
                let message = "must be at most one day (86400000)";
                self.push(format!("{place}.timeout_ms"), message, self.lines.node(i));
                None
            }
            Some(ms) => Some(Duration::from_millis(ms)),
            None => None,
        };
        let limit = spec.limit.as_ref().and_then(|l| self.limit(l, spec, &place, i, &bound));
        Node {
            id: self.ids[i].clone(),
            kind_name: spec.kind.clone(),
            kind,
            config,
            retry,
            timeout,
            trigger: spec.trigger,
            continue_on_error: spec.continue_on_error,
            limit,
            for_each,
        }
    }

    /// A node's `for_each` and the fields that go with it (`as`,
    /// `max_concurrency`, `tolerated_failures`).
    fn for_each(&mut self, spec: &NodeSpec, place: &str, i: usize) -> Option<ForEach> {
        let line = self.lines.node(i);
        let Some(source) = &spec.for_each else {
            for (field, given) in [
                ("as", spec.item_name.is_some()),
                ("max_concurrency", spec.max_concurrency.is_some()),
                ("tolerated_failures", spec.tolerated_failures.is_some()),
            ] {
                if given {
                    let message = format!("only applies to a node with `for_each` (node `{}`)", spec.id);
                    self.push(format!("{place}.{field}"), message, line);
                }
            }
            return None;
        };
        let list = self.template(
            &Value::String(source.clone()),
            &format!("{place}.for_each"),
            spec,
            i,
            &[],
        );
        let item = spec.item_name.clone().unwrap_or_else(|| "item".to_owned());
        let identifier = item.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && item.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !identifier {
            let message = format!("`{item}` is not a name ([A-Za-z_][A-Za-z0-9_]*) (node `{}`)", spec.id);
            self.push(format!("{place}.as"), message, line);
        } else if ["input", "nodes", "env", "index"].contains(&item.as_str()) {
            let message = format!(
                "`{item}` would hide the context's `{item}`; choose another name (node `{}`)",
                spec.id
            );
            self.push(format!("{place}.as"), message, line);
        }
        let max_concurrency = match spec.max_concurrency {
            Some(0) => {
                self.push(format!("{place}.max_concurrency"), "must be at least 1", line);
                None
            }
            Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            None => None,
        };
        let tolerance = match &spec.tolerated_failures {
            None => Tolerated::Count(0),
            Some(Tolerance::Count(n)) => Tolerated::Count(*n),
            Some(Tolerance::Percent(text)) => {
                let percent = text
                    .strip_suffix('%')
                    .and_then(|n| n.trim().parse::<f64>().ok())
                    .filter(|p| (0.0..=100.0).contains(p));
                match percent {
                    Some(p) => Tolerated::Percent(p),
                    None => {
                        let message = format!(
                            "must be a count or a percentage from \"0%\" to \"100%\", not {text:?} (node `{}`)",
                            spec.id
                        );
                        self.push(format!("{place}.tolerated_failures"), message, line);
                        Tolerated::Count(0)
                    }
                }
            }
        };
        Some(ForEach {
            path: list_path(source, &self.index),
            list,
            item: Arc::from(item),
            max_concurrency,
            tolerance,
        })
    }

    /// The node's kind, and the problems its `check` finds in the config.
    fn kind(&mut self, spec: &NodeSpec, place: &str, i: usize) -> Arc<dyn NodeKind> {
        let line = self.lines.node(i);
        let Some(kind) = self.registry.get(&spec.kind) else {
            let node = format!(" (node `{}`)", spec.id);
            let message = unknown("node kind", &spec.kind, &node, &self.registry.names());
            self.push(format!("{place}.kind"), message, line);
            return Arc::new(Unknown);
        };
        let what = format!("the `{}` kind's check", spec.kind);
        for p in guarded(&what, || kind.check(&spec.config)) {
            let message = format!("{} (node `{}`)", p.message, spec.id);
            self.push(sub_path(&format!("{place}.config"), &p.path), message, line);
        }
        kind.clone()
    }

    /// Compiles a value's templates and checks what they refer to; `bound` are the
    /// names a `for_each` node's item binds (its `as` name and `index`).
    fn template(&mut self, value: &Value, place: &str, spec: &NodeSpec, i: usize, bound: &[&str]) -> ValueTemplate {
        let line = self.lines.node(i);
        match self.templates.compile_value(value, place) {
            Ok(t) => {
                self.check_references(t.references(), place, line, bound);
                t
            }
            Err(errors) => {
                for (path, e) in errors {
                    self.push(path, format!("invalid template: {e} (node `{}`)", spec.id), line);
                }
                ValueTemplate::literal(Value::Null)
            }
        }
    }

    /// A node's `limit:`: a limit of the file, else one of the engine.
    fn limit(&mut self, limit: &LimitUse, spec: &NodeSpec, place: &str, i: usize, bound: &[&str]) -> Option<NodeLimit> {
        let name = limit.name();
        let place = format!("{place}.limit");
        let found = match self.spec.limits.get(name) {
            Some(found) => Some((found.clone(), LimitScope::Workflow)),
            None => self.registry.limit(name).map(|l| (l.clone(), LimitScope::Engine)),
        };
        let Some((limit_spec, scope)) = found else {
            let names: Vec<&str> = self
                .spec
                .limits
                .keys()
                .map(String::as_str)
                .chain(self.registry.limit_names())
                .collect();
            let hint = did_you_mean(name, names.iter().copied())
                .map(|h| format!(" (did you mean `{h}`?)"))
                .unwrap_or_default();
            let known = if names.is_empty() {
                "no limit is declared under `limits:`".to_owned()
            } else {
                format!("declared limits: {}", names.join(", "))
            };
            let message = format!("unknown limit `{name}` (node `{}`){hint}; {known}", spec.id);
            self.push(place, message, self.lines.node(i));
            return None;
        };
        let key = limit
            .key()
            .map(|key| self.template(&Value::String(key.to_owned()), &format!("{place}.key"), spec, i, bound));
        Some(NodeLimit {
            name: Arc::from(name),
            spec: limit_spec,
            scope,
            key,
        })
    }

    fn edges(&mut self) -> Vec<Edge> {
        let spec = self.spec;
        let mut edges = Vec::with_capacity(spec.edges.len());
        let mut pairs = HashSet::with_capacity(spec.edges.len());
        for (i, edge) in spec.edges.iter().enumerate() {
            let place = format!("edges[{i}]");
            let line = self.lines.edge(i);
            let from = self.resolve(&edge.from, &format!("{place}.from"), line);
            let to = self.resolve(&edge.to, &format!("{place}.to"), line);
            let when = edge.when.as_ref().and_then(|src| match Expr::compile(src) {
                Ok(expr) => {
                    self.check_references(&expr.references(), &format!("{place}.when"), line, &[]);
                    Some(expr)
                }
                Err(e) => {
                    let message = format!(
                        "invalid expression `{src}`: {e} (edge `{}` -> `{}`)",
                        edge.from, edge.to
                    );
                    self.push(format!("{place}.when"), message, line);
                    None
                }
            });
            let (Some(from), Some(to)) = (from, to) else { continue };
            if from == to {
                self.push(&place, format!("edge from `{}` to itself", edge.from), line);
            } else if !pairs.insert((from, to)) {
                self.push(&place, format!("duplicate edge `{}` -> `{}`", edge.from, edge.to), line);
            } else {
                edges.push(Edge { from, to, when });
            }
        }
        edges
    }

    fn resolve(&mut self, id: &str, place: &str, line: Option<usize>) -> Option<usize> {
        if let Some(&i) = self.index.get(id) {
            return Some(i);
        }
        let hint = self.id_hint(id);
        self.push(place, format!("no node has the id `{id}`{hint}"), line);
        None
    }

    fn id_hint(&self, id: &str) -> String {
        did_you_mean(id, self.index.keys().map(|k| &**k))
            .map(|h| format!(" (did you mean `{h}`?)"))
            .unwrap_or_default()
    }

    fn check_references(&mut self, refs: &References, place: &str, line: Option<usize>, bound: &[&str]) {
        for id in &refs.nodes {
            if !self.index.contains_key(id.as_str()) {
                let hint = self.id_hint(id);
                let message = format!("refers to `nodes.{id}`, but no node has the id `{id}`{hint}");
                self.push(place, message, line);
            }
        }
        for name in &refs.env {
            if !self.spec.secrets.iter().any(|s| s == name) {
                let message = format!("reads `env.{name}`, which is not listed under `secrets:`");
                self.push(place, message, line);
            }
        }
        for name in refs.other.iter().filter(|n| !bound.contains(&n.as_str())) {
            let hint = did_you_mean(name, ["input", "nodes", "env"])
                .map(|h| format!(" (did you mean `{h}`?)"))
                .unwrap_or_default();
            let message = format!("unknown variable `{name}`: the context has `input`, `nodes` and `env`{hint}");
            self.push(place, message, line);
        }
    }
}

/// What the compiler hands back to [`Workflow`].
pub(super) struct Parts {
    pub(super) nodes: Vec<Node>,
    pub(super) edges: Vec<Edge>,
    pub(super) index: HashMap<Arc<str>, usize>,
    pub(super) templates: TemplateSetBuilder,
    pub(super) output: Option<ValueTemplate>,
}

/// `{{ input.a.b }}` or `{{ nodes.x.output.a }}` as a path, when the template is
/// exactly that (plain names only; anything else is rendered as a template).
fn list_path(source: &str, index: &HashMap<Arc<str>, usize>) -> Option<ListPath> {
    let inner = source.trim().strip_prefix("{{")?.strip_suffix("}}")?.trim();
    let name = |s: &&str| {
        s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let parts: Vec<&str> = inner.split('.').collect();
    if !parts.iter().all(name) {
        return None;
    }
    match parts.as_slice() {
        ["input", keys @ ..] => Some(ListPath {
            node: None,
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        }),
        ["nodes", id, "output", keys @ ..] => Some(ListPath {
            node: Some(*index.get(*id)?),
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        }),
        _ => None,
    }
}

/// "unknown node kind `x` (node `a`); did you mean `y`? known kinds: …".
fn unknown(what: &str, name: &str, whose: &str, names: &[&str]) -> String {
    let hint = did_you_mean(name, names.iter().copied())
        .map(|h| format!("did you mean `{h}`? "))
        .unwrap_or_default();
    format!(
        "unknown {what} `{name}`{whose}; {hint}known kinds: {}",
        names.join(", ")
    )
}

/// The problems an embedder's check finds; a panic in it is one problem of the
/// node or section it checks, not the end of validation.
fn guarded(what: &str, check: impl FnOnce() -> Vec<ConfigProblem>) -> Vec<ConfigProblem> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)).unwrap_or_else(|panic| {
        vec![ConfigProblem::new(
            "",
            format!("{what} panicked: {}", panic_message(&*panic)),
        )]
    })
}

/// Problems of one limit, each as (`.field` or empty, message).
pub(crate) fn limit_problems(limit: &LimitSpec) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    if limit.per_second.is_none() && limit.max_concurrency.is_none() {
        let why = if limit.burst.is_some() {
            "`burst` needs `per_second`"
        } else {
            "a limit needs at least one of per_second, burst, max_concurrency"
        };
        problems.push((
            "",
            format!("{why} (per_second with an optional burst, max_concurrency, or both)"),
        ));
    }
    if let Some(rate) = limit.per_second {
        if !(rate.is_finite() && rate > 0.0) {
            problems.push((".per_second", "must be a number above 0".to_owned()));
        } else if rate > 1e9 {
            problems.push((".per_second", "must be at most 1e9".to_owned()));
        } else if f64::from(limit.burst.unwrap_or(1).max(1)) / rate > MAX_WINDOW_SECS {
            problems.push((
                ".per_second",
                "is too slow: a quota must refill within 100 years".to_owned(),
            ));
        }
    } else if limit.burst.is_some() && limit.max_concurrency.is_some() {
        problems.push((".burst", "only applies with per_second".to_owned()));
    }
    if limit.burst == Some(0) {
        problems.push((".burst", "must be at least 1".to_owned()));
    }
    if limit.max_concurrency == Some(0) {
        problems.push((".max_concurrency", "must be at least 1".to_owned()));
    }
    problems
}

/// Lines of nodes and edges in the file, found only once a problem needs them: a
/// valid 100,000-node file pays nothing for them.
struct Lines<'a> {
    spec: &'a WorkflowSpec,
    locator: Option<&'a Locator>,
    nodes: OnceCell<Vec<Option<usize>>>,
    edges: OnceCell<Vec<Option<usize>>>,
}

impl<'a> Lines<'a> {
    fn new(spec: &'a WorkflowSpec, locator: Option<&'a Locator>) -> Self {
        Lines {
            spec,
            locator,
            nodes: OnceCell::new(),
            edges: OnceCell::new(),
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

pub(super) fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// How deeply `value` nests (a scalar is 1), counted without recursion.
pub fn depth(value: &Value) -> usize {
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

/// The document path of a problem whose path is relative to `place` (`ms`,
/// `headers.Authorization`, `expect_status[1]`, or empty for `place` itself).
fn sub_path(place: &str, path: &str) -> String {
    match path {
        "" => place.to_owned(),
        p if p.starts_with('[') => format!("{place}{p}"),
        p => format!("{place}.{p}"),
    }
}

struct Unknown;

#[async_trait::async_trait]
impl NodeKind for Unknown {
    async fn run(&self, _call: NodeCall) -> std::result::Result<Value, NodeError> {
        Err(NodeError::permanent("unknown node kind"))
    }
}
