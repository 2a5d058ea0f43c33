//! The report and the events of a run.

use flow_engine::{EventKind, NodeStatus, RunOptions, RunStatus};
use serde_json::{Value, json};

use crate::support::run_with;

const BODY: &str = "strategy: { kind: all-settled }
nodes:
  - { id: a, kind: transform, config: { output: { n: '{{ input.n }}' } } }
  - { id: b, kind: fail, config: { message: nope } }
  - { id: c, kind: noop }
  - { id: d, kind: noop }
edges: [{ from: b, to: c }, { from: a, to: d, when: 'false' }]";

#[tokio::test]
async fn the_report_has_the_documented_shape() {
    let (report, _) = run_with(BODY, RunOptions::new().input(json!({ "n": 7 }))).await;
    let value = match serde_json::to_value(&report) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(value["workflow"], "t");
    assert_eq!(value["strategy"], "all-settled");
    assert_eq!(value["status"], "failed");
    assert!(value["duration_ms"].as_f64().is_some_and(|d| d >= 0.0));
    let nodes = value["nodes"]
        .as_object()
        .map(|m| m.keys().cloned().collect::<Vec<_>>());
    assert_eq!(
        nodes,
        Some(vec!["a".into(), "b".into(), "c".into(), "d".into()]),
        "file order"
    );
    for (id, n) in value["nodes"].as_object().into_iter().flatten() {
        for key in ["status", "attempts", "started_ms", "finished_ms", "output", "error"] {
            assert!(n.get(key).is_some(), "nodes.{id}.{key} missing: {n}");
        }
    }
    let a = &value["nodes"]["a"];
    assert_eq!(
        (a["status"].clone(), a["attempts"].clone(), a["output"].clone()),
        (json!("succeeded"), json!(1), json!({ "n": 7 }))
    );
    assert_eq!(a["error"], Value::Null);
    assert!(a["started_ms"].as_f64().is_some() && a["finished_ms"].as_f64() >= a["started_ms"].as_f64());
    let b = &value["nodes"]["b"];
    assert_eq!(
        (b["status"].clone(), b["error"].clone()),
        (json!("failed"), json!("nope"))
    );
    for (id, status) in [("c", "upstream_failed"), ("d", "skipped")] {
        let n = &value["nodes"][id];
        assert_eq!(n["status"], status);
        assert_eq!(
            (n["started_ms"].clone(), n["finished_ms"].clone(), n["attempts"].clone()),
            (Value::Null, Value::Null, json!(0))
        );
    }
    let back: flow_engine::Report = match serde_json::from_value(value) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(back, report, "the report reads back");
}

#[tokio::test]
async fn events_follow_the_run() {
    let mut options = RunOptions::new().input(json!({ "n": 1 }));
    let mut events = options.subscribe();
    let (report, _) = run_with(BODY, options).await;
    let mut all = Vec::new();
    while let Ok(e) = events.try_recv() {
        all.push(e);
    }
    assert!(matches!(
        all.first().map(|e| &e.kind),
        Some(EventKind::RunStarted { nodes: 4, .. })
    ));
    assert!(matches!(
        all.last().map(|e| &e.kind),
        Some(EventKind::RunFinished {
            status: RunStatus::Failed,
            ..
        })
    ));
    assert!(all.iter().all(|e| *e.run_id == *report.run_id));
    assert!(all.windows(2).all(|w| w[0].at_ms <= w[1].at_ms), "monotonic");
    for (id, n) in report.nodes.iter() {
        let settled: Vec<NodeStatus> = all
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::NodeSettled { node, status, .. } if &**node == id => Some(*status),
                _ => None,
            })
            .collect();
        assert_eq!(settled, [n.status], "{id} settles once, as reported");
        let started = all
            .iter()
            .filter(|e| matches!(&e.kind, EventKind::NodeStarted { node, .. } if &**node == id))
            .count();
        assert_eq!(started as u32, n.attempts, "{id}");
    }
}

#[tokio::test]
async fn retries_are_announced() {
    let mut options = RunOptions::new();
    let mut events = options.subscribe();
    run_with(
        "nodes: [{ id: f, kind: fail, retry: { max_attempts: 2, backoff_ms: 5 } }]",
        options,
    )
    .await;
    let mut retries = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let EventKind::AttemptFailed {
            attempt, retry_in_ms, ..
        } = e.kind
        {
            retries.push((attempt, retry_in_ms));
        }
    }
    assert_eq!(retries, [(1, 5.0)]);
}
