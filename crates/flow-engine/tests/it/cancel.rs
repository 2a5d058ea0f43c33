//! Cancelling a run from outside: `RunHandle::cancel` and a run's cancel token.

use std::time::Instant;

use flow_engine::{NodeStatus, RunOptions, RunStatus};
use tokio_util::sync::CancellationToken as CancelToken;

use crate::support::{engine, ms, node, statuses, workflow};

const LONG: &str = "nodes:
  - { id: quick, kind: probe }
  - { id: long, kind: delay, config: { ms: 10000 } }
  - { id: long-probe, kind: probe, config: { ms: 10000 } }
  - { id: retrying, kind: fail, retry: { max_attempts: 5, backoff_ms: 10000 } }
  - { id: after, kind: noop }
edges: [{ from: long, to: after }]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_through_the_handle_stops_running_nodes_at_once() {
    let (engine, probe) = engine();
    let wf = workflow(&engine, LONG);
    let handle = match engine.start(
        &wf,
        RunOptions::new().strategy(crate::support::strategy(
            flow_engine::strategy::StrategyKind::AllSettled,
        )),
    ) {
        Ok(h) => h,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(handle.run_id().len(), 36, "a UUID");
    tokio::time::sleep(ms(150)).await;
    let cancelled_at = Instant::now();
    handle.cancel();
    let report = match handle.wait().await {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert!(
        cancelled_at.elapsed().as_millis() < 2000,
        "took {:?}",
        cancelled_at.elapsed()
    );
    assert_eq!(report.status, RunStatus::Cancelled);
    assert_eq!(
        statuses(&report),
        "quick=succeeded long=cancelled long-probe=cancelled retrying=cancelled after=cancelled"
    );
    for id in ["long", "long-probe"] {
        let n = node(&report, id);
        assert!(
            n.started_ms.is_some() && n.finished_ms.is_some_and(|f| f < 3000.0),
            "{id}: {n:?}"
        );
    }
    assert_eq!(
        node(&report, "retrying").attempts,
        1,
        "cancelled while waiting to retry"
    );
    let after = node(&report, "after");
    assert_eq!((after.started_ms, after.finished_ms, after.attempts), (None, None, 0));
    assert!(
        probe.snapshot().attempts.iter().all(|(_, _, end)| end.is_some()),
        "the probe was dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_through_a_token() {
    let (engine, _) = engine();
    let wf = workflow(&engine, LONG);
    let token = CancelToken::new();
    let canceller = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(ms(100)).await;
        canceller.cancel();
    });
    let started = Instant::now();
    let report = engine.run(&wf, RunOptions::new().cancel_token(token)).await;
    assert!(started.elapsed().as_millis() < 3000);
    let report = report.map_err(|e| e.to_string());
    assert_eq!(report.as_ref().map(|r| r.status), Ok(RunStatus::Cancelled));
}

#[tokio::test]
async fn a_token_cancelled_before_the_run_runs_nothing() {
    let (engine, probe) = engine();
    let wf = workflow(&engine, LONG);
    let token = CancelToken::new();
    token.cancel();
    let report = match engine.run(&wf, RunOptions::new().cancel_token(token)).await {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(report.status, RunStatus::Cancelled);
    assert!(
        report.nodes.iter().all(|(_, n)| n.status == NodeStatus::Cancelled),
        "{}",
        statuses(&report)
    );
    assert_eq!(probe.snapshot().attempts.len(), 0);
}

#[tokio::test]
async fn runs_are_independent() {
    let (engine, probe) = engine();
    let wf = workflow(&engine, "nodes: [{ id: a, kind: probe, config: { ms: 20 } }]");
    let (one, two) = tokio::join!(engine.run(&wf, RunOptions::new()), engine.run(&wf, RunOptions::new()));
    let (one, two) = match (one, two) {
        (Ok(a), Ok(b)) => (a, b),
        other => panic!("{other:?}"),
    };
    assert_ne!(one.run_id, two.run_id);
    assert_eq!(probe.runs("a"), 2, "once per run");
}
