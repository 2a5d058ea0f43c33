//! The seed's demo: 5 `http` branches at 200 ms against a local delay server, under
//! each strategy. Wall time per run; `flow demo` prints the same as a table.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use flow_demo::{DelayServer, DemoShape};
use flow_engine::strategy::StrategyKind;
use flow_engine::{Engine, RunOptions, RunStatus, Strategy};

fn seed_demo(c: &mut Criterion) {
    let rt = flow_benches::runtime();
    let shape = DemoShape::default();
    let engine = Engine::new();
    let server = match rt.block_on(DelayServer::start()) {
        Ok(server) => server,
        Err(e) => panic!("cannot start the delay server: {e}"),
    };
    let workflow = match rt.block_on(async { shape.workflow(&engine, &server) }) {
        Ok(wf) => wf,
        Err(e) => panic!("demo workflow: {e}"),
    };
    let mut group = c.benchmark_group("seed_demo");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(if flow_benches::quick() { 3 } else { 12 }));
    for kind in StrategyKind::ALL {
        let strategy: Arc<dyn Strategy> = match engine.build_strategy(&shape.strategy(kind)) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        group.bench_with_input(BenchmarkId::new(kind.as_str(), shape.branches), &kind, |b, _| {
            b.iter_custom(|iters| {
                let engine = engine.clone();
                let workflow = workflow.clone();
                let strategy = strategy.clone();
                rt.block_on(async move {
                    let task = tokio::spawn(async move {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let start = Instant::now();
                            let report = engine
                                .run(&workflow, RunOptions::new().strategy(strategy.clone()))
                                .await;
                            total += start.elapsed();
                            match report {
                                Ok(r) if r.status == RunStatus::Succeeded => {}
                                other => panic!("demo run: {other:?}"),
                            }
                        }
                        total
                    });
                    task.await.unwrap_or_default()
                })
            })
        });
    }
    group.finish();
    drop(server);
}

criterion_group!(benches, seed_demo);
criterion_main!(benches);
