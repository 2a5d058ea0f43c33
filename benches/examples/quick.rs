//! A quick look at engine overhead: `cargo run --release -p flow-benches --example quick`.
use flow_benches::*;
fn main() {
    let rt = runtime();
    let engine = flow_engine::Engine::new();
    for shape in Shape::ALL {
        for n in [10_000usize, 100_000] {
            let wf = noop_workflow(&engine, shape, n);
            let iters = if n > 50_000 { 3 } else { 20 };
            time_runs(&rt, &engine, &wf, 2);
            let t = time_runs(&rt, &engine, &wf, iters);
            let tk = time_tokio(&rt, shape, n, iters);
            let wf0 = delay0_workflow(&engine, shape, n);
            time_runs(&rt, &engine, &wf0, 1);
            let t0 = time_runs(&rt, &engine, &wf0, iters);
            let per = |d: std::time::Duration| d.as_nanos() as f64 / (iters as f64 * n as f64);
            println!(
                "{:8} n={:6}: noop {:7.1} ns/node  delay0 {:7.1} ns/node  tokio {:7.1} ns/task",
                shape.name(),
                n,
                per(t),
                per(t0),
                per(tk)
            );
        }
    }
}
