//! Trigger rules and conditions, end to end. `check` runs under all-settled (so a
//! failure does not cancel the rest) and compares every node's final status.

use flow_engine::strategy::StrategyKind;
use flow_engine::{RunOptions, RunStatus};
use serde_json::{Value, json};

use crate::support::{interval, run, run_with, statuses, strategy};

#[track_caller]
fn check(body: &str, input: Value, expected: &str) {
    let options = RunOptions::new()
        .input(input)
        .strategy(strategy(StrategyKind::AllSettled));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    let (report, _) = match runtime {
        Ok(rt) => rt.block_on(run_with(body, options)),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(statuses(&report), expected, "\n{body}");
}

/// A diamond `a -> b, c -> d` where `b` and `c` fail when `input.fail_b` / `input.fail_c`,
/// the edges into `b` and `c` are taken when `input.b` / `input.c`, and `d` has `trigger`.
fn diamond(trigger: &str) -> String {
    format!(
        "nodes:
  - {{ id: a, kind: probe }}
  - {{ id: b, kind: probe, config: {{ fail: '{{{{ input.fail_b | default(false) }}}}' }} }}
  - {{ id: c, kind: probe, config: {{ fail: '{{{{ input.fail_c | default(false) }}}}' }} }}
  - {{ id: d, kind: probe, trigger: {trigger} }}
edges:
  - {{ from: a, to: b, when: input.b }}
  - {{ from: a, to: c, when: input.c }}
  - {{ from: b, to: d }}
  - {{ from: c, to: d }}"
    )
}

fn flags(b: bool, c: bool, fail_b: bool, fail_c: bool) -> Value {
    json!({ "b": b, "c": c, "fail_b": fail_b, "fail_c": fail_c })
}

#[tokio::test]
async fn a_diamond_join_runs_once_after_both_branches() {
    let body = "nodes:
  - { id: a, kind: probe }
  - { id: b, kind: probe, config: { ms: 30 } }
  - { id: c, kind: probe, config: { ms: 60 } }
  - { id: d, kind: probe }
edges: [{ from: a, to: b }, { from: a, to: c }, { from: b, to: d }, { from: c, to: d }]";
    let (report, probe) = run_with(body, RunOptions::new()).await;
    assert_eq!(statuses(&report), "a=succeeded b=succeeded c=succeeded d=succeeded");
    for id in ["a", "b", "c", "d"] {
        assert_eq!(probe.runs(id), 1, "{id} runs once");
    }
    let (d_start, _) = interval(&report, "d");
    assert!(d_start >= interval(&report, "b").1 && d_start >= interval(&report, "c").1);
}

#[test]
fn all_success() {
    let d = diamond("all_success");
    check(
        &d,
        flags(true, true, false, false),
        "a=succeeded b=succeeded c=succeeded d=succeeded",
    );
    check(
        &d,
        flags(true, false, false, false),
        "a=succeeded b=succeeded c=skipped d=succeeded",
    );
    check(
        &d,
        flags(false, false, false, false),
        "a=succeeded b=skipped c=skipped d=skipped",
    );
    check(
        &d,
        flags(true, true, true, false),
        "a=succeeded b=failed c=succeeded d=upstream_failed",
    );
    check(
        &d,
        flags(true, false, true, false),
        "a=succeeded b=failed c=skipped d=upstream_failed",
    );
}

#[test]
fn all_done() {
    let d = diamond("all_done");
    check(
        &d,
        flags(true, true, true, false),
        "a=succeeded b=failed c=succeeded d=succeeded",
    );
    check(
        &d,
        flags(false, false, false, false),
        "a=succeeded b=skipped c=skipped d=succeeded",
    );
    check(
        &d,
        flags(true, true, true, true),
        "a=succeeded b=failed c=failed d=succeeded",
    );
}

#[test]
fn one_success() {
    let d = diamond("one_success");
    check(
        &d,
        flags(true, true, true, false),
        "a=succeeded b=failed c=succeeded d=succeeded",
    );
    check(
        &d,
        flags(true, true, false, true),
        "a=succeeded b=succeeded c=failed d=succeeded",
    );
    check(
        &d,
        flags(true, true, true, true),
        "a=succeeded b=failed c=failed d=upstream_failed",
    );
    check(
        &d,
        flags(false, true, false, true),
        "a=succeeded b=skipped c=failed d=upstream_failed",
    );
    check(
        &d,
        flags(false, false, false, false),
        "a=succeeded b=skipped c=skipped d=skipped",
    );
}

#[test]
fn skipped_and_upstream_failed_propagate_down_a_chain() {
    let chain = "nodes:
  - { id: a, kind: probe, config: { fail: '{{ input.fail }}' } }
  - { id: b, kind: probe }
  - { id: c, kind: probe }
  - { id: d, kind: probe }
  - { id: cleanup, kind: probe, trigger: all_done }
edges: [{ from: a, to: b, when: input.go }, { from: b, to: c }, { from: c, to: d }, { from: d, to: cleanup }]";
    let input = |go: bool, fail: bool| json!({ "go": go, "fail": fail });
    check(
        chain,
        input(false, false),
        "a=succeeded b=skipped c=skipped d=skipped cleanup=succeeded",
    );
    check(
        chain,
        input(true, true),
        "a=failed b=upstream_failed c=upstream_failed d=upstream_failed cleanup=succeeded",
    );
    check(
        chain,
        input(false, true),
        "a=failed b=upstream_failed c=upstream_failed d=upstream_failed cleanup=succeeded",
    );
    check(
        chain,
        input(true, false),
        "a=succeeded b=succeeded c=succeeded d=succeeded cleanup=succeeded",
    );
}

#[test]
fn conditions_read_outputs_and_statuses() {
    let body = "nodes:
  - { id: classify, kind: transform, config: { output: { large: '{{ input.amount > 100 }}' } } }
  - { id: review, kind: probe }
  - { id: approve, kind: probe }
  - { id: audit, kind: probe }
edges:
  - { from: classify, to: review, when: nodes.classify.output.large }
  - { from: classify, to: approve, when: not nodes.classify.output.large }
  - { from: classify, to: audit, when: \"nodes.classify.status == 'succeeded' and input.amount > 1000\" }";
    check(
        body,
        json!({ "amount": 250 }),
        "classify=succeeded review=succeeded approve=skipped audit=skipped",
    );
    check(
        body,
        json!({ "amount": 50 }),
        "classify=succeeded review=skipped approve=succeeded audit=skipped",
    );
    check(
        body,
        json!({ "amount": 5000 }),
        "classify=succeeded review=succeeded approve=skipped audit=succeeded",
    );
}

#[test]
fn an_edge_out_of_a_failed_node_is_not_taken() {
    let body = "nodes:
  - { id: a, kind: fail }
  - { id: b, kind: probe, trigger: one_success }
  - { id: c, kind: probe, trigger: all_done }
edges: [{ from: a, to: b, when: 'true' }, { from: a, to: c, when: 'true' }]";
    check(body, Value::Null, "a=failed b=upstream_failed c=succeeded");
}

#[test]
fn a_when_that_cannot_be_evaluated_fails_its_target() {
    let body = "nodes:
  - { id: a, kind: probe }
  - { id: slow, kind: probe, config: { ms: 300 } }
  - { id: c, kind: probe }
edges: [{ from: a, to: c, when: nodes.slow.output.id }]";
    check(body, Value::Null, "a=succeeded slow=succeeded c=failed");
}

#[tokio::test]
async fn a_failing_when_reports_the_edge_and_fails_the_run() {
    let body = "nodes:
  - { id: a, kind: probe }
  - { id: slow, kind: probe, config: { ms: 300 } }
  - { id: c, kind: probe }
edges: [{ from: a, to: c, when: nodes.slow.output.id }]";
    let (report, probe) = run_with(body, RunOptions::new().strategy(strategy(StrategyKind::AllSettled))).await;
    assert_eq!(report.status, RunStatus::Failed);
    let c = crate::support::node(&report, "c");
    let error = c.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("edge `a` -> `c`") && error.contains("could not be evaluated"),
        "{error}"
    );
    assert_eq!((c.attempts, c.started_ms, probe.runs("c")), (0, None, 0));
}

#[tokio::test]
async fn one_success_does_not_wait_for_the_others() {
    let body = "nodes:
  - { id: fast, kind: probe, config: { ms: 10 } }
  - { id: slow, kind: probe, config: { ms: 400 } }
  - { id: first, kind: probe, trigger: one_success }
edges: [{ from: fast, to: first }, { from: slow, to: first }]";
    let (report, probe) = run_with(body, RunOptions::new()).await;
    assert_eq!(statuses(&report), "fast=succeeded slow=succeeded first=succeeded");
    assert_eq!(probe.runs("first"), 1, "exactly once, though two edges were taken");
    let (first_start, first_end) = interval(&report, "first");
    let (_, slow_end) = interval(&report, "slow");
    assert!(
        first_start < slow_end && first_end < slow_end,
        "`first` ran while `slow` was still running"
    );
}

#[tokio::test]
async fn one_success_after_a_failure_runs_when_another_succeeds() {
    let body = "nodes:
  - { id: broken, kind: fail }
  - { id: slow, kind: probe, config: { ms: 50 } }
  - { id: first, kind: probe, trigger: one_success }
edges: [{ from: broken, to: first }, { from: slow, to: first }]";
    let report = crate::support::run_with(body, RunOptions::new().strategy(strategy(StrategyKind::AllSettled)))
        .await
        .0;
    assert_eq!(statuses(&report), "broken=failed slow=succeeded first=succeeded");
    assert_eq!(report.status, RunStatus::Failed);
}

#[tokio::test]
async fn continue_on_error_lets_the_downstream_run() {
    let body = "nodes:
  - { id: flaky, kind: fail, config: { message: 'service down' }, continue_on_error: true }
  - { id: next, kind: transform, config: { output: { saw: '{{ nodes.flaky.error }}', status: '{{ nodes.flaky.status }}' } } }
  - { id: on_error, kind: probe }
edges: [{ from: flaky, to: next }, { from: flaky, to: on_error, when: nodes.flaky.error is not none }]";
    let report = run(body).await;
    assert_eq!(statuses(&report), "flaky=failed next=succeeded on_error=succeeded");
    assert_eq!(
        report.status,
        RunStatus::Succeeded,
        "a continue_on_error failure does not fail the run"
    );
    let flaky = crate::support::node(&report, "flaky");
    assert_eq!(flaky.error.as_deref(), Some("service down"));
    assert_eq!(
        crate::support::node(&report, "next").output,
        json!({ "saw": "service down", "status": "failed" })
    );
}

#[tokio::test]
async fn nodes_without_incoming_edges_start_at_once() {
    let body = "nodes:
  - { id: a, kind: probe, config: { ms: 100 } }
  - { id: b, kind: probe, config: { ms: 100 } }
  - { id: c, kind: probe, config: { ms: 100 } }";
    let report = run(body).await;
    let starts: Vec<f64> = ["a", "b", "c"].iter().map(|id| interval(&report, id).0).collect();
    let ends: Vec<f64> = ["a", "b", "c"].iter().map(|id| interval(&report, id).1).collect();
    let last_start = starts.iter().copied().fold(f64::MIN, f64::max);
    let first_end = ends.iter().copied().fold(f64::MAX, f64::min);
    assert!(
        last_start < first_end,
        "all three started before any finished: {starts:?} {ends:?}"
    );
}
