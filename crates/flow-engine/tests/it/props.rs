//! Random DAGs with random conditions, failures, triggers and continue_on_error,
//! run under every strategy and checked against an independent model of the
//! rules, plus invariants of order and concurrency read from the run's events.

use std::collections::HashMap;
use std::sync::OnceLock;

use flow_engine::strategy::{StrategyConfig, StrategyKind};
use flow_engine::{Event, EventKind, NodeStatus, Report, RunOptions, RunStatus};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::support::{Probe, configured, engine};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Trigger {
    AllSuccess,
    AllDone,
    OneSuccess,
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    ms: u64,
    pub(crate) fail: bool,
    trigger: Trigger,
    pub(crate) continue_on_error: bool,
    /// A `for_each` node: whether each item fails, the failures it tolerates,
    /// and its own cap on items at once.
    pub(crate) each: Option<Each>,
}

#[derive(Debug, Clone)]
pub(crate) struct Each {
    pub(crate) items: Vec<bool>,
    tolerated: usize,
    max_concurrency: Option<usize>,
}

impl Each {
    fn failures(&self) -> usize {
        self.items.iter().filter(|f| **f).count()
    }
}

#[derive(Debug, Clone)]
struct Edge {
    from: usize,
    to: usize,
    /// `input.flags[k]`, negated when the bool is true.
    when: Option<(usize, bool)>,
}

#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub(crate) nodes: Vec<Node>,
    edges: Vec<Edge>,
    flags: Vec<bool>,
    cap: Option<usize>,
    fail_fast: bool,
}

const FLAGS: usize = 4;

fn node() -> impl Strategy<Value = Node> {
    let trigger = prop_oneof![
        2 => Just(Trigger::AllSuccess),
        1 => Just(Trigger::AllDone),
        1 => Just(Trigger::OneSuccess),
    ];
    let each = prop::option::weighted(
        0.3,
        (
            prop::collection::vec(prop::bool::weighted(0.2), 0..=6),
            0usize..=2,
            prop::option::of(1usize..=3),
        )
            .prop_map(|(items, tolerated, max_concurrency)| Each {
                items,
                tolerated,
                max_concurrency,
            }),
    );
    (
        0u64..=3,
        prop::bool::weighted(0.2),
        trigger,
        prop::bool::weighted(0.2),
        each,
    )
        .prop_map(|(ms, fail, trigger, continue_on_error, each)| Node {
            ms,
            fail,
            trigger,
            continue_on_error,
            each,
        })
}

pub(crate) fn case() -> impl Strategy<Value = Case> {
    (1usize..=12)
        .prop_flat_map(|n| {
            let edge = (0..n, 0..n, prop::option::weighted(0.4, (0..FLAGS, any::<bool>())));
            (
                prop::collection::vec(node(), n),
                prop::collection::vec(edge, 0..=2 * n),
                prop::collection::vec(any::<bool>(), FLAGS),
                prop::option::of(1usize..=4),
                any::<bool>(),
            )
        })
        .prop_map(|(nodes, raw, flags, cap, fail_fast)| {
            let mut seen = std::collections::HashSet::new();
            let edges = raw
                .into_iter()
                .filter(|(a, b, _)| a != b)
                .map(|(a, b, when)| Edge {
                    from: a.min(b),
                    to: a.max(b),
                    when,
                })
                .filter(|e| seen.insert((e.from, e.to)))
                .collect();
            Case {
                nodes,
                edges,
                flags,
                cap,
                fail_fast,
            }
        })
}

fn id(i: usize) -> String {
    format!("n{i}")
}

pub(crate) fn document(case: &Case) -> String {
    let nodes: Vec<Value> = case
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let trigger = match n.trigger {
                Trigger::AllSuccess => "all_success",
                Trigger::AllDone => "all_done",
                Trigger::OneSuccess => "one_success",
            };
            let mut node = json!({
                "id": id(i),
                "kind": "probe",
                "config": { "ms": n.ms, "fail": n.fail },
                "trigger": trigger,
                "continue_on_error": n.continue_on_error,
            });
            if let Some(each) = &n.each {
                node["for_each"] = json!(format!("{{{{ input.items[{i}] }}}}"));
                node["config"]["fail"] = json!("{{ item }}");
                node["tolerated_failures"] = json!(each.tolerated);
                if let Some(cap) = each.max_concurrency {
                    node["max_concurrency"] = json!(cap);
                }
            }
            node
        })
        .collect();
    let edges: Vec<Value> = case
        .edges
        .iter()
        .map(|e| {
            let mut edge = json!({ "from": id(e.from), "to": id(e.to) });
            if let Some((k, negate)) = e.when {
                edge["when"] = json!(format!("{}input.flags[{k}]", if negate { "not " } else { "" }));
            }
            edge
        })
        .collect();
    json!({ "name": "prop", "nodes": nodes, "edges": edges }).to_string()
}

impl Case {
    fn taken(&self, e: &Edge) -> bool {
        e.when.is_none_or(|(k, negate)| self.flags[k] != negate)
    }

    fn passes(&self, node: usize, status: NodeStatus) -> bool {
        status == NodeStatus::Succeeded || (status == NodeStatus::Failed && self.nodes[node].continue_on_error)
    }

    /// The model: every node's status when nothing is cancelled (all-settled),
    /// computed in index order (edges go from lower to higher indices).
    pub(crate) fn expected(&self) -> Vec<NodeStatus> {
        let mut status: Vec<NodeStatus> = Vec::with_capacity(self.nodes.len());
        for (j, node) in self.nodes.iter().enumerate() {
            let incoming: Vec<&Edge> = self.edges.iter().filter(|e| e.to == j).collect();
            let (mut taken, mut failed) = (false, false);
            for e in &incoming {
                let from = status[e.from];
                if self.passes(e.from, from) {
                    taken |= self.taken(e);
                } else if from != NodeStatus::Skipped {
                    failed = true;
                }
            }
            let runs = incoming.is_empty()
                || match node.trigger {
                    Trigger::AllDone => true,
                    Trigger::AllSuccess => taken && !failed,
                    Trigger::OneSuccess => taken,
                };
            let fails = match &node.each {
                Some(each) => each.failures() > each.tolerated,
                None => node.fail,
            };
            status.push(match () {
                _ if runs && fails => NodeStatus::Failed,
                _ if runs => NodeStatus::Succeeded,
                _ if failed => NodeStatus::UpstreamFailed,
                _ => NodeStatus::Skipped,
            });
        }
        status
    }

    /// The run's input: the condition flags and every `for_each` node's list.
    pub(crate) fn input(&self) -> Value {
        let items: Vec<Value> = self
            .nodes
            .iter()
            .map(|n| n.each.as_ref().map_or(json!([]), |e| json!(e.items)))
            .collect();
        json!({ "flags": self.flags, "items": items })
    }

    pub(crate) fn hard_failure(&self, node: usize, status: NodeStatus) -> bool {
        status == NodeStatus::Failed && !self.nodes[node].continue_on_error
    }
}

struct Observed {
    report: Report,
    events: Vec<Event>,
    runs: HashMap<String, u32>,
    peak: usize,
}

/// One engine for every case: building one costs more than a small run.
fn shared() -> &'static (flow_engine::Engine, Probe) {
    static SHARED: OnceLock<(flow_engine::Engine, Probe)> = OnceLock::new();
    SHARED.get_or_init(engine)
}

async fn observe(text: &str, input: Value, strategy: std::sync::Arc<dyn flow_engine::Strategy>) -> Observed {
    let (engine, probe) = shared();
    probe.reset();
    let wf = match engine.parse_json(text) {
        Ok(wf) => wf,
        Err(e) => panic!("{e}\n{text}"),
    };
    let mut options = RunOptions::new().input(input).strategy(strategy);
    let mut rx = options.subscribe();
    let report = match engine.run(&wf, options).await {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    Observed {
        report,
        events,
        runs: probe.snapshot().runs,
        peak: probe.peak(),
    }
}

fn strategies(case: &Case) -> Vec<(std::sync::Arc<dyn flow_engine::Strategy>, usize, bool)> {
    let cap = case.cap;
    let with_cap = |kind| StrategyConfig {
        max_concurrency: cap,
        ..StrategyConfig::new(kind)
    };
    let unbounded = cap.unwrap_or(usize::MAX);
    vec![
        (configured(StrategyConfig::new(StrategyKind::Sequential)), 1, true),
        (configured(with_cap(StrategyKind::Parallel)), unbounded, true),
        (configured(with_cap(StrategyKind::AllSettled)), unbounded, false),
        (
            configured(StrategyConfig {
                per_second: Some(10_000.0),
                burst: Some(100),
                fail_fast: Some(case.fail_fast),
                ..with_cap(StrategyKind::RateLimited)
            }),
            unbounded,
            case.fail_fast,
        ),
    ]
}

/// Every invariant of one run; `Err` describes the first one broken.
fn check(case: &Case, seen: &Observed, cap: usize, fail_fast: bool) -> Result<(), String> {
    let n = case.nodes.len();
    let expected = case.expected();
    let report = &seen.report;
    let status: Vec<NodeStatus> = (0..n)
        .map(|i| {
            report
                .node(&id(i))
                .map(|r| r.status)
                .ok_or(format!("{} missing", id(i)))
        })
        .collect::<Result<_, _>>()?;

    // Each node at most once, and the report agrees with the probe.
    for (i, &st) in status.iter().enumerate() {
        let runs = seen.runs.get(&id(i)).copied().unwrap_or(0);
        let node = report.node(&id(i)).ok_or("missing")?;
        if let Some(each) = &case.nodes[i].each {
            check_items(i, each, st, runs, node, fail_fast)?;
            continue;
        }
        if runs > 1 || node.attempts != runs {
            return Err(format!(
                "{}: ran {runs} times, report says {} attempts",
                id(i),
                node.attempts
            ));
        }
        if node.started_ms.is_some() != (runs == 1) || node.finished_ms.is_some() != (runs == 1) {
            return Err(format!(
                "{}: started_ms {:?} but ran {runs} times",
                id(i),
                node.started_ms
            ));
        }
        let ran = matches!(st, NodeStatus::Succeeded | NodeStatus::Failed);
        if ran && runs != 1 {
            return Err(format!("{} is {st} without running", id(i)));
        }
        if (st == NodeStatus::Failed) != node.error.is_some() {
            return Err(format!("{} is {st} with error {:?}", id(i), node.error));
        }
    }

    // Concurrency never above the cap.
    if seen.peak > cap {
        return Err(format!("{} nodes in flight, cap {cap}", seen.peak));
    }

    // Statuses against the model.
    let any_hard = (0..n).any(|i| case.hard_failure(i, expected[i]));
    if !fail_fast || !any_hard {
        if status != expected {
            return Err(format!("statuses {status:?}, model {expected:?}"));
        }
        let want = if any_hard {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        if report.status != want {
            return Err(format!("run {:?}, want {want:?}", report.status));
        }
    } else {
        for i in 0..n {
            if status[i] != expected[i] && status[i] != NodeStatus::Cancelled {
                return Err(format!(
                    "{} is {}, model {} (or cancelled)",
                    id(i),
                    status[i],
                    expected[i]
                ));
            }
        }
        if report.status != RunStatus::Failed || !(0..n).any(|i| case.hard_failure(i, status[i])) {
            return Err(format!("fail-fast run {:?} with statuses {status:?}", report.status));
        }
    }
    if !fail_fast && status.contains(&NodeStatus::Cancelled) {
        return Err("a cancelled node without fail-fast".into());
    }

    // Order, from the events: each node settles once; a node starts only after its
    // predecessors settled (one_success: after one passing predecessor with a taken edge).
    let mut settled_at = vec![None; n];
    let mut started_at = vec![None; n];
    let mut last_start = None;
    let index = |node: &str| node.strip_prefix('n').and_then(|k| k.parse::<usize>().ok());
    for (at, e) in seen.events.iter().enumerate() {
        match &e.kind {
            EventKind::NodeSettled { node, .. } => {
                let i = index(node).ok_or("bad id")?;
                if settled_at[i].replace(at).is_some() {
                    return Err(format!("{node} settled twice"));
                }
            }
            EventKind::NodeStarted { node, .. } => {
                let i = index(node).ok_or("bad id")?;
                if started_at[i].replace(at).is_some() {
                    return Err(format!("{node} started twice"));
                }
            }
            EventKind::ItemStarted { node, .. } => {
                let i = index(node).ok_or("bad id")?;
                started_at[i].get_or_insert(at);
                last_start = last_start.max(Some(at));
            }
            _ => {}
        }
    }
    if let Some(i) = settled_at.iter().position(Option::is_none) {
        return Err(format!("{} never settled", id(i)));
    }
    for (j, start) in started_at.iter().enumerate() {
        let Some(start) = *start else { continue };
        let before = |p: usize| settled_at[p].is_some_and(|s| s < start);
        let incoming: Vec<&Edge> = case.edges.iter().filter(|e| e.to == j).collect();
        let ok = match case.nodes[j].trigger {
            Trigger::OneSuccess if !incoming.is_empty() => incoming
                .iter()
                .any(|e| before(e.from) && case.passes(e.from, status[e.from]) && case.taken(e)),
            _ => incoming.iter().all(|e| before(e.from)),
        };
        if !ok {
            return Err(format!("{} started before its predecessors allowed it", id(j)));
        }
    }

    // Fail-fast: nothing starts once a failure has settled.
    if fail_fast {
        let first_failure = (0..n)
            .filter(|&i| case.hard_failure(i, status[i]))
            .filter_map(|i| settled_at[i])
            .min();
        if let Some(at) = first_failure
            && let Some(late) = started_at.iter().position(|s| s.is_some_and(|s| s > at))
        {
            return Err(format!("{} started after the first failure settled", id(late)));
        }
        if let (Some(at), Some(last)) = (first_failure, last_start)
            && last > at
        {
            return Err("an item started after the first failure settled".into());
        }
    }
    Ok(())
}

/// A `for_each` node: each item at most once, the report's counts agree with the
/// probe, and the node's status follows from its items and its tolerance.
fn check_items(
    i: usize,
    each: &Each,
    status: NodeStatus,
    runs: u32,
    node: &flow_engine::NodeReport,
    fail_fast: bool,
) -> Result<(), String> {
    let name = id(i);
    let Some(counts) = node.items else {
        // Its list was never rendered: skipped, upstream_failed, or cancelled first.
        return if runs == 0 && !matches!(status, NodeStatus::Succeeded | NodeStatus::Failed) {
            Ok(())
        } else {
            Err(format!("{name} is {status} with {runs} items run and no `items`"))
        };
    };
    let total = each.items.len();
    if counts.total != total || counts.succeeded + counts.failed + counts.cancelled != total {
        return Err(format!("{name}: counts {counts:?} for {total} items"));
    }
    let runs_list = node.item_runs.as_ref().ok_or("no item_runs")?;
    let started = runs_list.iter().filter(|r| r.attempts > 0).count();
    if runs as usize > total || node.attempts != runs || started != runs as usize {
        return Err(format!(
            "{name}: {runs} item runs, {} attempts, {counts:?}",
            node.attempts
        ));
    }
    if runs_list.iter().any(|r| r.attempts > 1) {
        return Err(format!("{name}: an item ran twice: {runs_list:?}"));
    }
    if !fail_fast && runs as usize != total {
        return Err(format!("{name}: {runs} of {total} items ran without fail-fast"));
    }
    for (k, run) in runs_list.iter().enumerate() {
        let want = if each.items[k] {
            NodeStatus::Failed
        } else {
            NodeStatus::Succeeded
        };
        if run.index != k || (run.status != want && run.status != NodeStatus::Cancelled) {
            return Err(format!("{name}[{k}]: {run:?}, want {want}"));
        }
        let output_ok = if run.status == NodeStatus::Succeeded {
            node.output[k].is_object()
        } else {
            node.output[k].is_null()
        };
        if !output_ok {
            return Err(format!("{name}[{k}] is {} with output {}", run.status, node.output[k]));
        }
    }
    let follows = match status {
        NodeStatus::Failed => counts.failed > each.tolerated,
        NodeStatus::Cancelled => counts.failed <= each.tolerated && counts.cancelled > 0,
        _ => counts.failed <= each.tolerated && counts.cancelled == 0,
    };
    if !follows || (status == NodeStatus::Cancelled && !fail_fast) {
        return Err(format!(
            "{name} is {status} with {counts:?}, {} tolerated",
            each.tolerated
        ));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn runs_follow_the_rules(case in case()) {
        let text = document(&case);
        let input = case.input();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        let runtime = match runtime {
            Ok(rt) => rt,
            Err(e) => panic!("{e}"),
        };
        for (strategy, cap, fail_fast) in strategies(&case) {
            let name = strategy.name().to_owned();
            let seen = runtime.block_on(observe(&text, input.clone(), strategy));
            if let Err(broken) = check(&case, &seen, cap, fail_fast) {
                prop_assert!(false, "{name} (fail_fast {fail_fast}): {broken}\n{text}\ninput {input}");
            }
        }
    }
}
