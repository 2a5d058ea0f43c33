//! Faults inside nodes: a kind that panics fails its own node with the panic's
//! message, and the rest of the run goes on as the strategy says; a kind whose
//! future never returns is stopped by the node's timeout.

use std::time::Instant;

use flow_engine::strategy::StrategyKind;
use flow_engine::{NodeStatus, RunOptions, RunStatus};

use crate::support::{engine, error, node, run, statuses, strategy, workflow};

const PANICS: &str = "nodes:
  - { id: boom, kind: panic, config: { message: kaput } }
  - { id: late-boom, kind: panic, config: { message: later, after_ms: 20 } }
  - { id: odd-boom, kind: panic, config: { payload: number } }
  - { id: sibling, kind: delay, config: { ms: 50 } }
  - { id: after-boom, kind: noop }
  - { id: after-sibling, kind: noop }
edges:
  - { from: boom, to: after-boom }
  - { from: sibling, to: after-sibling }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_fails_its_node_and_all_settled_runs_every_other_branch() {
    let (engine, _) = engine();
    let wf = workflow(&engine, PANICS);
    let report = run(
        &engine,
        &wf,
        RunOptions::new().strategy(strategy(StrategyKind::AllSettled)),
    )
    .await;
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(
        statuses(&report),
        "boom=failed late-boom=failed odd-boom=failed sibling=succeeded after-boom=upstream_failed after-sibling=succeeded"
    );
    // At once (in the engine's inline first poll) or after an await, with the message.
    assert_eq!(error(&report, "boom"), "panicked: kaput");
    assert_eq!(error(&report, "late-boom"), "panicked: later");
    assert_eq!(error(&report, "odd-boom"), "panicked: (no message)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_under_parallel_and_sequential_fails_fast() {
    let (engine, _) = engine();
    let wf = workflow(
        &engine,
        "nodes:
  - { id: boom, kind: panic, config: { message: kaput, after_ms: 10 } }
  - { id: slow, kind: delay, config: { ms: 30000 } }",
    );
    for kind in [StrategyKind::Parallel, StrategyKind::Sequential] {
        let started = Instant::now();
        let report = run(&engine, &wf, RunOptions::new().strategy(strategy(kind))).await;
        assert!(started.elapsed().as_secs() < 5, "{kind:?} took {:?}", started.elapsed());
        assert_eq!(report.status, RunStatus::Failed, "{kind:?}");
        assert_eq!(statuses(&report), "boom=failed slow=cancelled", "{kind:?}");
        assert_eq!(error(&report, "boom"), "panicked: kaput");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_not_retried_and_continue_on_error_lets_the_downstream_run() {
    let (engine, _) = engine();
    let wf = workflow(
        &engine,
        "nodes:
  - { id: boom, kind: panic, retry: { max_attempts: 3, backoff_ms: 1 }, continue_on_error: true }
  - { id: next, kind: noop }
edges: [{ from: boom, to: next }]",
    );
    let report = run(&engine, &wf, RunOptions::new()).await;
    assert_eq!(statuses(&report), "boom=failed next=succeeded");
    assert_eq!(
        node(&report, "boom").attempts,
        1,
        "a panic is a bug, not a transient failure"
    );
    assert_eq!(report.status, RunStatus::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_is_unharmed_by_a_panic() {
    let (engine, _) = engine();
    let boom = workflow(&engine, "nodes: [{ id: boom, kind: panic }]");
    let fine = workflow(&engine, "nodes: [{ id: fine, kind: delay, config: { ms: 1 } }]");
    for _ in 0..20 {
        let report = run(&engine, &boom, RunOptions::new()).await;
        assert_eq!(statuses(&report), "boom=failed");
        let report = run(&engine, &fine, RunOptions::new()).await;
        assert_eq!(statuses(&report), "fine=succeeded");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_never_returns_is_stopped_by_its_timeout() {
    let (engine, tally) = engine();
    let wf = workflow(
        &engine,
        "nodes:
  - { id: stuck, kind: hang, timeout_ms: 100 }
  - { id: stuck-retried, kind: hang, timeout_ms: 50, retry: { max_attempts: 3, backoff_ms: 10 } }
  - { id: next, kind: noop }
edges: [{ from: stuck, to: next }]",
    );
    let started = Instant::now();
    let report = run(
        &engine,
        &wf,
        RunOptions::new().strategy(strategy(StrategyKind::AllSettled)),
    )
    .await;
    let took = started.elapsed();
    assert!(took.as_millis() >= 100 && took.as_secs() < 5, "took {took:?}");
    assert_eq!(
        statuses(&report),
        "stuck=failed stuck-retried=failed next=upstream_failed"
    );
    assert_eq!(error(&report, "stuck"), "timed out after 100 ms (timeout_ms)");
    assert_eq!(error(&report, "stuck-retried"), "timed out after 50 ms (timeout_ms)");
    let retried = node(&report, "stuck-retried");
    assert_eq!(retried.attempts, 3);
    assert!(
        retried
            .attempts_detail
            .iter()
            .all(|a| a.error.as_deref() == Some("timed out after 50 ms (timeout_ms)"))
    );
    // Every attempt's future was dropped: none lives on.
    assert_eq!((tally.started(), tally.ended()), (4, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_never_returns_is_cancelled_when_a_sibling_fails_under_parallel() {
    let (engine, tally) = engine();
    let wf = workflow(
        &engine,
        "nodes:
  - { id: stuck, kind: hang }
  - { id: failing, kind: fail, config: { message: no }, retry: { max_attempts: 2, backoff_ms: 20 } }",
    );
    let report = run(&engine, &wf, RunOptions::new()).await;
    assert_eq!(statuses(&report), "stuck=cancelled failing=failed");
    assert_eq!(node(&report, "stuck").status, NodeStatus::Cancelled);
    assert_eq!((tally.started(), tally.ended()), (1, 1));
}

/// A kind whose `check` panics: validation reports it as that node's problem and
/// goes on; nothing crashes.
struct PanickyCheck;

#[async_trait::async_trait]
impl flow_engine::NodeKind for PanickyCheck {
    fn check(&self, _config: &serde_json::Value) -> Vec<flow_engine::core::ConfigProblem> {
        panic!("check exploded")
    }

    async fn run(&self, _call: flow_engine::NodeCall) -> Result<serde_json::Value, flow_engine::NodeError> {
        Ok(serde_json::Value::Null)
    }
}

#[test]
fn a_panic_in_a_kinds_check_is_a_validation_problem() {
    let engine = flow_engine::Engine::builder().register("panicky", PanickyCheck).build();
    let err = match engine.parse_yaml("name: x\nnodes:\n  - { id: a, kind: panicky }\n  - { id: b, kind: nope }") {
        Ok(_) => panic!("a panicking check must not validate"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("nodes[0].config: the `panicky` kind's check panicked: check exploded"),
        "{err}"
    );
    // Validation went on to the next node.
    assert!(err.contains("unknown node kind `nope`"), "{err}");
}
