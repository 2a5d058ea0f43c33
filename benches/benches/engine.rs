//! Engine overhead per node: `noop` nodes (finish without waiting: no task) and
//! `delay ms: 0` nodes (suspend once: a task each) in three shapes, against bare
//! tokio and dagx on the same shapes. Everything is driven from inside a task on a
//! multi-threaded runtime, never from the thread that calls `block_on`.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use flow_benches::{Shape, delay0_workflow, noop_workflow, quick, runtime, sizes, time_dagx, time_runs, time_tokio};
use flow_engine::Engine;

fn engine(c: &mut Criterion) {
    let rt = runtime();
    let engine = Engine::new();
    for shape in Shape::ALL {
        let mut group = c.benchmark_group(shape.name());
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(if quick() { 300 } else { 1000 }));
        group.measurement_time(Duration::from_secs(if quick() { 1 } else { 3 }));
        for n in sizes() {
            group.throughput(Throughput::Elements(n as u64));
            let noop = noop_workflow(&engine, shape, n);
            group.bench_with_input(BenchmarkId::new("flow_noop", n), &n, |b, _| {
                b.iter_custom(|iters| time_runs(&rt, &engine, &noop, iters))
            });
            drop(noop);
            let delay0 = delay0_workflow(&engine, shape, n);
            group.bench_with_input(BenchmarkId::new("flow_delay0", n), &n, |b, _| {
                b.iter_custom(|iters| time_runs(&rt, &engine, &delay0, iters))
            });
            drop(delay0);
            group.bench_with_input(BenchmarkId::new("tokio", n), &n, |b, &n| {
                b.iter_custom(|iters| time_tokio(&rt, shape, n, iters))
            });
            group.bench_with_input(BenchmarkId::new("dagx", n), &n, |b, &n| {
                b.iter_custom(|iters| time_dagx(&rt, shape, n, iters))
            });
        }
        group.finish();
    }
    // Validation is paid once per workflow, not per run; measured here for the record.
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(if quick() { 1 } else { 3 }));
    let n = 10_000usize;
    group.throughput(Throughput::Elements(n as u64));
    group.bench_with_input(BenchmarkId::new("fan-out", n), &n, |b, &n| {
        b.iter(|| noop_workflow(&engine, Shape::FanOut, n))
    });
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
