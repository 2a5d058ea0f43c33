//! Durable runs: what the journal adds to a run, in the same run as the plain
//! engine.
//!
//! - `journal_fan-out` and `journal_chain`: 10,000 `noop` nodes (1,000 under
//!   `--quick`) with no journal, SQLite `synchronous=FULL`, SQLite
//!   `synchronous=NORMAL` and PostgreSQL. The journal's added cost per node is
//!   (journaled − plain) / nodes. `noop` has no effects, so its start is not
//!   awaited: the records are committed in batches as the run goes, and the
//!   run's end is awaited.
//! - `journal_40x10ms`: a chain of 40 `delay` nodes of 10 ms (the shape of
//!   Windmill's orchestrator benchmark): 400 ms of sleeping; targets 420 ms with
//!   SQLite, 450 ms with PostgreSQL. In the same group, `tokio_sleep`: 40
//!   `tokio::time::sleep(10 ms)` one after another, the timer's own cost.
//!
//! Each case has a fresh journal (a SQLite file in the temp dir, a PostgreSQL
//! schema of its own) that grows across the iterations: every run adds its
//! records. PostgreSQL is `FLOW_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); the bench fails if it is not
//! reachable. Files and schemas are removed at the end.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use flow_benches::{
    Backend, BenchJournals, Shape, compile, noop_workflow, quick, runtime, spec, time_runs_journaled, time_tokio_sleeps,
};
use flow_engine::Engine;
use serde_json::json;

fn journal(c: &mut Criterion) {
    let rt = runtime();
    let engine = Engine::new();
    let mut journals = BenchJournals::new(&rt);
    let n = if quick() { 1_000usize } else { 10_000 };
    for shape in [Shape::FanOut, Shape::Chain] {
        let workflow = noop_workflow(&engine, shape, n);
        let mut group = c.benchmark_group(format!("journal_{}", shape.name()));
        // A journaled 10k-node chain takes seconds a run: ten samples of one
        // run each, and one run of warm-up.
        group.sample_size(10);
        group.sampling_mode(SamplingMode::Flat);
        group.warm_up_time(Duration::from_millis(if quick() { 100 } else { 300 }));
        group.measurement_time(Duration::from_secs(if quick() { 1 } else { 2 }));
        group.throughput(Throughput::Elements(n as u64));
        for backend in Backend::ALL {
            let case = format!("{}_{n}", shape.name().replace('-', ""));
            let writer = journals.writer(&rt, backend, &case);
            group.bench_with_input(BenchmarkId::new(backend.name(), n), &n, |b, _| {
                b.iter_custom(|iters| time_runs_journaled(&rt, &engine, &workflow, writer.as_ref(), iters))
            });
        }
        group.finish();
    }

    let steps = compile(&engine, spec(Shape::Chain, 40, "delay", json!({ "ms": 10 })));
    let mut group = c.benchmark_group("journal_40x10ms");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_millis(if quick() { 100 } else { 500 }));
    group.measurement_time(Duration::from_secs(if quick() { 2 } else { 4 }));
    group.bench_with_input(BenchmarkId::new("tokio_sleep", 40), &40, |b, &steps| {
        b.iter_custom(|iters| time_tokio_sleeps(&rt, steps, 10, iters))
    });
    for backend in Backend::ALL {
        let writer = journals.writer(&rt, backend, "chain40x10ms");
        group.bench_with_input(BenchmarkId::new(backend.name(), 40), &40, |b, _| {
            b.iter_custom(|iters| time_runs_journaled(&rt, &engine, &steps, writer.as_ref(), iters))
        });
    }
    group.finish();
    journals.remove(&rt);
}

criterion_group!(benches, journal);
criterion_main!(benches);
