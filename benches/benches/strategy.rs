//! flow-strategy on its own: N ready futures through each strategy's runner,
//! against `futures::future::join_all`.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use flow_strategy::{StrategyConfig, StrategyKind};

fn strategies(c: &mut Criterion) {
    let rt = flow_benches::runtime();
    let mut group = c.benchmark_group("strategy");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(if flow_benches::quick() { 1 } else { 3 }));
    let sizes: &[usize] = if flow_benches::quick() {
        &[1_000, 10_000]
    } else {
        &[1_000, 10_000, 100_000]
    };
    for &n in sizes {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("join_all", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                in_task(&rt, iters, move || async move {
                    let out = futures::future::join_all((0..n).map(|i| async move { Ok::<usize, ()>(i) })).await;
                    std::hint::black_box(out);
                })
            })
        });
        for kind in [
            StrategyKind::Sequential,
            StrategyKind::Parallel,
            StrategyKind::AllSettled,
        ] {
            let strategy = match StrategyConfig::new(kind).build() {
                Ok(s) => s,
                Err(e) => panic!("{e}"),
            };
            group.bench_with_input(BenchmarkId::new(kind.as_str(), n), &n, |b, &n| {
                b.iter_custom(|iters| {
                    let strategy = strategy.clone();
                    in_task(&rt, iters, move || {
                        let strategy = strategy.clone();
                        async move {
                            let out =
                                flow_strategy::run(&*strategy, (0..n).map(|i| async move { Ok::<usize, ()>(i) })).await;
                            std::hint::black_box(out);
                        }
                    })
                })
            });
        }
    }
    group.finish();
}

fn in_task<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, make: F) -> Duration
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    rt.block_on(async move {
        tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..iters {
                make().await;
            }
            start.elapsed()
        })
        .await
        .unwrap_or_default()
    })
}

criterion_group!(benches, strategies);
criterion_main!(benches);
