//! The four strategies applied to a workflow. Timing assertions compare the
//! report's own intervals (overlap, order) and use wide margins for wall time.

use std::time::Instant;

use flow_engine::strategy::{StrategyConfig, StrategyKind};
use flow_engine::{NodeStatus, RunOptions, RunStatus};

use crate::support::{capped, configured, interval, node, run_with, statuses, strategy};

/// `n` independent probes of `ms` each, named `n0`, `n1`, ...
fn fanout(n: usize, ms: u64) -> String {
    let nodes: Vec<String> = (0..n)
        .map(|i| format!("  - {{ id: n{i}, kind: probe, config: {{ ms: {ms} }} }}"))
        .collect();
    format!("nodes:\n{}", nodes.join("\n"))
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("n{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_branches_overlap() {
    let body = "strategy: { kind: parallel }
nodes:
  - { id: start, kind: noop }
  - { id: b1, kind: delay, config: { ms: 200 } }
  - { id: b2, kind: delay, config: { ms: 200 } }
  - { id: b3, kind: delay, config: { ms: 200 } }
  - { id: b4, kind: delay, config: { ms: 200 } }
  - { id: b5, kind: delay, config: { ms: 200 } }
  - { id: join, kind: noop }
edges:
  - { from: start, to: b1 }
  - { from: start, to: b2 }
  - { from: start, to: b3 }
  - { from: start, to: b4 }
  - { from: start, to: b5 }
  - { from: b1, to: join }
  - { from: b2, to: join }
  - { from: b3, to: join }
  - { from: b4, to: join }
  - { from: b5, to: join }";
    let (report, _) = run_with(body, RunOptions::new()).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(report.strategy, "parallel");
    let branches = ["b1", "b2", "b3", "b4", "b5"].map(|id| interval(&report, id));
    let last_start = branches.iter().map(|b| b.0).fold(f64::MIN, f64::max);
    let first_end = branches.iter().map(|b| b.1).fold(f64::MAX, f64::min);
    assert!(
        last_start < first_end,
        "every branch started before any finished: {branches:?}"
    );
    assert!(
        report.duration_ms < 700.0,
        "5 parallel 200 ms delays took {} ms",
        report.duration_ms
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_fails_fast_and_cancels_a_long_sibling_at_once() {
    let body = "strategy: { kind: parallel }
nodes:
  - { id: long, kind: delay, config: { ms: 10000 } }
  - { id: after-long, kind: noop }
  - { id: broken, kind: probe, config: { ms: 50, fail: true } }
  - { id: unrelated, kind: probe, config: { ms: 5000 } }
edges: [{ from: long, to: after-long }]";
    let started = Instant::now();
    let (report, _) = run_with(body, RunOptions::new()).await;
    assert!(started.elapsed().as_secs_f64() < 3.0, "took {:?}", started.elapsed());
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(
        statuses(&report),
        "long=cancelled after-long=cancelled broken=failed unrelated=cancelled"
    );
    let long = node(&report, "long");
    assert!(
        long.started_ms.is_some() && long.finished_ms.is_some_and(|f| f < 3000.0),
        "{long:?}"
    );
    assert_eq!(node(&report, "after-long").started_ms, None, "never started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_counts_a_failure_only_after_its_retries() {
    let body = "nodes:
  - { id: sibling, kind: probe, config: { ms: 150 } }
  - { id: flaky, kind: probe, config: { fail_attempts: 2 }, retry: { max_attempts: 3, backoff_ms: 10 } }";
    let (report, _) = run_with(body, RunOptions::new()).await;
    assert_eq!(statuses(&report), "sibling=succeeded flaky=succeeded");
    assert_eq!(node(&report, "flaky").attempts, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_settled_finishes_independent_branches_after_a_failure() {
    let body = "strategy: { kind: all-settled }
nodes:
  - { id: broken, kind: fail }
  - { id: after-broken, kind: probe }
  - { id: slow, kind: probe, config: { ms: 300 } }
  - { id: after-slow, kind: probe, config: { ms: 50 } }
  - { id: report, kind: probe, trigger: all_done }
edges:
  - { from: broken, to: after-broken }
  - { from: slow, to: after-slow }
  - { from: after-broken, to: report }
  - { from: after-slow, to: report }";
    let (report, probe) = run_with(body, RunOptions::new()).await;
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(
        statuses(&report),
        "broken=failed after-broken=upstream_failed slow=succeeded after-slow=succeeded report=succeeded"
    );
    assert_eq!(probe.runs("after-broken"), 0);
    let (_, broken_end) = interval(&report, "broken");
    let (after_slow_start, _) = interval(&report, "after-slow");
    assert!(after_slow_start > broken_end, "ran after the failure");
}

#[tokio::test]
async fn sequential_never_overlaps_and_breaks_ties_by_file_order() {
    let body = "strategy: { kind: sequential }
nodes:
  - { id: e, kind: probe, config: { ms: 5 } }
  - { id: c, kind: probe, config: { ms: 20 } }
  - { id: a, kind: probe }
  - { id: d, kind: probe, config: { ms: 1 } }
  - { id: b, kind: probe, config: { ms: 10 } }
  - { id: f, kind: probe, config: { ms: 3 } }
edges: [{ from: a, to: b }, { from: d, to: e }]";
    let (report, probe) = run_with(body, RunOptions::new()).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(probe.peak(), 1);
    let mut order: Vec<(&str, (f64, f64))> = report.nodes.iter().map(|(id, _)| (id, interval(&report, id))).collect();
    order.sort_by(|x, y| x.1.0.total_cmp(&y.1.0));
    for pair in order.windows(2) {
        assert!(
            pair[0].1.1 <= pair[1].1.0,
            "{} and {} overlap: {order:?}",
            pair[0].0,
            pair[1].0
        );
    }
    let names: Vec<&str> = order.iter().map(|(id, _)| *id).collect();
    // Topological order, ties by file order: e waits for d, b for a.
    assert_eq!(names, ["c", "a", "d", "e", "b", "f"]);
}

#[tokio::test]
async fn sequential_is_deterministic() {
    let body = "strategy: { kind: sequential }
nodes:
  - { id: z, kind: probe, config: { ms: 2 } }
  - { id: y, kind: probe }
  - { id: x, kind: probe, config: { ms: 1 } }
  - { id: w, kind: probe }
edges: [{ from: x, to: w }, { from: z, to: w }]";
    let mut orders = Vec::new();
    for _ in 0..5 {
        let (_, probe) = run_with(body, RunOptions::new()).await;
        let log = probe.snapshot();
        orders.push(
            log.attempts
                .iter()
                .map(|(id, _, _)| id.clone())
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    assert!(orders.iter().all(|o| o == "z,y,x,w"), "{orders:?}");
}

#[tokio::test]
async fn sequential_stops_at_the_first_failure() {
    let body = "strategy: { kind: sequential }
nodes:
  - { id: a, kind: probe }
  - { id: b, kind: probe, config: { fail: true } }
  - { id: c, kind: probe }
  - { id: d, kind: probe }
edges: [{ from: a, to: d }]";
    let (report, probe) = run_with(body, RunOptions::new()).await;
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(statuses(&report), "a=succeeded b=failed c=cancelled d=cancelled");
    assert_eq!((probe.runs("c"), probe.runs("d")), (0, 0));
    assert_eq!(node(&report, "c").started_ms, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_spaces_the_starts() {
    let limited = configured(StrategyConfig {
        per_second: Some(20.0),
        burst: Some(1),
        ..StrategyConfig::new(StrategyKind::RateLimited)
    });
    let started = Instant::now();
    let (report, probe) = run_with(&fanout(10, 0), RunOptions::new().strategy(limited)).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(report.strategy, "rate-limited");
    assert!(
        started.elapsed().as_millis() >= 400,
        "10 starts at 20/s took {:?}",
        started.elapsed()
    );
    let first = probe.snapshot().attempts[0].1;
    let mut starts: Vec<f64> = probe
        .snapshot()
        .attempts
        .iter()
        .map(|(_, at, _)| at.duration_since(first).as_secs_f64() * 1000.0)
        .collect();
    starts.sort_by(f64::total_cmp);
    for (k, at) in starts.iter().enumerate() {
        // Start k may come no sooner than k * 50 ms after the first (20 ms of slack).
        assert!(*at >= k as f64 * 50.0 - 20.0, "start {k} at {at} ms: {starts:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_admits_a_burst_at_once() {
    let limited = configured(StrategyConfig {
        per_second: Some(2.0),
        burst: Some(5),
        ..StrategyConfig::new(StrategyKind::RateLimited)
    });
    let (report, _) = run_with(&fanout(5, 0), RunOptions::new().strategy(limited)).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert!(
        report.duration_ms < 400.0,
        "a burst of 5 needs no wait: {} ms",
        report.duration_ms
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_settles_failures_unless_fail_fast() {
    let body = "nodes:
  - { id: broken, kind: fail }
  - { id: a, kind: probe, config: { ms: 20 } }
  - { id: b, kind: probe, config: { ms: 20 } }
  - { id: c, kind: probe, config: { ms: 20 } }";
    let settle = configured(StrategyConfig {
        per_second: Some(50.0),
        ..StrategyConfig::new(StrategyKind::RateLimited)
    });
    let (report, _) = run_with(body, RunOptions::new().strategy(settle)).await;
    assert_eq!(statuses(&report), "broken=failed a=succeeded b=succeeded c=succeeded");
    assert_eq!(report.status, RunStatus::Failed);

    let fail_fast = configured(StrategyConfig {
        per_second: Some(10.0),
        fail_fast: Some(true),
        ..StrategyConfig::new(StrategyKind::RateLimited)
    });
    let (report, probe) = run_with(body, RunOptions::new().strategy(fail_fast)).await;
    assert_eq!(statuses(&report), "broken=failed a=cancelled b=cancelled c=cancelled");
    assert_eq!(probe.snapshot().attempts.len(), 0, "nothing started after the failure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_is_never_exceeded() {
    let cases = [
        capped(StrategyKind::Parallel, 3),
        capped(StrategyKind::AllSettled, 2),
        configured(StrategyConfig {
            max_concurrency: Some(4),
            per_second: Some(1000.0),
            burst: Some(100),
            ..StrategyConfig::new(StrategyKind::RateLimited)
        }),
        strategy(StrategyKind::Sequential),
    ];
    for (limited, cap) in cases.into_iter().zip([3, 2, 4, 1]) {
        let name = limited.name().to_owned();
        let (report, probe) = run_with(&fanout(16, 15), RunOptions::new().strategy(limited)).await;
        assert_eq!(report.status, RunStatus::Succeeded, "{name}");
        assert!(probe.peak() <= cap, "{name}: {} in flight, cap {cap}", probe.peak());
        assert_eq!(probe.peak(), cap, "{name}: the cap is reached with 16 branches");
    }
}

#[tokio::test]
async fn max_concurrency_from_the_file_and_file_order_under_a_cap() {
    let body = format!("strategy: {{ kind: parallel, max_concurrency: 1 }}\n{}", fanout(6, 2));
    let (report, probe) = run_with(&body, RunOptions::new()).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(probe.peak(), 1);
    let order: Vec<String> = probe.snapshot().attempts.into_iter().map(|(id, _, _)| id).collect();
    assert_eq!(order, ids(6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_option_strategy_replaces_the_file_one() {
    let body = format!("strategy: {{ kind: sequential }}\n{}", fanout(4, 100));
    let (report, probe) = run_with(&body, RunOptions::new().strategy(strategy(StrategyKind::Parallel))).await;
    assert_eq!(report.strategy, "parallel");
    assert_eq!(probe.peak(), 4);

    let (engine, _) = crate::support::engine();
    let engine = flow_engine::Engine::builder()
        .registry(engine.registry().clone())
        .strategy(strategy(StrategyKind::AllSettled))
        .build();
    let wf = crate::support::workflow(&engine, &body);
    let report = engine.run(&wf, RunOptions::new()).await.map_err(|e| e.to_string());
    assert_eq!(report.map(|r| r.strategy), Ok("all-settled".to_owned()));
}

#[tokio::test]
async fn the_default_strategy_is_parallel() {
    let (report, _) = run_with(&fanout(2, 0), RunOptions::new()).await;
    assert_eq!(report.strategy, "parallel");
    let statuses_ok = report.nodes.iter().all(|(_, n)| n.status == NodeStatus::Succeeded);
    assert!(statuses_ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_strategy_starts_ready_nodes_in_file_order() {
    // No cap, so the ready queue is first-in first-out: a node the quota turns
    // away must stay first in line, not go to the back.
    let limited = configured(StrategyConfig {
        per_second: Some(200.0),
        ..StrategyConfig::new(StrategyKind::RateLimited)
    });
    let (report, _) = run_with(&fanout(6, 1), RunOptions::new().strategy(limited)).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    let mut started: Vec<(f64, String)> = ids(6).into_iter().map(|id| (interval(&report, &id).0, id)).collect();
    started.sort_by(|a, b| a.0.total_cmp(&b.0));
    let order: Vec<String> = started.into_iter().map(|(_, id)| id).collect();
    assert_eq!(order, ids(6));
}
