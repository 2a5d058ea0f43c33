//! The seed's benchmark, reproduced and beaten.
//!
//! The seed (a TypeScript executor) ran 5 HTTP calls of 200 ms each in 1110 ms one
//! after another and in 306 ms with `Promise.all` (3.63x). This crate starts a delay
//! server on 127.0.0.1 (a free port), builds one workflow — a start node fanning out
//! to N `http` nodes, each calling an endpoint that answers after D ms — and runs it
//! under every strategy. `flow demo` prints the table; the benches time the same runs.
#![warn(missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use axum::serve::ListenerExt;
use flow_core::{EdgeSpec, NodeSpec, StrategySpec, Trigger, WorkflowSpec};
use flow_engine::strategy::StrategyKind;
use flow_engine::{Engine, RunOptions, RunStatus, Strategy, Workflow};
use serde_json::json;

/// A server whose `/delay/{ms}` answers `{"slept_ms": ms}` after `ms` milliseconds
/// (to a GET or a POST).
/// It stops when dropped.
#[derive(Debug)]
pub struct DelayServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl DelayServer {
    /// Starts the server on 127.0.0.1 with a free port.
    pub async fn start() -> std::io::Result<DelayServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        // Headers and body leave in separate writes: without TCP_NODELAY, Nagle plus
        // delayed ACKs would stall each response by ~40 ms.
        let listener = listener.tap_io(|stream| {
            let _ = stream.set_nodelay(true);
        });
        let answer = |Path(ms): Path<u64>| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            axum::Json(json!({ "slept_ms": ms }))
        };
        let app = Router::new().route("/delay/{ms}", get(answer).post(answer));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(DelayServer { addr, task })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL of an endpoint that answers after `ms` milliseconds.
    pub fn url(&self, ms: u64) -> String {
        format!("http://{}/delay/{ms}", self.addr)
    }
}

impl Drop for DelayServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The demo's shape: `branches` http calls answering after `delay_ms` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoShape {
    /// How many parallel branches (the seed: 5).
    pub branches: usize,
    /// Each call's server-side delay in ms (the seed: 200).
    pub delay_ms: u64,
}

impl Default for DemoShape {
    fn default() -> Self {
        DemoShape {
            branches: 5,
            delay_ms: 200,
        }
    }
}

impl DemoShape {
    /// The rate-limited variant's rate: two starts per call duration, so the
    /// throttle is visible (5 x 200 ms: 10 per second).
    pub fn rate_per_second(&self) -> f64 {
        2000.0 / self.delay_ms.max(1) as f64
    }

    /// The shortest possible wall time under `kind`: D when the calls overlap,
    /// N x D one after another, and for rate-limited the last admission plus D (the
    /// start node takes the first admission, so the last call starts N / rate in).
    pub fn ideal_ms(&self, kind: StrategyKind) -> f64 {
        let d = self.delay_ms as f64;
        let n = self.branches as f64;
        match kind {
            StrategyKind::Sequential => n * d,
            StrategyKind::Parallel | StrategyKind::AllSettled => d,
            StrategyKind::RateLimited => n / self.rate_per_second() * 1000.0 + d,
        }
    }

    /// The strategy section of each demo run.
    pub fn strategy(&self, kind: StrategyKind) -> StrategySpec {
        let spec = StrategySpec::new(kind.as_str());
        if kind == StrategyKind::RateLimited {
            spec.with("per_second", self.rate_per_second())
        } else {
            spec
        }
    }

    /// The workflow: `start` (noop) fanning out to `call-1` .. `call-N` (http).
    pub fn workflow(&self, engine: &Engine, server: &DelayServer) -> Result<Arc<Workflow>, flow_engine::Error> {
        let node = |id: String, kind: &str, config: serde_json::Value| NodeSpec {
            id,
            kind: kind.to_owned(),
            config,
            description: None,
            retry: None,
            timeout_ms: Some(30_000 + self.delay_ms),
            trigger: Trigger::AllSuccess,
            continue_on_error: false,
            ..Default::default()
        };
        let mut nodes = vec![node("start".to_owned(), "noop", serde_json::Value::Null)];
        let mut edges = Vec::new();
        for i in 1..=self.branches {
            let id = format!("call-{i}");
            nodes.push(node(id.clone(), "http", json!({ "url": server.url(self.delay_ms) })));
            edges.push(EdgeSpec {
                from: "start".to_owned(),
                to: id,
                when: None,
            });
        }
        let spec = WorkflowSpec {
            name: format!("demo-{}x{}ms", self.branches, self.delay_ms),
            description: None,
            strategy: None,
            input: None,
            limits: Default::default(),
            secrets: Vec::new(),
            nodes,
            edges,
            output: None,
        };
        Ok(Arc::new(Workflow::compile(spec, engine.registry(), engine.limits())?))
    }
}

/// One strategy's line of the demo table.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoRow {
    /// The strategy.
    pub kind: StrategyKind,
    /// Median wall time of the runs, in ms.
    pub wall_ms: f64,
    /// Every run's wall time, in ms.
    pub runs_ms: Vec<f64>,
    /// The shortest possible wall time, in ms.
    pub ideal_ms: f64,
}

impl DemoRow {
    /// Wall time above the ideal, in ms.
    pub fn overhead_ms(&self) -> f64 {
        self.wall_ms - self.ideal_ms
    }
}

/// Runs the demo workflow `runs` times per strategy (after one warm-up run that opens
/// the pooled connections) and returns one row per strategy, sequential first.
pub async fn run(engine: &Engine, server: &DelayServer, shape: DemoShape, runs: usize) -> Result<Vec<DemoRow>, String> {
    let workflow = shape.workflow(engine, server).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for kind in StrategyKind::ALL {
        let strategy: Arc<dyn Strategy> = engine
            .build_strategy(&shape.strategy(kind))
            .map_err(|e| e.to_string())?;
        let mut runs_ms = Vec::with_capacity(runs);
        for i in 0..=runs {
            let report = engine
                .run(&workflow, RunOptions::new().strategy(strategy.clone()))
                .await
                .map_err(|e| e.to_string())?;
            if report.status != RunStatus::Succeeded {
                let why = report
                    .nodes
                    .iter()
                    .find_map(|(id, n)| n.error.as_ref().map(|e| format!("{id}: {e}")))
                    .unwrap_or_default();
                return Err(format!("the {kind} run {}: {why}", report.status));
            }
            if i > 0 {
                runs_ms.push(report.duration_ms);
            }
        }
        rows.push(DemoRow {
            kind,
            wall_ms: median(&runs_ms),
            runs_ms,
            ideal_ms: shape.ideal_ms(kind),
        });
    }
    Ok(rows)
}

/// The median of `values` (0 for none).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The table, in the spirit of the seed's: strategy, wall time, speedup over
/// sequential, time saved, overhead over the ideal.
pub fn render_table(shape: DemoShape, rows: &[DemoRow]) -> String {
    let sequential = rows
        .iter()
        .find(|r| r.kind == StrategyKind::Sequential)
        .map_or(0.0, |r| r.wall_ms);
    let mut out = format!(
        "{} http calls answering after {} ms each, on 127.0.0.1 (median of {} runs)\n\n",
        shape.branches,
        shape.delay_ms,
        rows.first().map_or(0, |r| r.runs_ms.len())
    );
    out.push_str(&format!(
        "{:<20} {:>10} {:>9} {:>11} {:>10} {:>13}\n",
        "strategy", "wall ms", "speedup", "saved ms", "ideal ms", "overhead ms"
    ));
    for r in rows {
        let label = match r.kind {
            StrategyKind::RateLimited => format!("rate-limited ({}/s)", fmt_rate(shape.rate_per_second())),
            k => k.to_string(),
        };
        out.push_str(&format!(
            "{:<20} {:>10.1} {:>8.2}x {:>11.1} {:>10.1} {:>+13.1}\n",
            label,
            r.wall_ms,
            if r.wall_ms > 0.0 { sequential / r.wall_ms } else { 0.0 },
            sequential - r.wall_ms,
            r.ideal_ms,
            r.overhead_ms()
        ));
    }
    out.push_str(&format!(
        "\nseed (TypeScript, Promise.all): sequential 1110 ms, parallel 306 ms, 3.63x; the limit here is {:.2}x\n",
        shape.branches as f64
    ));
    out
}

fn fmt_rate(rate: f64) -> String {
    if rate.fract() == 0.0 {
        format!("{rate:.0}")
    } else {
        format!("{rate:.2}")
    }
}
