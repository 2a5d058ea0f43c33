//! Rate-limited accuracy: 100 nodes at 50 per second. Measures the rate the starts
//! really had and the most starts seen in any one-second window, and writes them to
//! `target/flow-bench/rate.json` for `cargo xtask bench`'s summary. Not a criterion
//! bench: it measures accuracy, not speed.

use std::sync::Arc;

use flow_core::{NodeSpec, StrategySpec, Trigger, WorkflowSpec};
use flow_engine::{Engine, RunOptions};

const NODES: usize = 100;
const RATE: f64 = 50.0;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` asks every bench for its names.
    }
    let rt = flow_benches::runtime();
    let engine = Engine::new();
    let mut results = Vec::new();
    for burst in [1u64, 5] {
        let spec = WorkflowSpec {
            name: format!("rate-{NODES}-at-{RATE}"),
            description: None,
            strategy: Some(
                StrategySpec::new("rate-limited")
                    .with("per_second", RATE)
                    .with("burst", burst),
            ),
            input: None,
            secrets: Vec::new(),
            limits: Default::default(),
            nodes: (0..NODES)
                .map(|i| NodeSpec {
                    id: format!("n{i}"),
                    kind: "noop".to_owned(),
                    config: serde_json::Value::Null,
                    description: None,
                    retry: None,
                    timeout_ms: None,
                    trigger: Trigger::AllSuccess,
                    continue_on_error: false,
                    ..Default::default()
                })
                .collect(),
            edges: Vec::new(),
            output: None,
        };
        let workflow = Arc::new(
            match flow_engine::Workflow::compile(spec, engine.registry(), engine.limits()) {
                Ok(wf) => wf,
                Err(e) => panic!("{e}"),
            },
        );
        let report = rt.block_on({
            let engine = engine.clone();
            async move { tokio::spawn(async move { engine.run(&workflow, RunOptions::new()).await }).await }
        });
        let report = match report {
            Ok(Ok(r)) => r,
            other => panic!("rate run: {other:?}"),
        };
        let mut starts: Vec<f64> = report.nodes.iter().filter_map(|(_, n)| n.started_ms).collect();
        starts.sort_by(f64::total_cmp);
        let (first, last) = (starts[0], starts[starts.len() - 1]);
        let measured = (NODES as f64 - burst as f64) / ((last - first) / 1000.0);
        let mut max_window = 0;
        let mut lo = 0;
        for hi in 0..starts.len() {
            while starts[hi] - starts[lo] >= 1000.0 {
                lo += 1;
            }
            max_window = max_window.max(hi - lo + 1);
        }
        let error_pct = (measured - RATE) / RATE * 100.0;
        println!(
            "rate-limited {NODES} nodes at {RATE}/s burst {burst}: measured {measured:.2}/s ({error_pct:+.2}%), \
             most starts in one second {max_window} (limit {})",
            RATE as u64 + burst
        );
        results.push(serde_json::json!({
            "nodes": NODES, "per_second": RATE, "burst": burst,
            "measured_per_second": measured, "error_pct": error_pct,
            "max_starts_in_1s": max_window, "limit_in_1s": RATE as u64 + burst,
        }));
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/flow-bench");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("rate.json"), serde_json::Value::Array(results).to_string());
}
