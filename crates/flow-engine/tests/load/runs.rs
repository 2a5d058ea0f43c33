//! Load: one engine runs 1,000 runs of a 20-node workflow at once, each with its
//! own input, and every run sees only its own values; memory returns to where it
//! was. The soak (100,000 short runs, `#[ignore]`d) shows no growth over time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flow_engine::{Engine, RunOptions, RunStatus, Workflow};
use serde_json::json;

use crate::support::{alive_tasks, engine, memory_turn, rss_kib, settle_tasks, workflow};

/// 20 nodes: `start`, three layers of six `mix` nodes (each checks that what it
/// reads from its predecessors is its own run's `input.n`), and a `transform` that
/// gathers the last layer. Half the nodes sleep 1 ms, so many runs are in flight
/// at once; the others only yield.
fn twenty_nodes() -> String {
    let mut nodes = vec!["  - { id: start, kind: mix, config: { n: \"{{ input.n }}\" } }".to_owned()];
    let mut edges = Vec::new();
    let mut previous: Vec<String> = vec!["start".to_owned()];
    for layer in 0..3 {
        let mut current = Vec::new();
        for i in 0..6 {
            let id = format!("l{layer}-{i}");
            let preds: Vec<&String> = if previous.len() == 1 {
                vec![&previous[0]]
            } else {
                vec![&previous[i], &previous[(i + 1) % previous.len()]]
            };
            let from: Vec<String> = preds
                .iter()
                .map(|p| format!("\"{{{{ nodes['{p}'].output.n }}}}\""))
                .collect();
            nodes.push(format!(
                "  - {{ id: {id}, kind: mix, config: {{ n: \"{{{{ input.n }}}}\", from: [{}], ms: {} }} }}",
                from.join(", "),
                (i % 2)
            ));
            for p in preds {
                edges.push(format!("  - {{ from: {p}, to: {id} }}"));
            }
            current.push(id);
        }
        previous = current;
    }
    let gathered: Vec<String> = previous
        .iter()
        .map(|p| format!("\"{{{{ nodes['{p}'].output.n }}}}\""))
        .collect();
    nodes.push(format!(
        "  - {{ id: end, kind: transform, config: {{ output: {{ n: \"{{{{ input.n }}}}\", seen: [{}] }} }} }}",
        gathered.join(", ")
    ));
    for p in &previous {
        edges.push(format!("  - {{ from: {p}, to: end }}"));
    }
    format!("nodes:\n{}\nedges:\n{}", nodes.join("\n"), edges.join("\n"))
}

/// Starts `runs` runs at once, run `i` with input `{"n": base + i}`, and checks every
/// report: all succeeded, and the end node saw only its own run's `n`.
async fn burst(engine: &Engine, wf: &Arc<Workflow>, base: u64, runs: u64) {
    let handles: Vec<_> = (0..runs)
        .map(|i| {
            let options = RunOptions::new().input(json!({ "n": base + i }));
            match engine.start(wf, options) {
                Ok(h) => (base + i, h),
                Err(e) => panic!("{e}"),
            }
        })
        .collect();
    for (n, handle) in handles {
        let report = match handle.wait().await {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            report.status,
            RunStatus::Succeeded,
            "run {n}: {:?}",
            report.nodes.iter().find_map(|(_, r)| r.error.clone())
        );
        assert_eq!(report.nodes.len(), 20);
        let end = match report.node("end") {
            Some(e) => &e.output,
            None => panic!("no end node"),
        };
        assert_eq!(end["n"], n, "run {n} got another run's input");
        assert_eq!(
            end["seen"],
            json!([n, n, n, n, n, n]),
            "run {n} saw another run's outputs"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_runs_keep_their_own_results_and_memory_returns() {
    let _turn = memory_turn().await;
    let baseline_tasks = alive_tasks();
    let (engine, _) = engine();
    let wf = workflow(&engine, &twenty_nodes());
    assert_eq!(wf.nodes().len(), 20);
    // The first burst grows the allocator's pools; later ones must reuse them.
    burst(&engine, &wf, 0, 1000).await;
    settle_tasks(baseline_tasks).await;
    let warm = rss_kib();
    let mut figures = Vec::new();
    for round in 1..=3 {
        let started = Instant::now();
        burst(&engine, &wf, round * 1000, 1000).await;
        figures.push((started.elapsed(), rss_kib()));
        settle_tasks(baseline_tasks).await;
    }
    let after = rss_kib();
    eprintln!(
        "1,000 concurrent runs x 20 nodes: {}; RSS after warm-up {} MiB, after 3 more bursts {} MiB",
        figures
            .iter()
            .map(|(t, rss)| format!("{t:?} (RSS {} MiB)", rss / 1024))
            .collect::<Vec<_>>()
            .join(", "),
        warm / 1024,
        after / 1024
    );
    // Generous: the other tests of this binary run in the same process meanwhile.
    assert!(
        after <= warm + 64 * 1024,
        "RSS grew from {warm} KiB to {after} KiB over three bursts of 1,000 runs"
    );
}

/// 100,000 short runs, 50 at a time, on one engine: RSS after every 10,000 runs.
/// `cargo test -p flow-engine --release --test load -- --ignored soak --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak: about 6 s in release, 8 s in debug; run it by hand or with `cargo xtask soak`"]
async fn soak_of_100_000_runs_shows_no_growth() {
    let (engine, _) = engine();
    let wf = workflow(
        &engine,
        "nodes:
  - { id: a, kind: mix, config: { n: \"{{ input.n }}\" } }
  - { id: b, kind: mix, config: { n: \"{{ input.n }}\", from: [\"{{ nodes.a.output.n }}\"], ms: 1 } }
  - { id: c, kind: mix, config: { n: \"{{ input.n }}\", from: [\"{{ nodes.a.output.n }}\"] } }
  - { id: d, kind: transform, config: { output: [\"{{ nodes.b.output.n }}\", \"{{ nodes.c.output.n }}\"] } }
edges:
  - { from: a, to: b }
  - { from: a, to: c }
  - { from: b, to: d }
  - { from: c, to: d }",
    );
    let total: u64 = 100_000;
    let batch: u64 = 50;
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut n = 0;
    while n < total {
        let handles: Vec<_> = (n..n + batch)
            .map(
                |i| match engine.start(&wf, RunOptions::new().input(json!({ "n": i }))) {
                    Ok(h) => (i, h),
                    Err(e) => panic!("{e}"),
                },
            )
            .collect();
        for (i, handle) in handles {
            let report = match handle.wait().await {
                Ok(r) => r,
                Err(e) => panic!("{e}"),
            };
            assert_eq!(report.status, RunStatus::Succeeded, "run {i}");
            assert_eq!(report.nodes.get("d").map(|d| d.output.clone()), Some(json!([i, i])));
        }
        n += batch;
        if n % 10_000 == 0 {
            samples.push((n, rss_kib()));
        }
    }
    let took = started.elapsed();
    eprintln!(
        "soak: {total} runs in {took:?} ({:.0} runs/s); RSS by 10,000 runs (MiB): {}",
        total as f64 / took.as_secs_f64(),
        samples
            .iter()
            .map(|(_, kib)| (kib / 1024).to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let first = samples.first().map_or(0, |s| s.1);
    let last = samples.last().map_or(0, |s| s.1);
    assert!(
        last <= first + 16 * 1024,
        "RSS grew from {first} KiB after 10,000 runs to {last} KiB after {total}"
    );
    assert!(took < Duration::from_secs(3600));
}
