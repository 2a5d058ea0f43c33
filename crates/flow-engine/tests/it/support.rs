//! A probe node kind that records what the engine did with it, and helpers to
//! run a workflow written in YAML.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use flow_engine::strategy::{StrategyConfig, StrategyKind};
use flow_engine::{Engine, NodeCall, NodeError, NodeKind, Report, RunOptions, Strategy, Workflow};
use serde_json::{Value, json};

/// `probe`: sleeps `config.ms` (default 0, no await at all), then fails when
/// `config.fail` is true or while the attempt is at most `config.fail_attempts`;
/// `config.permanent` makes the failure not retryable, `config.panic` panics.
/// Output: `{"id": <node id>, "attempt": n}`.
#[derive(Clone, Default)]
pub struct Probe {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    log: Mutex<Log>,
}

/// What the probe saw, in order.
#[derive(Default, Clone, Debug)]
pub struct Log {
    /// Attempts started, per node id.
    pub runs: HashMap<String, u32>,
    /// (node id, start, end or None when dropped) of every attempt, in start order.
    pub attempts: Vec<(String, Instant, Option<Instant>)>,
}

impl Probe {
    fn log(&self) -> MutexGuard<'_, Log> {
        self.shared.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most attempts ever in flight at once.
    pub fn peak(&self) -> usize {
        self.shared.peak.load(Ordering::SeqCst)
    }

    pub fn runs(&self, id: &str) -> u32 {
        self.log().runs.get(id).copied().unwrap_or(0)
    }

    /// Forgets every attempt, for the next run (none may be in flight).
    pub fn reset(&self) {
        *self.log() = Log::default();
        self.shared.peak.store(0, Ordering::SeqCst);
    }

    pub fn snapshot(&self) -> Log {
        self.log().clone()
    }
}

/// Marks one attempt in flight for as long as it lives (a cancelled attempt is dropped).
struct InFlight {
    probe: Probe,
    slot: usize,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.probe.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        let mut log = self.probe.log();
        if let Some(entry) = log.attempts.get_mut(self.slot)
            && entry.2.is_none()
        {
            entry.2 = Some(Instant::now());
        }
    }
}

#[async_trait::async_trait]
impl NodeKind for Probe {
    async fn run(&self, call: NodeCall) -> Result<Value, NodeError> {
        let id = call.node_id.to_string();
        let now = self.shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.shared.peak.fetch_max(now, Ordering::SeqCst);
        let slot = {
            let mut log = self.log();
            *log.runs.entry(id.clone()).or_default() += 1;
            log.attempts.push((id.clone(), Instant::now(), None));
            log.attempts.len() - 1
        };
        let _in_flight = InFlight {
            probe: self.clone(),
            slot,
        };
        let config = &*call.config;
        let ms = config.get("ms").and_then(Value::as_u64).unwrap_or(0);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let flag = |name: &str| config.get(name).and_then(Value::as_bool).unwrap_or(false);
        if flag("panic") {
            panic!("probe {id} panics on purpose");
        }
        let fail_attempts = config.get("fail_attempts").and_then(Value::as_u64).unwrap_or(0);
        if flag("fail") || u64::from(call.attempt) <= fail_attempts {
            let message = format!("{id} failed on attempt {}", call.attempt);
            return Err(if flag("permanent") {
                NodeError::permanent(message)
            } else {
                NodeError::new(message)
            });
        }
        Ok(json!({ "id": id, "attempt": call.attempt }))
    }
}

/// An engine with the built-in kinds and `probe`.
pub fn engine() -> (Engine, Probe) {
    let probe = Probe::default();
    (Engine::builder().register("probe", probe.clone()).build(), probe)
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
    configured(StrategyConfig::new(kind))
}

pub fn configured(config: StrategyConfig) -> Arc<dyn Strategy> {
    match config.build() {
        Ok(s) => s,
        Err(e) => panic!("{config:?}: {e}"),
    }
}

pub fn capped(kind: StrategyKind, max_concurrency: usize) -> Arc<dyn Strategy> {
    configured(StrategyConfig {
        max_concurrency: Some(max_concurrency),
        ..StrategyConfig::new(kind)
    })
}

/// Runs `body` (YAML after `name: t`) with `options`; returns the report and the probe.
pub async fn run_with(body: &str, options: RunOptions) -> (Report, Probe) {
    let (engine, probe) = engine();
    let wf = workflow(&engine, body);
    match engine.run(&wf, options).await {
        Ok(report) => (report, probe),
        Err(e) => panic!("run failed to start: {e}"),
    }
}

pub async fn run(body: &str) -> Report {
    run_with(body, RunOptions::new()).await.0
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

pub fn node<'a>(report: &'a Report, id: &str) -> &'a flow_engine::NodeReport {
    match report.node(id) {
        Some(n) => n,
        None => panic!("no node `{id}` in the report"),
    }
}

/// A node's [start, end] in ms from the run's start; panics if it never started.
pub fn interval(report: &Report, id: &str) -> (f64, f64) {
    let n = node(report, id);
    match (n.started_ms, n.finished_ms) {
        (Some(s), Some(f)) => (s, f),
        _ => panic!("`{id}` did not run: {n:?}"),
    }
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
