//! Shared limits (`limits:` and a node's `limit:`): they hold across every run of
//! a workflow in one engine, per key when one is given, measured where it
//! matters: at a local server that records when each request arrives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::post;
use flow_engine::{Engine, EventKind, LimitSpec, RunOptions, RunStatus};
use serde_json::json;

use crate::support::{node, serve};

/// When each request arrived, by the tenant in its path; and the most requests
/// in flight at once (each takes `hold` to answer).
#[derive(Clone)]
struct Arrivals {
    t0: Instant,
    seen: Arc<Mutex<HashMap<String, Vec<Duration>>>>,
    in_flight: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    hold: Duration,
}

impl Arrivals {
    async fn start(hold: Duration) -> (Arrivals, String) {
        let arrivals = Arrivals {
            t0: Instant::now(),
            seen: Arc::default(),
            in_flight: Arc::default(),
            most: Arc::default(),
            hold,
        };
        let router = Router::new()
            .route("/hit/{tenant}", post(hit))
            .with_state(arrivals.clone());
        (arrivals, serve(router).await)
    }

    fn of(&self, tenant: &str) -> Vec<Duration> {
        let mut times = self.seen.lock().unwrap().get(tenant).cloned().unwrap_or_default();
        times.sort();
        times
    }
}

async fn hit(State(a): State<Arrivals>, Path(tenant): Path<String>) -> &'static str {
    let now = a.t0.elapsed();
    a.seen.lock().unwrap().entry(tenant).or_default().push(now);
    let n = a.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    a.most.fetch_max(n, Ordering::SeqCst);
    tokio::time::sleep(a.hold).await;
    a.in_flight.fetch_sub(1, Ordering::SeqCst);
    "ok"
}

/// `nodes` http nodes side by side, each taking `limit`, posting to `/hit/{tenant}`.
fn fan_out(base: &str, nodes: usize, limits: &str, limit: &str) -> String {
    let mut yaml = format!("name: limited\nlimits: {limits}\nnodes:\n");
    for i in 0..nodes {
        yaml.push_str(&format!(
            "  - {{ id: n{i}, kind: http, limit: {limit}, config: {{ url: \"{base}/hit/{{{{ input.tenant }}}}\", method: POST }} }}\n"
        ));
    }
    yaml
}

/// Checks a 10/s quota with no burst: at most 10 starts in any second (a small
/// allowance for the network: 11 starts span at least 950 ms), and about 100 ms
/// between starts on average.
#[track_caller]
fn holds_ten_per_second(times: &[Duration], expected: usize) {
    assert_eq!(times.len(), expected, "{times:?}");
    for window in times.windows(11) {
        let span = window[10] - window[0];
        assert!(
            span >= Duration::from_millis(950),
            "11 starts within {span:?}: {times:?}"
        );
    }
    let span = times[times.len() - 1] - times[0];
    let mean = span / (times.len() as u32 - 1);
    assert!(
        (Duration::from_millis(90)..Duration::from_millis(250)).contains(&mean),
        "mean gap {mean:?}: {times:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_holds_across_three_concurrent_runs() {
    let (arrivals, base) = Arrivals::start(Duration::ZERO).await;
    let engine = Engine::new();
    let workflow = engine
        .parse_yaml(&fan_out(&base, 5, "{ api: { per_second: 10, burst: 1 } }", "api"))
        .unwrap();
    let runs: Vec<_> = (0..3)
        .map(|_| {
            let options = RunOptions::new().input(json!({ "tenant": "all" }));
            engine.start(&workflow, options).unwrap()
        })
        .collect();
    for run in runs {
        let report = run.wait().await.unwrap();
        assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
        let waited: f64 = report.nodes.iter().filter_map(|(_, n)| n.limit_wait_ms).sum();
        assert!(report.nodes.iter().all(|(_, n)| n.limit_wait_ms.is_some()));
        assert!(waited > 0.0, "15 starts at 10/s: most wait");
    }
    holds_ten_per_second(&arrivals.of("all"), 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_limit_gives_each_tenant_its_own_quota() {
    let (arrivals, base) = Arrivals::start(Duration::ZERO).await;
    let engine = Engine::new();
    let workflow = engine
        .parse_yaml(&fan_out(
            &base,
            6,
            "{ api: { per_second: 10 } }",
            "{ name: api, key: \"{{ input.tenant }}\" }",
        ))
        .unwrap();
    let runs: Vec<_> = ["acme", "acme", "globex", "globex"]
        .into_iter()
        .map(|tenant| {
            let options = RunOptions::new().input(json!({ "tenant": tenant }));
            engine.start(&workflow, options).unwrap()
        })
        .collect();
    for run in runs {
        assert_eq!(run.wait().await.unwrap().status, RunStatus::Succeeded);
    }
    let (acme, globex) = (arrivals.of("acme"), arrivals.of("globex"));
    holds_ten_per_second(&acme, 12);
    holds_ten_per_second(&globex, 12);
    // Side by side, not one quota for both: in the first second of the run
    // both tenants start about 10 requests (one shared quota would allow 10).
    let mut both: Vec<Duration> = acme.iter().chain(&globex).copied().collect();
    both.sort();
    let first_second = both.iter().filter(|t| **t < both[0] + Duration::from_secs(1)).count();
    assert!(
        first_second >= 14,
        "{first_second} starts in the first second: {both:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_caps_attempts_across_runs() {
    let (arrivals, base) = Arrivals::start(Duration::from_millis(60)).await;
    let engine = Engine::new();
    let workflow = engine
        .parse_yaml(&fan_out(&base, 4, "{ pool: { max_concurrency: 2 } }", "pool"))
        .unwrap();
    let runs: Vec<_> = (0..3)
        .map(|_| {
            engine
                .start(&workflow, RunOptions::new().input(json!({ "tenant": "t" })))
                .unwrap()
        })
        .collect();
    for run in runs {
        assert_eq!(run.wait().await.unwrap().status, RunStatus::Succeeded);
    }
    assert_eq!(arrivals.of("t").len(), 12);
    assert_eq!(arrivals.most.load(Ordering::SeqCst), 2, "never more than 2 in flight");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_wide_limit_is_shared_by_two_workflows() {
    let (arrivals, base) = Arrivals::start(Duration::ZERO).await;
    let limit = LimitSpec {
        per_second: Some(10.0),
        burst: None,
        max_concurrency: None,
    };
    let engine = Engine::builder().limit("crm", limit).unwrap().build();
    let node = |id: &str| {
        format!("  - {{ id: {id}, kind: http, limit: crm, config: {{ url: \"{base}/hit/shared\", method: POST }} }}\n")
    };
    let first = engine
        .parse_yaml(&format!("name: first\nnodes:\n{}{}{}", node("a"), node("b"), node("c")))
        .unwrap();
    let second = engine
        .parse_yaml(&format!(
            "name: second\nnodes:\n{}{}{}",
            node("a"),
            node("b"),
            node("c")
        ))
        .unwrap();
    let one = engine.start(&first, RunOptions::new()).unwrap();
    let two = engine.start(&second, RunOptions::new()).unwrap();
    assert_eq!(one.wait().await.unwrap().status, RunStatus::Succeeded);
    assert_eq!(two.wait().await.unwrap().status, RunStatus::Succeeded);
    holds_ten_per_second(&arrivals.of("shared"), 6);
    // A bad engine-wide limit is refused with its place.
    let bad = LimitSpec {
        per_second: Some(-1.0),
        burst: None,
        max_concurrency: None,
    };
    let err = Engine::builder().limit("crm", bad).unwrap_err().to_string();
    assert!(err.contains("limits.crm.per_second: must be a number above 0"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_wait_is_in_the_events_and_a_cancelled_wait_ends_at_once() {
    let (_, base) = Arrivals::start(Duration::ZERO).await;
    let engine = Engine::new();
    // One start every 10 s: the second node waits, and the cancel must not.
    let workflow = engine
        .parse_yaml(&fan_out(&base, 2, "{ slow: { per_second: 0.1 } }", "slow"))
        .unwrap();
    let mut options = RunOptions::new().input(json!({ "tenant": "x" }));
    let mut events = options.subscribe();
    let run = engine.start(&workflow, options).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cancelled_at = Instant::now();
    run.cancel();
    let report = run.wait().await.unwrap();
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(2),
        "{:?}",
        cancelled_at.elapsed()
    );
    assert_eq!(report.status, RunStatus::Cancelled);
    let statuses: Vec<_> = ["n0", "n1"].iter().map(|id| node(&report, id).status).collect();
    assert!(statuses.contains(&flow_engine::NodeStatus::Succeeded), "{statuses:?}");
    assert!(statuses.contains(&flow_engine::NodeStatus::Cancelled), "{statuses:?}");
    let mut waits = Vec::new();
    while let Some(event) = events.recv().await {
        if let EventKind::LimitWaited { node, limit, .. } = &event.kind {
            waits.push((node.to_string(), limit.to_string()));
        }
    }
    assert_eq!(waits.len(), 1, "only the node that got the limit: {waits:?}");
    assert_eq!(waits[0].1, "slow");
}
