//! Cancelling runs through the API: every running node stops at once (its future is
//! dropped), the report says `cancelled` for every node that did not finish, and
//! no task of the run is left behind.

use std::time::{Duration, Instant};

use flow_engine::strategy::StrategyKind;
use flow_engine::{NodeStatus, RunOptions, RunStatus};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::{alive_tasks, engine, node, run, settle_tasks, statuses, strategy, workflow};

/// Three nodes that never return, a long sleep, an HTTP request to a server that
/// never answers (`{url}`), a node waiting out a retry backoff, and one node that
/// can only start after the sleep.
fn stuck_workflow(url: &str) -> String {
    format!(
        "nodes:
  - {{ id: quick, kind: noop }}
  - {{ id: hang-1, kind: hang }}
  - {{ id: hang-2, kind: hang }}
  - {{ id: hang-3, kind: hang }}
  - {{ id: sleeping, kind: delay, config: {{ ms: 60000 }} }}
  - {{ id: request, kind: http, config: {{ url: \"{url}\", timeout_ms: 60000 }} }}
  - {{ id: backing-off, kind: fail, retry: {{ max_attempts: 3, backoff_ms: 60000, max_backoff_ms: 60000 }} }}
  - {{ id: after, kind: noop }}
edges: [{{ from: sleeping, to: after }}]"
    )
}

/// A server on 127.0.0.1 that accepts one connection and never answers; the
/// returned task ends when the client closes the connection (or after 30 s).
async fn silent_server() -> (String, tokio::task::JoinHandle<Option<Instant>>) {
    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("bind: {e}"),
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let task = tokio::spawn(async move {
        let wait = async {
            let (mut stream, _) = listener.accept().await.ok()?;
            let mut buf = [0u8; 4096];
            // Read the request, then wait for the client to hang up (read of 0 or an error).
            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            Some(Instant::now())
        };
        tokio::time::timeout(Duration::from_secs(30), wait).await.ok().flatten()
    });
    (format!("http://127.0.0.1:{port}/never"), task)
}

/// Starts the stuck workflow, cancels it once everything is in flight, and returns
/// how long the running nodes took to stop.
async fn cancel_once() -> Duration {
    let baseline = alive_tasks();
    let (url, server) = silent_server().await;
    let server_tasks = alive_tasks();
    let (engine, tally) = engine();
    let wf = workflow(&engine, &stuck_workflow(&url));
    let handle = match engine.start(&wf, RunOptions::new().strategy(strategy(StrategyKind::AllSettled))) {
        Ok(h) => h,
        Err(e) => panic!("{e}"),
    };
    tally.wait_started(3).await;
    // Give the request time to connect and the failing node time to fail once.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let cancelled_at = Instant::now();
    handle.cancel();
    let report = match handle.wait().await {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let reported_at = cancelled_at.elapsed();
    let stopped = tally
        .last_end()
        .map_or(Duration::MAX, |t| t.duration_since(cancelled_at));
    assert!(
        reported_at < Duration::from_secs(1),
        "the report came {reported_at:?} after cancel()"
    );
    assert_eq!(report.status, RunStatus::Cancelled);
    assert_eq!(
        statuses(&report),
        "quick=succeeded hang-1=cancelled hang-2=cancelled hang-3=cancelled sleeping=cancelled \
         request=cancelled backing-off=cancelled after=cancelled"
    );
    let after = node(&report, "after");
    assert_eq!((after.attempts, after.started_ms), (0, None), "never started");
    assert_eq!(node(&report, "backing-off").attempts, 1, "cancelled during its backoff");
    // Every attempt's future was dropped, and no task of the run is left.
    assert_eq!((tally.started(), tally.ended()), (3, 3));
    settle_tasks(server_tasks).await;
    // The HTTP request was dropped too: the server sees its connection closed.
    let closed = match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(Some(at))) => at.duration_since(cancelled_at),
        other => panic!("the server never saw the connection close: {other:?}"),
    };
    assert!(
        closed < Duration::from_secs(1),
        "connection closed {closed:?} after cancel()"
    );
    settle_tasks(baseline).await;
    stopped
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_every_running_node_at_once_and_leaves_no_task() {
    let mut stops: Vec<Duration> = Vec::new();
    for _ in 0..15 {
        stops.push(cancel_once().await);
    }
    stops.sort();
    let (median, worst) = (stops[stops.len() / 2], stops[stops.len() - 1]);
    eprintln!("cancel(): running nodes stopped after {median:?} (median of 15), {worst:?} at worst");
    assert!(
        worst < Duration::from_secs(1),
        "a node stopped {worst:?} after cancel()"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_token_stops_a_run_awaited_in_place() {
    let (engine, tally) = engine();
    let wf = workflow(
        &engine,
        "nodes:
  - { id: hang, kind: hang }
  - { id: next, kind: noop }
edges: [{ from: hang, to: next }]",
    );
    let token = CancellationToken::new();
    let canceller = token.clone();
    let watcher = tally.clone();
    tokio::spawn(async move {
        watcher.wait_started(1).await;
        canceller.cancel();
    });
    let report = run(&engine, &wf, RunOptions::new().cancel_token(token)).await;
    assert_eq!(report.status, RunStatus::Cancelled);
    assert_eq!(statuses(&report), "hang=cancelled next=cancelled");
    assert_eq!((tally.started(), tally.ended()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_cancels_many_runs_and_every_task_ends() {
    let baseline = alive_tasks();
    let (engine, tally) = engine();
    let wf = workflow(
        &engine,
        "nodes:
  - { id: hang-a, kind: hang }
  - { id: hang-b, kind: hang }
  - { id: sleeping, kind: delay, config: { ms: 60000 } }
  - { id: after, kind: noop }
edges: [{ from: hang-a, to: after }]",
    );
    let token = CancellationToken::new();
    let runs = 300;
    let handles: Vec<_> = (0..runs)
        .map(
            |_| match engine.start(&wf, RunOptions::new().cancel_token(token.clone())) {
                Ok(h) => h,
                Err(e) => panic!("{e}"),
            },
        )
        .collect();
    tally.wait_started(2 * runs).await;
    let cancelled_at = Instant::now();
    token.cancel();
    for handle in handles {
        let report = match handle.wait().await {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(report.status, RunStatus::Cancelled);
        assert!(report.nodes.iter().all(|(_, n)| n.status == NodeStatus::Cancelled));
    }
    let took = cancelled_at.elapsed();
    eprintln!(
        "one token: {runs} runs ({} running nodes) cancelled and reported in {took:?}",
        3 * runs
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(tally.ended(), 2 * runs);
    settle_tasks(baseline).await;
}
