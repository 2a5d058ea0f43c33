//! The run's events and tracing spans, through the engine's public API.

mod spans;

use std::time::Duration;

use flow_engine::{Engine, Event, EventKind, Report, RunOptions, RunStatus};

/// One event as a short line, so an expected sequence reads one event per line.
fn line(event: &Event) -> String {
    match &event.kind {
        EventKind::RunStarted { strategy, nodes, .. } => format!("run started ({strategy}, {nodes} nodes)"),
        EventKind::NodeReady { node } => format!("ready {node}"),
        EventKind::NodeStarted { node, attempt } => format!("started {node}#{attempt}"),
        EventKind::AttemptFailed {
            node,
            attempt,
            retry_in_ms,
            error,
            ..
        } => format!("attempt failed {node}#{attempt} ({error}), retry in {retry_in_ms} ms"),
        EventKind::NodeSettled {
            node, status, attempts, ..
        } => format!("settled {node} {status} after {attempts}"),
        EventKind::RunFinished { status, .. } => format!("run finished {status}"),
        other => format!("{other:?}"),
    }
}

/// Runs `yaml` with a subscriber and returns every event and the report.
async fn run(yaml: &str) -> (Vec<Event>, Report) {
    let engine = Engine::new();
    let workflow = engine.parse_yaml(yaml).expect("a valid workflow");
    let mut options = RunOptions::new();
    let mut rx = options.subscribe();
    let handle = engine.start(&workflow, options).expect("the run starts");
    let run_id = handle.run_id().to_owned();
    let report = handle.wait().await.expect("a report");
    let mut events = Vec::new();
    while let Some(event) = rx.recv().await {
        events.push(event);
    }
    check_invariants(&events, &run_id);
    (events, report)
}

/// What holds for every run: one run id, time never goes back, started first,
/// finished last, one settlement per node.
fn check_invariants(events: &[Event], run_id: &str) {
    assert!(events.iter().all(|e| &*e.run_id == run_id), "one run id");
    // A UUIDv7: 36 characters, version 7.
    assert_eq!(run_id.len(), 36, "{run_id}");
    assert_eq!(run_id.as_bytes()[14], b'7', "{run_id}");
    assert!(
        events.windows(2).all(|w| w[0].at_ms <= w[1].at_ms),
        "timestamps are monotonic: {events:?}"
    );
    assert!(matches!(
        events.first().map(|e| &e.kind),
        Some(EventKind::RunStarted { .. })
    ));
    assert!(matches!(
        events.last().map(|e| &e.kind),
        Some(EventKind::RunFinished { .. })
    ));
    let nodes = match &events[0].kind {
        EventKind::RunStarted { nodes, .. } => *nodes,
        _ => unreachable!(),
    };
    let settled = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::NodeSettled { .. }))
        .count();
    assert_eq!(settled, nodes, "exactly one NodeSettled per node");
}

fn lines(events: &[Event]) -> Vec<String> {
    events.iter().map(line).collect()
}

fn position(events: &[Event], wanted: &str) -> usize {
    let lines = lines(events);
    lines
        .iter()
        .position(|l| l == wanted)
        .unwrap_or_else(|| panic!("no `{wanted}` in {lines:#?}"))
}

const DIAMOND_NOOP: &str = r#"
name: diamond
nodes:
  - { id: a, kind: noop }
  - { id: b, kind: noop }
  - { id: c, kind: noop }
  - { id: d, kind: noop }
edges:
  - { from: a, to: b }
  - { from: a, to: c }
  - { from: b, to: d }
  - { from: c, to: d }
"#;

#[tokio::test]
async fn diamond_of_inline_nodes_has_an_exact_order() {
    let (events, report) = run(DIAMOND_NOOP).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(
        lines(&events),
        [
            "run started (parallel, 4 nodes)",
            "ready a",
            "started a#1",
            "settled a succeeded after 1",
            "ready b",
            "ready c",
            "started b#1",
            "settled b succeeded after 1",
            "started c#1",
            "settled c succeeded after 1",
            "ready d",
            "started d#1",
            "settled d succeeded after 1",
            "run finished succeeded",
        ]
    );
}

#[tokio::test]
async fn diamond_branches_start_side_by_side() {
    let (events, report) = run(r#"
name: diamond
nodes:
  - { id: a, kind: delay, config: { ms: 5 } }
  - { id: b, kind: delay, config: { ms: 30 } }
  - { id: c, kind: delay, config: { ms: 30 } }
  - { id: d, kind: noop }
edges:
  - { from: a, to: b }
  - { from: a, to: c }
  - { from: b, to: d }
  - { from: c, to: d }
"#)
    .await;
    assert_eq!(report.status, RunStatus::Succeeded);
    let at = |l: &str| position(&events, l);
    // Defined by the graph and the strategy: both branches start before either ends.
    assert!(at("settled a succeeded after 1") < at("ready b"));
    assert!(at("ready b") < at("ready c"));
    assert!(at("started b#1") < at("settled b succeeded after 1"));
    assert!(at("started c#1") < at("settled b succeeded after 1"));
    assert!(at("started b#1") < at("settled c succeeded after 1"));
    assert!(at("settled b succeeded after 1") < at("ready d"));
    assert!(at("settled c succeeded after 1") < at("ready d"));
    assert_eq!(
        lines(&events[at("ready d")..]),
        [
            "ready d",
            "started d#1",
            "settled d succeeded after 1",
            "run finished succeeded"
        ]
    );
    // The delay really elapsed between a branch's start and its end.
    let started = events[at("started b#1")].at_ms;
    let settled = events[at("settled b succeeded after 1")].at_ms;
    assert!(settled - started >= 29.0, "b took {} ms", settled - started);
}

#[tokio::test]
async fn a_retried_node_reports_each_attempt_and_its_wait() {
    let (events, report) = run(r#"
name: retried
strategy: { kind: all-settled }
nodes:
  - id: flaky
    kind: fail
    config: { message: "service unavailable" }
    retry: { max_attempts: 3, backoff_ms: 10, factor: 2.0 }
  - { id: after, kind: noop }
  - { id: other, kind: noop }
edges:
  - { from: flaky, to: after }
"#)
    .await;
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(
        lines(&events),
        [
            "run started (all-settled, 3 nodes)",
            "ready flaky",
            "ready other",
            "started flaky#1",
            "attempt failed flaky#1 (service unavailable), retry in 10 ms",
            "started other#1",
            "settled other succeeded after 1",
            "started flaky#2",
            "attempt failed flaky#2 (service unavailable), retry in 20 ms",
            "started flaky#3",
            "settled flaky failed after 3",
            "settled after upstream_failed after 0",
            "run finished failed",
        ]
    );
    let settled = events.iter().find_map(|e| match &e.kind {
        EventKind::NodeSettled { node, error, .. } if &**node == "flaky" => Some(error.clone()),
        _ => None,
    });
    assert_eq!(settled, Some(Some("service unavailable".to_owned())));
    // The waits really happened: attempt 3 starts at least 10 + 20 ms after attempt 1.
    let first = events[position(&events, "started flaky#1")].at_ms;
    let third = events[position(&events, "started flaky#3")].at_ms;
    assert!(third - first >= 29.0, "{} ms between attempts 1 and 3", third - first);
}

#[tokio::test]
async fn a_cancelled_run_settles_running_and_waiting_nodes_as_cancelled() {
    let engine = Engine::new();
    let workflow = engine
        .parse_yaml(
            r#"
name: long
nodes:
  - { id: slow, kind: delay, config: { ms: 60000 } }
  - { id: next, kind: noop }
  - { id: quick, kind: noop }
edges:
  - { from: slow, to: next }
"#,
        )
        .expect("a valid workflow");
    let mut options = RunOptions::new();
    let mut rx = options.subscribe();
    let handle = engine.start(&workflow, options).expect("the run starts");
    let run_id = handle.run_id().to_owned();
    let mut events = Vec::new();
    // Cancel once `slow` is running, so the order below is fully defined.
    while let Some(event) = rx.recv().await {
        let started = matches!(&event.kind, EventKind::NodeStarted { node, .. } if &**node == "slow");
        events.push(event);
        if started {
            break;
        }
    }
    handle.cancel();
    let report = tokio::time::timeout(Duration::from_secs(20), handle.wait())
        .await
        .expect("a cancelled run ends at once")
        .expect("a report");
    while let Some(event) = rx.recv().await {
        events.push(event);
    }
    check_invariants(&events, &run_id);
    assert_eq!(report.status, RunStatus::Cancelled);
    assert_eq!(
        lines(&events),
        [
            "run started (parallel, 3 nodes)",
            "ready slow",
            "ready quick",
            "started slow#1",
            "started quick#1",
            "settled quick succeeded after 1",
            "settled next cancelled after 0",
            "settled slow cancelled after 1",
            "run finished cancelled",
        ]
    );
}

#[tokio::test]
async fn events_serialise_as_flat_tagged_json() {
    let (events, _) = run("name: one\nnodes: [{ id: a, kind: noop }]\n").await;
    let json: Vec<serde_json::Value> = events
        .iter()
        .map(|e| serde_json::to_value(e).expect("serialisable"))
        .collect();
    assert_eq!(json[0]["event"], "run_started");
    assert_eq!(json[0]["workflow"], "one");
    assert_eq!(json[2]["event"], "node_started");
    assert_eq!(json[2]["node"], "a");
    assert_eq!(json[2]["attempt"], 1);
    assert_eq!(json[3]["event"], "node_settled");
    assert_eq!(json[3]["status"], "succeeded");
    assert_eq!(json[4]["event"], "run_finished");
    assert!(json.iter().all(|j| j["run_id"].is_string() && j["at_ms"].is_f64()));
}

#[tokio::test]
async fn a_node_whose_config_cannot_render_still_starts_then_fails() {
    let (events, report) = run(r#"
name: bad-template
nodes:
  - { id: a, kind: delay, config: { ms: "{{ input.missing.deeper }}" } }
"#)
    .await;
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(
        lines(&events),
        [
            "run started (parallel, 1 nodes)",
            "ready a",
            "started a#1",
            "settled a failed after 1",
            "run finished failed",
        ]
    );
}
