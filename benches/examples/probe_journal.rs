//! A quick before/after probe of journaled runs, for alternating two builds in
//! one session: `probe_journal [ROUNDS]` prints, per round, the median wall
//! time of a 10k `noop` fan-out, a 1k `noop` chain and a 40 × 10 ms `delay`
//! chain, each plain and journaled on SQLite (`synchronous=FULL`).
//! Build with `cargo build --release -p flow-benches --example probe_journal`.

use std::time::Duration;

use flow_benches::{Backend, BenchJournals, Shape, compile, noop_workflow, runtime, spec, time_runs_journaled};
use flow_engine::Engine;
use serde_json::json;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let rt = runtime();
    let engine = Engine::new();
    let mut journals = BenchJournals::new(&rt);
    let cases = [
        ("fanout10k", noop_workflow(&engine, Shape::FanOut, 10_000), 10_000usize),
        ("chain1k", noop_workflow(&engine, Shape::Chain, 1_000), 1_000),
        (
            "chain40x10ms",
            compile(&engine, spec(Shape::Chain, 40, "delay", json!({ "ms": 10 }))),
            40,
        ),
    ];
    for (name, workflow, n) in &cases {
        for backend in [Backend::Off, Backend::SqliteFull] {
            let writer = journals.writer(&rt, backend, name);
            time_runs_journaled(&rt, &engine, workflow, writer.as_ref(), 1);
            let samples: Vec<Duration> = (0..rounds)
                .map(|_| time_runs_journaled(&rt, &engine, workflow, writer.as_ref(), 1))
                .collect();
            let m = median(samples);
            println!(
                "{name:13} {:12} median {:9.2} ms  {:8.0} ns/node",
                backend.name(),
                m.as_secs_f64() * 1000.0,
                m.as_nanos() as f64 / *n as f64
            );
        }
    }
    journals.remove(&rt);
}
