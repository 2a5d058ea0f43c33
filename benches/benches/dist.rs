//! Workers through the PostgreSQL queue. Not a criterion bench: it starts the
//! real release `flow` binary, `flow worker` processes and a coordinator
//! (`flow run --journal postgres://… --dispatch queue`), each case on a
//! PostgreSQL schema of its own, and reads the coordinator's report:
//!
//! 1. the orchestrator shape Windmill publishes, with 1 worker: a chain of 40
//!    light tasks (`noop`), and a chain of 10 long ones (`delay` 500 ms):
//!    overhead per step = (run's duration - work) / steps;
//! 2. a fan-out of 10,000 `noop` nodes over 1, 2 and 4 workers (64 at once
//!    each): tasks per second = 10,000 / the run's duration.
//!
//! Each case runs 3 times (once under `--quick`); the figures go to
//! `target/flow-bench/dist.json` for `cargo xtask bench`'s summary. The binary
//! is `FLOW_BENCH_BIN`, or `target/release/flow` built first. PostgreSQL is
//! `FLOW_TEST_PG_URL`; the bench fails if it is not reachable.

use std::process::{Child, Command, Stdio};
use std::time::Instant;

use flow_benches::{Backend, BenchJournals, flow_binary, quick, runtime, target_dir};
use serde_json::{Value, json};

const FAN_OUT: usize = 10_000;
const TARGET_STEP_MS: f64 = 5.0;
const TARGET_TASKS_PER_S: f64 = 2_000.0;

fn chain(name: &str, steps: usize, kind: &str, config: &str) -> String {
    let mut yaml = format!("name: {name}\nstrategy: {{ kind: parallel }}\nnodes:\n");
    for i in 0..steps {
        yaml.push_str(&format!("  - {{ id: s{i}, kind: {kind}, config: {config} }}\n"));
    }
    yaml.push_str("edges:\n");
    for i in 1..steps {
        yaml.push_str(&format!("  - {{ from: s{}, to: s{i} }}\n", i - 1));
    }
    yaml
}

fn fan_out(n: usize) -> String {
    let nodes: Vec<Value> = (0..n)
        .map(|i| json!({ "id": format!("t{i}"), "kind": "noop" }))
        .collect();
    json!({ "name": "fan_out", "strategy": { "kind": "parallel" }, "nodes": nodes }).to_string()
}

struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `file` through the queue of `url` with `workers` workers; the
/// coordinator's report and the wall time of its process.
fn through_queue(
    bin: &std::path::Path,
    url: &str,
    file: &std::path::Path,
    workers: usize,
    concurrency: usize,
) -> (Value, f64) {
    let mut started = Workers(Vec::new());
    for _ in 0..workers {
        let child = Command::new(bin)
            .args(["worker", "--journal", url, "--concurrency", &concurrency.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start flow worker: {e}"));
        started.0.push(child);
    }
    // Let the workers connect and listen.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let t0 = Instant::now();
    let out = Command::new(bin)
        .args(["run".as_ref(), file.as_os_str()])
        .args(["--journal", url, "--dispatch", "queue", "--quiet", "--report", "-"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run flow: {e}"));
    let wall = t0.elapsed().as_secs_f64() * 1000.0;
    if !out.status.success() {
        panic!(
            "the run through the queue failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("no report: {e}"));
    (report, wall)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let quick = quick();
    let repeats = if quick { 1 } else { 3 };
    let bin = flow_binary();
    let rt = runtime();
    let mut journals = BenchJournals::new(&rt);
    let dir = std::env::temp_dir().join(format!("flow-bench-dist-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("cannot create {}: {e}", dir.display());
    }
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        if let Err(e) = std::fs::write(&path, text) {
            panic!("cannot write {}: {e}", path.display());
        }
        path
    };
    let light = write("light.yaml", chain("light", 40, "noop", "{}"));
    let long = write("long.yaml", chain("long", 10, "delay", "{ ms: 500 }"));
    let wide = write("fan_out.json", fan_out(FAN_OUT));

    let mut chains = Vec::new();
    for (name, file, steps, work_ms) in [("light_40", &light, 40usize, 0.0), ("long_10", &long, 10, 5_000.0)] {
        let mut per_step = Vec::new();
        let mut totals = Vec::new();
        for r in 0..repeats {
            let url = journals
                .target(&rt, Backend::Postgres, &format!("dist_{name}_{r}"))
                .unwrap_or_else(|| panic!("no PostgreSQL target"));
            let (report, _) = through_queue(&bin, &url, file, 1, 16);
            let ms = report["duration_ms"].as_f64().unwrap_or(f64::NAN);
            totals.push(ms);
            per_step.push((ms - work_ms) / steps as f64);
            eprintln!(
                "{name} #{r}: {ms:.1} ms, {:.2} ms per step of overhead",
                (ms - work_ms) / steps as f64
            );
        }
        let step = median(per_step.clone());
        chains.push(json!({
            "case": name,
            "steps": steps,
            "work_ms": work_ms,
            "total_ms": totals,
            "overhead_per_step_ms": per_step,
            "median_overhead_per_step_ms": step,
            "target_ms": TARGET_STEP_MS,
            "target_met": step < TARGET_STEP_MS,
        }));
    }

    let mut fan = Vec::new();
    for workers in [1usize, 2, 4] {
        let mut rates = Vec::new();
        for r in 0..repeats {
            let url = journals
                .target(&rt, Backend::Postgres, &format!("dist_fan_{workers}_{r}"))
                .unwrap_or_else(|| panic!("no PostgreSQL target"));
            let (report, wall) = through_queue(&bin, &url, &wide, workers, 64);
            let ms = report["duration_ms"].as_f64().unwrap_or(f64::NAN);
            let rate = FAN_OUT as f64 / (ms / 1000.0);
            rates.push(rate);
            eprintln!(
                "fan-out {FAN_OUT} over {workers} workers #{r}: {ms:.0} ms ({rate:.0} tasks/s; process {wall:.0} ms)"
            );
        }
        let rate = median(rates.clone());
        fan.push(json!({
            "workers": workers,
            "tasks": FAN_OUT,
            "tasks_per_second": rates,
            "median_tasks_per_second": rate,
            "target": if workers == 4 { json!(TARGET_TASKS_PER_S) } else { Value::Null },
            "target_met": if workers == 4 { json!(rate >= TARGET_TASKS_PER_S) } else { Value::Null },
        }));
    }
    journals.remove(&rt);
    let _ = std::fs::remove_dir_all(&dir);
    let figures = json!({
        "quick": quick,
        "repeats": repeats,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "chains": chains,
        "fan_out": fan,
    });
    let out = target_dir().join("flow-bench");
    let _ = std::fs::create_dir_all(&out);
    let path = out.join("dist.json");
    let text = serde_json::to_string_pretty(&figures).unwrap_or_default();
    if let Err(e) = std::fs::write(&path, &text) {
        panic!("cannot write {}: {e}", path.display());
    }
    println!("{text}\n\nwritten to {}", path.display());
}
