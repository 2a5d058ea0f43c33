//! Node kinds that misbehave on purpose, and helpers to run them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use flow_engine::strategy::{StrategyConfig, StrategyKind};
use flow_engine::{Engine, NodeCall, NodeError, NodeKind, NodeReport, Report, RunOptions, Strategy, Workflow};
use serde_json::{Value, json};

/// Counts attempts that started and attempts whose future was dropped (returned
/// or cancelled). Equal counts mean no attempt lives on in a leaked task.
#[derive(Clone, Default)]
pub struct Tally {
    started: Arc<AtomicUsize>,
    ended: Arc<AtomicUsize>,
    last_end: Arc<Mutex<Option<Instant>>>,
}

impl Tally {
    fn enter(&self) -> Guard {
        self.started.fetch_add(1, Ordering::SeqCst);
        Guard(self.clone())
    }

    pub fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    pub fn ended(&self) -> usize {
        self.ended.load(Ordering::SeqCst)
    }

    /// When the last attempt was dropped.
    pub fn last_end(&self) -> Option<Instant> {
        *self.last_end.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits (polling) until `started` attempts are in flight.
    pub async fn wait_started(&self, n: usize) {
        let since = Instant::now();
        while self.started() < n {
            assert!(
                since.elapsed() < Duration::from_secs(20),
                "only {} of {n} attempts started",
                self.started()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Held by an attempt for as long as its future lives.
struct Guard(Tally);

impl Drop for Guard {
    fn drop(&mut self) {
        *self.0.last_end.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        self.0.ended.fetch_add(1, Ordering::SeqCst);
    }
}

/// `hang`: never returns (`std::future::pending()`), holding a [`Tally`] guard.
pub struct Hang(pub Tally);

#[async_trait::async_trait]
impl NodeKind for Hang {
    async fn run(&self, _call: NodeCall) -> Result<Value, NodeError> {
        let _guard = self.0.enter();
        std::future::pending::<()>().await;
        Ok(Value::Null)
    }
}

/// `panic`: panics with `config.message`, at once (during the engine's first,
/// inline poll) or after `config.after_ms`; `config.payload: number` panics with a
/// value that is not a string.
pub struct Panic;

#[async_trait::async_trait]
impl NodeKind for Panic {
    async fn run(&self, call: NodeCall) -> Result<Value, NodeError> {
        let after = call.config.get("after_ms").and_then(Value::as_u64).unwrap_or(0);
        if after > 0 {
            tokio::time::sleep(Duration::from_millis(after)).await;
        }
        if call.config.get("payload").and_then(Value::as_str) == Some("number") {
            std::panic::panic_any(42_u32);
        }
        let message = call.config.get("message").and_then(Value::as_str).unwrap_or("boom");
        panic!("{message}");
    }
}

/// The `panic` kind's panics are expected: keep their messages and backtraces out
/// of the test output (every other panic is printed as usual).
fn quiet_deliberate_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info
                .location()
                .is_some_and(|l| l.file().ends_with("reliability/support.rs"))
            {
                default(info);
            }
        }));
    });
}

/// `mix`: checks that every value of `config.from` equals `config.n` (a node of
/// run N must only ever see run N's values), waits `config.ms` (or yields once),
/// then outputs `{"n": n, "id": id}`.
pub struct Mix;

#[async_trait::async_trait]
impl NodeKind for Mix {
    async fn run(&self, call: NodeCall) -> Result<Value, NodeError> {
        let n = call.config.get("n").cloned().unwrap_or(Value::Null);
        if let Some(Value::Array(from)) = call.config.get("from")
            && let Some(other) = from.iter().find(|v| **v != n)
        {
            return Err(NodeError::permanent(format!("cross-talk: saw {other}, expected {n}")));
        }
        match call.config.get("ms").and_then(Value::as_u64) {
            Some(ms) if ms > 0 => tokio::time::sleep(Duration::from_millis(ms)).await,
            _ => tokio::task::yield_now().await,
        }
        Ok(json!({ "n": n, "id": &*call.node_id }))
    }
}

/// An engine with the built-in kinds plus `hang` (counted by the returned tally),
/// `panic` and `mix`.
pub fn engine() -> (Engine, Tally) {
    quiet_deliberate_panics();
    let tally = Tally::default();
    let engine = Engine::builder()
        .register("hang", Hang(tally.clone()))
        .register("panic", Panic)
        .register("mix", Mix)
        .build();
    (engine, tally)
}

/// Parses YAML after `name: t`, panicking with the problems when it is invalid.
pub fn workflow(engine: &Engine, body: &str) -> Arc<Workflow> {
    let text = format!("name: t\n{body}");
    match engine.parse_yaml(&text) {
        Ok(wf) => wf,
        Err(e) => panic!("invalid workflow:\n{text}\n--- {e}"),
    }
}

pub fn strategy(kind: StrategyKind) -> Arc<dyn Strategy> {
    match StrategyConfig::new(kind).build() {
        Ok(s) => s,
        Err(e) => panic!("{kind:?}: {e}"),
    }
}

pub async fn run(engine: &Engine, wf: &Arc<Workflow>, options: RunOptions) -> Report {
    match engine.run(wf, options).await {
        Ok(report) => report,
        Err(e) => panic!("the run did not start: {e}"),
    }
}

/// `id=status` of every node, in file order.
pub fn statuses(report: &Report) -> String {
    report
        .nodes
        .iter()
        .map(|(id, n)| format!("{id}={}", n.status))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn node<'a>(report: &'a Report, id: &str) -> &'a NodeReport {
    match report.node(id) {
        Some(n) => n,
        None => panic!("no node `{id}` in the report"),
    }
}

/// A node's error, or "" when it has none.
pub fn error<'a>(report: &'a Report, id: &str) -> &'a str {
    node(report, id).error.as_deref().unwrap_or("")
}

/// Tasks alive on the current runtime (tokio's stable runtime metrics).
pub fn alive_tasks() -> usize {
    tokio::runtime::Handle::current().metrics().num_alive_tasks()
}

/// Waits until the runtime has at most `baseline` tasks alive; a task that never
/// ends fails the test.
pub async fn settle_tasks(baseline: usize) {
    let since = Instant::now();
    while alive_tasks() > baseline {
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "{} tasks alive, {baseline} before the runs: a task outlived its run",
            alive_tasks()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The process's resident memory in KiB (Linux `/proc/self/status`; 0 elsewhere).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Tests that measure memory, and tests that allocate a lot on purpose, take turns:
/// they share one process, and RSS is the process's.
pub async fn memory_turn() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}
