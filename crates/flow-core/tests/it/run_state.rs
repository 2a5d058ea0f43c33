//! The run's state machine, driven by hand: ready nodes run one at a time in the
//! order they became ready; `check` gives each node's final status.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use flow_core::{ContextWriter, NodeStatus, Phase, RunState, Settled, Transition};
use serde_json::{Value, json};

use crate::support::yaml;

/// Runs the workflow (the YAML after `name: t`) to the end; the nodes in
/// `failing` fail when they run, the others succeed. Returns `id=status` for
/// every node, in file order, then the order in which nodes ran.
fn drive(body: &str, input: Value, failing: &[&str]) -> (String, Vec<String>) {
    let wf = Arc::new(yaml(&format!("name: t\n{body}")));
    let writer = ContextWriter::new(wf.clone(), input, BTreeMap::new());
    let ctx = writer.context().clone();
    let mut state = RunState::new(&wf);
    let mut queue: VecDeque<usize> = state.initial().into();
    let mut order = Vec::new();
    while let Some(n) = queue.pop_front() {
        assert!(state.start(n), "{} started twice", wf.nodes()[n].id());
        assert_eq!(state.phase(n), Phase::Running);
        let node = &wf.nodes()[n];
        order.push(node.id().to_owned());
        let fails = failing.contains(&node.id());
        let status = if fails {
            NodeStatus::Failed
        } else {
            NodeStatus::Succeeded
        };
        let passes = !fails || node.continue_on_error();
        let error = fails.then(|| format!("{} broke", node.id()));
        writer.record(n, Settled::new(status, json!({ "id": node.id() }), error));
        let mut out = Vec::new();
        let mut when = |e: usize| match &wf.edges()[e].when {
            Some(expr) => expr.is_true(&ctx).map_err(|err| err.to_string()),
            None => Ok(true),
        };
        state.settle(&wf, n, status, passes, &mut when, &mut out);
        for t in out {
            match t {
                Transition::Ready(m) => {
                    assert_eq!(state.phase(m), Phase::Ready);
                    queue.push_back(m);
                }
                Transition::Settled { node, status, error } => {
                    assert_eq!(state.phase(node), Phase::Settled(status));
                    assert_eq!(error.is_some(), status == NodeStatus::Failed, "{error:?}");
                    writer.record(node, Settled::new(status, Value::Null, error));
                }
                other => panic!("unexpected transition {other:?}"),
            }
        }
    }
    assert!(state.is_finished(), "every node settles");
    assert_eq!(state.unsettled(), 0);
    let statuses: Vec<String> = wf
        .nodes()
        .iter()
        .enumerate()
        .map(|(i, n)| match ctx.settled(i) {
            Some(s) => format!("{}={}", n.id(), s.status),
            None => format!("{}=?", n.id()),
        })
        .collect();
    (statuses.join(" "), order)
}

#[track_caller]
fn check(body: &str, input: Value, failing: &[&str], expected: &str) {
    let (statuses, _) = drive(body, input, failing);
    assert_eq!(statuses, expected, "\n{body}");
}

const DIAMOND: &str =
    "nodes: [{ id: a, kind: noop }, { id: b, kind: noop }, { id: c, kind: noop }, { id: d, kind: noop }]
edges: [{ from: a, to: b }, { from: a, to: c }, { from: b, to: d }, { from: c, to: d }]";

/// A diamond whose join `d` has the given trigger, and whose edges `a -> b` and `a -> c`
/// carry `input.b` and `input.c` as conditions.
fn diamond(trigger: &str) -> String {
    format!(
        "nodes: [{{ id: a, kind: noop }}, {{ id: b, kind: noop }}, {{ id: c, kind: noop }}, {{ id: d, kind: noop, trigger: {trigger} }}]
edges: [{{ from: a, to: b, when: input.b }}, {{ from: a, to: c, when: input.c }}, {{ from: b, to: d }}, {{ from: c, to: d }}]"
    )
}

fn flags(b: bool, c: bool) -> Value {
    json!({ "b": b, "c": c })
}

#[test]
fn a_diamond_joins_once() {
    let (statuses, order) = drive(DIAMOND, Value::Null, &[]);
    assert_eq!(statuses, "a=succeeded b=succeeded c=succeeded d=succeeded");
    assert_eq!(order, ["a", "b", "c", "d"]);
}

#[test]
fn all_success() {
    let d = diamond("all_success");
    check(
        &d,
        flags(true, true),
        &[],
        "a=succeeded b=succeeded c=succeeded d=succeeded",
    );
    check(
        &d,
        flags(true, false),
        &[],
        "a=succeeded b=succeeded c=skipped d=succeeded",
    );
    check(
        &d,
        flags(false, false),
        &[],
        "a=succeeded b=skipped c=skipped d=skipped",
    );
    check(
        &d,
        flags(true, true),
        &["b"],
        "a=succeeded b=failed c=succeeded d=upstream_failed",
    );
    check(
        &d,
        flags(true, false),
        &["b"],
        "a=succeeded b=failed c=skipped d=upstream_failed",
    );
    check(
        &d,
        flags(true, true),
        &["a"],
        "a=failed b=upstream_failed c=upstream_failed d=upstream_failed",
    );
}

#[test]
fn all_done() {
    let d = diamond("all_done");
    check(
        &d,
        flags(true, true),
        &["b"],
        "a=succeeded b=failed c=succeeded d=succeeded",
    );
    check(
        &d,
        flags(false, false),
        &[],
        "a=succeeded b=skipped c=skipped d=succeeded",
    );
    check(
        &d,
        flags(true, true),
        &["a"],
        "a=failed b=upstream_failed c=upstream_failed d=succeeded",
    );
    check(
        &d,
        flags(true, true),
        &["b", "c", "d"],
        "a=succeeded b=failed c=failed d=failed",
    );
}

#[test]
fn one_success() {
    let d = diamond("one_success");
    check(
        &d,
        flags(true, true),
        &["b"],
        "a=succeeded b=failed c=succeeded d=succeeded",
    );
    check(
        &d,
        flags(true, true),
        &["c"],
        "a=succeeded b=succeeded c=failed d=succeeded",
    );
    check(
        &d,
        flags(true, true),
        &["b", "c"],
        "a=succeeded b=failed c=failed d=upstream_failed",
    );
    check(
        &d,
        flags(true, false),
        &["b"],
        "a=succeeded b=failed c=skipped d=upstream_failed",
    );
    check(
        &d,
        flags(false, false),
        &[],
        "a=succeeded b=skipped c=skipped d=skipped",
    );
    check(
        &d,
        flags(false, true),
        &[],
        "a=succeeded b=skipped c=succeeded d=succeeded",
    );
}

#[test]
fn skipped_and_upstream_failed_propagate() {
    let chain = "nodes: [{ id: a, kind: noop }, { id: b, kind: noop }, { id: c, kind: noop }, { id: d, kind: noop, trigger: all_done }]
edges: [{ from: a, to: b, when: input.go }, { from: b, to: c }, { from: c, to: d }]";
    check(
        chain,
        json!({ "go": false }),
        &[],
        "a=succeeded b=skipped c=skipped d=succeeded",
    );
    check(
        chain,
        json!({ "go": true }),
        &["b"],
        "a=succeeded b=failed c=upstream_failed d=succeeded",
    );
    check(
        chain,
        json!({ "go": true }),
        &[],
        "a=succeeded b=succeeded c=succeeded d=succeeded",
    );
}

#[test]
fn an_edge_out_of_a_failed_node_is_not_taken() {
    let body = "nodes: [{ id: a, kind: noop }, { id: b, kind: noop, trigger: one_success }]
edges: [{ from: a, to: b, when: 'true' }]";
    check(body, Value::Null, &["a"], "a=failed b=upstream_failed");
}

#[test]
fn continue_on_error_passes_downstream() {
    let body = "nodes: [{ id: a, kind: noop, continue_on_error: true }, { id: b, kind: noop }, { id: c, kind: noop }]
edges: [{ from: a, to: b }, { from: a, to: c, when: \"nodes.a.error == 'a broke'\" }]";
    check(body, Value::Null, &["a"], "a=failed b=succeeded c=succeeded");
    check(body, Value::Null, &[], "a=succeeded b=succeeded c=skipped");
}

#[test]
fn a_when_that_cannot_be_evaluated_fails_its_target() {
    let body = "nodes: [{ id: a, kind: noop }, { id: b, kind: noop }, { id: c, kind: noop }, { id: d, kind: noop }]
edges: [{ from: a, to: c, when: nodes.b.output.id }, { from: b, to: d }, { from: c, to: d, when: 'true' }]";
    check(
        body,
        Value::Null,
        &[],
        "a=succeeded b=succeeded c=failed d=upstream_failed",
    );
}

#[test]
fn one_success_starts_without_waiting_and_only_once() {
    let wf = yaml(
        "name: t\nnodes: [{ id: a, kind: noop }, { id: b, kind: noop }, { id: c, kind: noop, trigger: one_success }]
edges: [{ from: a, to: c }, { from: b, to: c }]",
    );
    let mut state = RunState::new(&wf);
    assert_eq!(state.initial(), [0, 1]);
    assert!(state.start(0) && state.start(1));
    let mut out = Vec::new();
    let mut always = |_: usize| Ok(true);
    state.settle(&wf, 0, NodeStatus::Succeeded, true, &mut always, &mut out);
    assert_eq!(out, [Transition::Ready(2)], "c is ready while b still runs");
    assert_eq!(state.phase(1), Phase::Running);
    assert!(state.start(2));
    out.clear();
    state.settle(&wf, 1, NodeStatus::Failed, false, &mut always, &mut out);
    assert_eq!(out, [], "b's failure changes nothing for c");
    assert_eq!(state.phase(2), Phase::Running);
    state.settle(&wf, 2, NodeStatus::Succeeded, true, &mut always, &mut out);
    assert!(state.is_finished());
}

#[test]
fn start_and_settle_are_idempotent() {
    let wf = yaml(&format!("name: t\n{DIAMOND}"));
    let mut state = RunState::new(&wf);
    assert!(!state.start(0), "not ready before initial()");
    assert_eq!(state.initial(), [0]);
    assert_eq!(state.initial(), Vec::<usize>::new(), "initial() marks each node once");
    assert!(!state.start(1), "b waits on a");
    assert!(state.start(0));
    assert!(!state.start(0));
    let mut out = Vec::new();
    let mut always = |_: usize| Ok(true);
    state.settle(&wf, 0, NodeStatus::Succeeded, true, &mut always, &mut out);
    assert_eq!(out, [Transition::Ready(1), Transition::Ready(2)]);
    out.clear();
    state.settle(&wf, 0, NodeStatus::Succeeded, true, &mut always, &mut out);
    assert_eq!(out, [], "a second settle is ignored");
    assert_eq!(state.unsettled(), 3);
}

#[test]
fn cancel_pending_cancels_what_has_not_started() {
    let wf = yaml(&format!("name: t\n{DIAMOND}"));
    let mut state = RunState::new(&wf);
    state.initial();
    state.start(0);
    let mut out = Vec::new();
    state.settle(&wf, 0, NodeStatus::Succeeded, true, &mut |_| Ok(true), &mut out);
    assert!(state.start(1));
    assert_eq!(state.cancel_pending(), [2, 3], "c was ready, d waiting; b runs");
    assert_eq!(state.phase(2), Phase::Settled(NodeStatus::Cancelled));
    assert_eq!(state.phase(1), Phase::Running);
    out.clear();
    state.settle(&wf, 1, NodeStatus::Cancelled, false, &mut |_| Ok(true), &mut out);
    assert_eq!(out, []);
    assert!(state.is_finished());
}

#[test]
fn a_cancelled_predecessor_cancels_its_downstream() {
    let wf = yaml("name: t\nnodes: [{ id: a, kind: noop }, { id: b, kind: noop }]\nedges: [{ from: a, to: b }]");
    let mut state = RunState::new(&wf);
    state.initial();
    state.start(0);
    let mut out = Vec::new();
    state.settle(&wf, 0, NodeStatus::Cancelled, false, &mut |_| Ok(true), &mut out);
    assert_eq!(
        out,
        [Transition::Settled {
            node: 1,
            status: NodeStatus::Cancelled,
            error: None
        }]
    );
}

#[test]
fn levels_and_topological_order() {
    let wf = yaml(
        "name: t\nnodes: [{ id: d, kind: noop }, { id: c, kind: noop }, { id: b, kind: noop }, { id: a, kind: noop }, { id: e, kind: noop }]
edges: [{ from: a, to: b }, { from: b, to: c }, { from: a, to: d }]",
    );
    let ids = |order: &[u32]| order.iter().map(|&i| wf.nodes()[i as usize].id()).collect::<Vec<_>>();
    assert_eq!(ids(wf.topological()), ["a", "d", "b", "c", "e"]);
    assert_eq!(wf.levels(), [vec![3, 4], vec![0, 2], vec![1]]);
    assert_eq!(wf.index_of("b"), Some(2));
    assert_eq!(wf.incoming(1).len(), 1);
    assert_eq!(wf.outgoing(3).len(), 2);
}
