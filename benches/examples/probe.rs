use flow_benches::*;
use std::time::Instant;
fn main() {
    let rt = runtime();
    let engine = flow_engine::Engine::new();
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let kind = args.get(2).cloned().unwrap_or("noop".into());
    let iters: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let only = args.get(4).cloned();
    for shape in Shape::ALL {
        if only.as_deref().is_some_and(|o| o != shape.name()) {
            continue;
        }
        let t = Instant::now();
        let wf = if kind == "noop" {
            noop_workflow(&engine, shape, n)
        } else {
            delay0_workflow(&engine, shape, n)
        };
        let c = t.elapsed();
        time_runs(&rt, &engine, &wf, 1);
        let r = time_runs(&rt, &engine, &wf, iters);
        let tk = if std::env::var("NOTOKIO").is_ok() {
            std::time::Duration::ZERO
        } else {
            time_tokio(&rt, shape, n, iters)
        };
        let per = |d: std::time::Duration| d.as_nanos() as f64 / (iters as f64 * n as f64);
        println!(
            "{:8} n={n} {kind}: compile {:?}  run {:.0} ns/node  tokio {:.0} ns/task",
            shape.name(),
            c,
            per(r),
            per(tk)
        );
    }
}
