//! Cost does not grow with workflow size: 10,000-node fan-outs and chains load
//! and run well within a generous bound.

use std::time::{Duration, Instant};

use flow_engine::strategy::StrategyKind;
use flow_engine::{NodeStatus, RunOptions, RunStatus};
use serde_json::{Value, json};

use crate::support::{engine, strategy};

const N: usize = 10_000;
const BOUND: Duration = Duration::from_secs(20);

fn doc(nodes: Vec<Value>, edges: Vec<Value>) -> Value {
    json!({ "name": "scale", "nodes": nodes, "edges": edges })
}

/// `start -> n0..n9999 -> join`.
fn fanout() -> Value {
    let mut nodes = vec![json!({ "id": "start", "kind": "noop" })];
    let mut edges = Vec::new();
    for i in 0..N {
        nodes.push(json!({ "id": format!("n{i}"), "kind": "noop" }));
        edges.push(json!({ "from": "start", "to": format!("n{i}") }));
        edges.push(json!({ "from": format!("n{i}"), "to": "join" }));
    }
    nodes.push(json!({ "id": "join", "kind": "noop" }));
    doc(nodes, edges)
}

/// `n0 -> n1 -> ... -> n9999`, each node `node(i)`.
fn chain(node: impl Fn(usize) -> Value) -> Value {
    let nodes = (0..N).map(node).collect();
    let edges = (1..N)
        .map(|i| json!({ "from": format!("n{}", i - 1), "to": format!("n{i}") }))
        .collect();
    doc(nodes, edges)
}

fn noop(i: usize) -> Value {
    json!({ "id": format!("n{i}"), "kind": "noop" })
}

/// Loads `doc` (pretty JSON, so the file has one line per field) and runs it.
async fn run(doc: &Value, kind: StrategyKind) -> flow_engine::Report {
    let started = Instant::now();
    let (engine, _) = engine();
    let text = serde_json::to_string_pretty(doc).unwrap_or_default();
    let wf = match engine.parse_json(&text) {
        Ok(wf) => wf,
        Err(e) => panic!("{e}"),
    };
    let loaded = started.elapsed();
    let report = match engine.run(&wf, RunOptions::new().strategy(strategy(kind))).await {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert!(
        started.elapsed() < BOUND,
        "load {loaded:?}, run {:?}",
        started.elapsed() - loaded
    );
    report
}

fn count(report: &flow_engine::Report, status: NodeStatus) -> usize {
    report.nodes.iter().filter(|(_, n)| n.status == status).count()
}

#[tokio::test]
async fn a_wide_fanout() {
    let report = run(&fanout(), StrategyKind::Parallel).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(count(&report, NodeStatus::Succeeded), N + 2);
}

#[tokio::test]
async fn a_long_chain() {
    for kind in [StrategyKind::Parallel, StrategyKind::Sequential] {
        let report = run(&chain(noop), kind).await;
        assert_eq!(count(&report, NodeStatus::Succeeded), N, "{kind}");
    }
}

#[tokio::test]
async fn a_failure_at_the_head_of_a_long_chain() {
    let doc = chain(|i| {
        if i == 0 {
            json!({ "id": "n0", "kind": "fail" })
        } else {
            noop(i)
        }
    });
    let report = run(&doc, StrategyKind::AllSettled).await;
    assert_eq!(count(&report, NodeStatus::UpstreamFailed), N - 1);
}

#[tokio::test]
async fn a_long_chain_of_templates() {
    let doc = chain(|i| {
        let output = if i == 0 {
            json!(0)
        } else {
            json!(format!("{{{{ nodes.n{}.output + 1 }}}}", i - 1))
        };
        json!({ "id": format!("n{i}"), "kind": "transform", "config": { "output": output } })
    });
    let report = run(&doc, StrategyKind::Parallel).await;
    assert_eq!(
        report.node(&format!("n{}", N - 1)).map(|n| n.output.clone()),
        Some(json!(N - 1))
    );
}

#[tokio::test]
async fn a_long_yaml_file() {
    let mut text = String::from("name: scale\nnodes:\n");
    for i in 0..N {
        text.push_str(&format!("  - id: n{i}\n    kind: noop\n"));
    }
    text.push_str("edges:\n");
    for i in 1..N {
        text.push_str(&format!("  - from: n{}\n    to: n{i}\n", i - 1));
    }
    let started = Instant::now();
    let (engine, _) = engine();
    let wf = engine.parse_yaml(&text).map_err(|e| e.to_string());
    assert!(wf.is_ok(), "{wf:?}");
    assert!(started.elapsed() < BOUND, "{:?}", started.elapsed());
}
