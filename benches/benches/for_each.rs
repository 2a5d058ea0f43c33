//! `for_each` overhead per item: one node of `transform` items over a list of
//! 10,000 and 100,000 numbers (each item renders `{{ item }}` and finishes without
//! waiting), against bare tokio doing the same work (one task per item that
//! returns its item, all joined), in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use flow_benches::{quick, runtime, time_runs_with};
use flow_engine::{Engine, Limits};
use serde_json::{Value, json};

fn for_each(c: &mut Criterion) {
    let rt = runtime();
    let engine = Engine::builder()
        .limits(Limits {
            max_items: usize::MAX,
            ..Limits::default()
        })
        .build();
    let workflow = match engine.parse_yaml(
        "name: items\nnodes: [{ id: each, kind: transform, for_each: \"{{ input.items }}\", config: { output: \"{{ item }}\" } }]\n",
    ) {
        Ok(wf) => wf,
        Err(e) => panic!("{e}"),
    };
    let mut group = c.benchmark_group("for_each");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(if quick() { 300 } else { 1000 }));
    group.measurement_time(Duration::from_secs(if quick() { 2 } else { 5 }));
    for n in [10_000usize, 100_000] {
        group.throughput(Throughput::Elements(n as u64));
        let input = json!({ "items": (0..n).collect::<Vec<_>>() });
        group.bench_with_input(BenchmarkId::new("flow_transform", n), &n, |b, _| {
            b.iter_custom(|iters| time_runs_with(&rt, &engine, &workflow, Some(&input), iters))
        });
        let items: Arc<[Value]> = (0..n).map(Value::from).collect();
        group.bench_with_input(BenchmarkId::new("tokio", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let items = items.clone();
                rt.block_on(async move {
                    let task = tokio::spawn(async move {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let start = Instant::now();
                            let mut set = tokio::task::JoinSet::new();
                            for i in 0..items.len() {
                                let items = items.clone();
                                set.spawn(async move { items[i].clone() });
                            }
                            let mut out = Vec::with_capacity(items.len());
                            while let Some(v) = set.join_next().await {
                                out.push(v.unwrap_or_default());
                            }
                            total += start.elapsed();
                            drop(out);
                        }
                        total
                    });
                    task.await.unwrap_or_default()
                })
            })
        });
    }
    group.finish();
    http(c, &rt, &engine);
    children(c, &rt);
}

/// 1,000 child runs under `for_each` (each child one `transform` node),
/// parallel, against the same fan-out of `transform` items; without a journal
/// and on SQLite (`synchronous=FULL`). What a child adds = (children − items)
/// / 1,000.
fn children(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    const N: usize = 1_000;
    let catalog = Arc::new(flow_engine::RegisteredCatalog::new());
    let engine = Engine::builder().catalog(catalog.clone()).build();
    let parse = |yaml: &str| match engine.parse_yaml(yaml) {
        Ok(wf) => wf,
        Err(e) => panic!("{e}"),
    };
    catalog.register(parse(
        "name: one\ninput: { n: 0 }\nnodes: [{ id: t, kind: transform, config: { output: \"{{ input.n }}\" } }]\noutput: \"{{ nodes.t.output }}\"\n",
    ));
    let items = parse(
        "name: items\nnodes: [{ id: each, kind: transform, for_each: \"{{ input.items }}\", config: { output: \"{{ item }}\" } }]\n",
    );
    let children = parse(
        "name: children\nnodes: [{ id: each, kind: workflow, for_each: \"{{ input.items }}\", config: { workflow: one, input: { n: \"{{ item }}\" } } }]\n",
    );
    let input = json!({ "items": (0..N).collect::<Vec<_>>() });
    let mut journals = flow_benches::BenchJournals::new(rt);
    let mut group = c.benchmark_group("for_each_children");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(if quick() { 200 } else { 1000 }));
    group.measurement_time(Duration::from_secs(if quick() { 2 } else { 5 }));
    group.throughput(Throughput::Elements(N as u64));
    for backend in [flow_benches::Backend::Off, flow_benches::Backend::SqliteFull] {
        let writer = journals.writer(rt, backend, "children");
        for (name, workflow) in [("transform_items", &items), ("child_runs", &children)] {
            let id = BenchmarkId::new(format!("{name}_{}", backend.name()), N);
            group.bench_with_input(id, &N, |b, _| {
                b.iter_custom(|iters| {
                    let writer = writer.clone();
                    let input = input.clone();
                    flow_benches::time_runs_options(rt, &engine, workflow, iters, move || {
                        let options = flow_engine::RunOptions::new().input(input.clone());
                        match &writer {
                            Some(w) => options.journal(w.clone()),
                            None => options,
                        }
                    })
                })
            });
        }
    }
    group.finish();
    journals.remove(rt);
}

/// 10,000 `http` POST items, at most 64 at once, to a local axum server that
/// answers at once; against a bare tokio + reqwest loop with a 64-permit semaphore
/// to the same server, in the same run.
fn http(c: &mut Criterion, rt: &tokio::runtime::Runtime, engine: &Engine) {
    const ITEMS: usize = 10_000;
    const CAP: usize = 64;
    let server = match rt.block_on(flow_demo::DelayServer::start()) {
        Ok(server) => server,
        Err(e) => panic!("{e}"),
    };
    let url = server.url(0);
    let yaml = format!(
        "name: posts\nnodes:\n  - id: post\n    kind: http\n    for_each: \"{{{{ input.items }}}}\"\n    max_concurrency: {CAP}\n    config: {{ url: \"{url}\", method: POST, body: {{ n: \"{{{{ index }}}}\" }} }}\n"
    );
    let workflow = match engine.parse_yaml(&yaml) {
        Ok(wf) => wf,
        Err(e) => panic!("{e}"),
    };
    let input = json!({ "items": (0..ITEMS).collect::<Vec<_>>() });
    let mut group = c.benchmark_group("for_each_http");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(if quick() { 300 } else { 1000 }));
    group.measurement_time(Duration::from_secs(if quick() { 4 } else { 10 }));
    group.throughput(Throughput::Elements(ITEMS as u64));
    group.bench_with_input(BenchmarkId::new("flow", ITEMS), &ITEMS, |b, _| {
        b.iter_custom(|iters| time_runs_with(rt, engine, &workflow, Some(&input), iters))
    });
    let client = reqwest::Client::new();
    group.bench_with_input(BenchmarkId::new("tokio_reqwest", ITEMS), &ITEMS, |b, _| {
        b.iter_custom(|iters| {
            let (client, url) = (client.clone(), url.clone());
            rt.block_on(async move {
                let task = tokio::spawn(async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        let permits = Arc::new(tokio::sync::Semaphore::new(CAP));
                        let mut set = tokio::task::JoinSet::new();
                        for n in 0..ITEMS {
                            let (client, url, permits) = (client.clone(), url.clone(), permits.clone());
                            set.spawn(async move {
                                let _permit = permits.acquire_owned().await;
                                let response = client.post(&url).json(&json!({ "n": n })).send().await;
                                match response {
                                    Ok(r) => r.json::<Value>().await.unwrap_or_default(),
                                    Err(e) => panic!("{e}"),
                                }
                            });
                        }
                        while set.join_next().await.is_some() {}
                        total += start.elapsed();
                    }
                    total
                });
                task.await.unwrap_or_default()
            })
        })
    });
    group.finish();
    drop(server);
}

criterion_group!(benches, for_each);
criterion_main!(benches);
