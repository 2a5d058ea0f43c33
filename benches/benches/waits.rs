//! Runs that wait, at scale. Not a criterion bench: it starts the real release
//! `flow` binary (`flow serve --listen 127.0.0.1:0`) on a folder holding two
//! workflows, `gate` (a `signal` node named `go`, then a `noop`) and `timer`
//! (a `wait` `until: "{{ input.at }}"`, then a `noop`), once per journal
//! (SQLite on a fresh file with `--journal-sync normal`, PostgreSQL on a
//! schema of its own), and for each measures:
//!
//! 1. memory: N runs of `gate` submitted (16 clients), parked on their signal
//!    (`flow_runs_waiting` of `/metrics` reaches N); the server's resident
//!    memory (`VmRSS`) idle, 1 s after it started, and then;
//! 2. a signal's round trip, over 200 of those runs one after another:
//!    `POST /api/v1/runs/{id}/signals/go` until the run's report says
//!    `succeeded` (an upper bound of "until the next node starts"), p50 / p95;
//! 3. N runs of `timer` whose `wait until` is the same instant (far enough
//!    ahead for all of them to be parked by then): how long after the instant
//!    none is waiting any more and none is in flight (every run finished), and
//!    how late each woke (`woke_at` of the `wait` node's output minus the
//!    instant), p50 / p99 over a sample of 500; then every one of them is
//!    checked through the API to have succeeded;
//! 4. not saturated: 100 runs of `timer` due 50 ms apart: how late each woke,
//!    p50 / p99.
//!
//! N is 10,000, 1,000 under `--quick` (`FLOW_BENCH_QUICK`). The figures go to
//! `target/flow-bench/waits.json` for `cargo xtask bench`'s summary. The
//! binary is `FLOW_BENCH_BIN`, or `target/release/flow` built with
//! `cargo build --release -p flow-cli` first. PostgreSQL is `FLOW_TEST_PG_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`); the bench fails if it
//! is not reachable. Journals are removed at the end unless
//! `FLOW_BENCH_KEEP_JOURNALS` is set. `FLOW_BENCH_WAITS_ONLY=postgres` runs
//! only the journals named (`sqlite_normal`, `postgres`).
//!
//! The port of `benches/scripts/waits_scale.py`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use flow_benches::{Backend, BenchJournals, Server, flow_binary, quick, runtime, target_dir};
use serde_json::{Value, json};

/// Clients submitting the N runs side by side.
const SUBMITTERS: usize = 16;
/// Runs whose signal's round trip is timed, one after another.
const SIGNALLED: usize = 200;
/// Timers of the saturated case whose lateness is read.
const LATE_SAMPLE: usize = 500;
/// The unsaturated case: this many timers, this many ms apart.
const SPREAD: usize = 100;
const SPREAD_GAP_MS: i64 = 50;
/// How long any one wait of the bench may take before it gives up.
const PATIENCE: Duration = Duration::from_secs(600);

/// The issue's targets. Memory added by the parked runs (SQLite only).
const TARGET_PARKED_MB: f64 = 50.0;
/// A signal's round trip, p50: SQLite, PostgreSQL.
const TARGET_SIGNAL_P50_MS_SQLITE: f64 = 20.0;
const TARGET_SIGNAL_P50_MS_POSTGRES: f64 = 40.0;
/// N timers due at once: every run finished within this long of the instant.
const TARGET_ALL_FINISHED_S: f64 = 10.0;
/// Timers not saturated: lateness p99.
const TARGET_SPREAD_P99_MS: f64 = 100.0;

const GATE_YAML: &str = r#"# The waits bench's run parked on a signal.
name: gate
nodes:
  - { id: go, kind: signal, config: { name: go } }
  - { id: after, kind: noop }
edges: [{ from: go, to: after }]
"#;

const TIMER_YAML: &str = r#"# The waits bench's run parked until an instant.
name: timer
input: { at: "2000-01-01T00:00:00Z" }
nodes:
  - { id: nap, kind: wait, config: { until: "{{ input.at }}" } }
  - { id: after, kind: noop }
edges: [{ from: nap, to: after }]
"#;

fn main() {
    let quick = quick();
    let n: usize = if quick { 1_000 } else { 10_000 };
    let bin = flow_binary();
    let rt = runtime();
    let mut journals = BenchJournals::new(&rt);
    let workflows = std::env::temp_dir().join(format!("flow-bench-waits-{}", std::process::id()));
    let made = std::fs::create_dir_all(&workflows)
        .and_then(|()| std::fs::write(workflows.join("gate.yaml"), GATE_YAML))
        .and_then(|()| std::fs::write(workflows.join("timer.yaml"), TIMER_YAML));
    if let Err(e) = made {
        panic!("cannot write the workflows into {}: {e}", workflows.display());
    }
    let client = match reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(4 * SUBMITTERS)
        // The server closes a connection idle for its --header-timeout (30 s):
        // never reuse one that old.
        .pool_idle_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()
    {
        Ok(c) => c,
        Err(e) => panic!("an HTTP client: {e}"),
    };

    // `FLOW_BENCH_WAITS_ONLY=postgres`: only these journals (to look into one).
    let only = std::env::var("FLOW_BENCH_WAITS_ONLY").ok();
    let mut results = Vec::new();
    for backend in [Backend::SqliteNormal, Backend::Postgres] {
        if only
            .as_deref()
            .is_some_and(|only| !only.split(',').any(|b| b.trim() == backend.name()))
        {
            continue;
        }
        let Some(target) = journals.target(&rt, backend, "waits") else {
            continue;
        };
        eprintln!("\n== runs that wait, journal {} ({n} runs)", backend.name());
        let server = Server::start(
            &bin,
            &workflows,
            &target,
            &["--journal-sync", "normal", "--max-connections", "2048"],
        );
        eprintln!("server pid {}, {}", server.pid(), server.base);
        let api = Api {
            client: client.clone(),
            base: server.base.clone(),
        };
        let result = rt.block_on(measure(&api, server.pid(), backend, n));
        drop(server);
        eprintln!("{}", serde_json::to_string_pretty(&result).unwrap_or_default());
        results.push(result);
    }
    drop(client);
    journals.remove(&rt);
    let _ = std::fs::remove_dir_all(&workflows);

    let out = json!({
        "quick": quick,
        "runs": n,
        "submitters": SUBMITTERS,
        "signalled": SIGNALLED,
        "spread": SPREAD,
        "spread_gap_ms": SPREAD_GAP_MS,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "backends": results,
    });
    let dir = target_dir().join("flow-bench");
    let path = dir.join("waits.json");
    let written = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, out.to_string()));
    match written {
        Ok(()) => eprintln!("\nwritten to {}", path.display()),
        Err(e) => panic!("cannot write {}: {e}", path.display()),
    }
}

/// Every phase against one server; a phase that fails says why in its place
/// (`{"error": ...}`) and the next still runs.
async fn measure(api: &Api, pid: u32, backend: Backend, n: usize) -> Value {
    let signal_target = if backend == Backend::Postgres {
        TARGET_SIGNAL_P50_MS_POSTGRES
    } else {
        TARGET_SIGNAL_P50_MS_SQLITE
    };
    let parked_target = (backend != Backend::Postgres).then_some(TARGET_PARKED_MB);

    tokio::time::sleep(Duration::from_secs(1)).await;
    let parked = park(api, pid, n).await;
    let (parked, gates, park_time) = match parked {
        Ok((value, gates, took)) => (value, gates, took),
        Err(e) => (json!({ "error": e }), Vec::new(), Duration::from_secs(10)),
    };
    eprintln!("parked: {parked}");
    let signal = round_trips(api, &gates).await.unwrap_or_else(|e| json!({ "error": e }));
    eprintln!("signal: {signal}");
    // Far enough ahead for the N timers to be parked before it: twice what
    // parking the gates took, at least 10 s.
    let lead = (2 * park_time).max(Duration::from_secs(10));
    let at_once = timers_at_once(api, n, lead)
        .await
        .unwrap_or_else(|e| json!({ "error": e }));
    eprintln!("timers at once: {at_once}");
    let spread = timers_spread(api).await.unwrap_or_else(|e| json!({ "error": e }));
    eprintln!("timers spread: {spread}");

    let num = |v: &Value, key: &str| v.get(key).and_then(Value::as_f64);
    let parked_met = parked_target.map(|t| num(&parked, "added_mb").is_some_and(|m| m <= t));
    let signal_met = num(&signal, "p50_ms").is_some_and(|p| p <= signal_target);
    let at_once_met = at_once.get("ok") == Some(&Value::Bool(true))
        && num(&at_once, "all_finished_s").is_some_and(|s| s <= TARGET_ALL_FINISHED_S);
    let spread_met = num(&spread, "late_p99_ms").is_some_and(|p| p <= TARGET_SPREAD_P99_MS);
    json!({
        "backend": backend.name(),
        "runs": n,
        "parked": parked,
        "signal": signal,
        "timers_at_once": at_once,
        "timers_spread": spread,
        "targets": {
            "parked_added_mb": parked_target,
            "signal_p50_ms": signal_target,
            "all_finished_s": TARGET_ALL_FINISHED_S,
            "spread_late_p99_ms": TARGET_SPREAD_P99_MS,
        },
        "met": {
            "parked": parked_met,
            "signal": signal_met,
            "timers_at_once": at_once_met,
            "timers_spread": spread_met,
        },
    })
}

/// Phase 1: `n` runs of `gate` parked on their signal; the server's memory
/// before and after. Gives the figures, the runs' ids and how long parking
/// them took.
async fn park(api: &Api, pid: u32, n: usize) -> Result<(Value, Vec<String>, Duration), String> {
    let idle_kb = rss_kb(pid).ok_or_else(|| format!("no VmRSS in /proc/{pid}/status"))?;
    let start = Instant::now();
    let gates = submit_many(api, "gate", n, json!({})).await?;
    let submitted = start.elapsed();
    until("every gate run parked", || async {
        Ok(api.metrics().await?.waiting >= n as f64)
    })
    .await?;
    let parked = start.elapsed();
    let parked_kb = rss_kb(pid).ok_or_else(|| format!("no VmRSS in /proc/{pid}/status"))?;
    let mb = |kb: u64| kb as f64 / 1024.0;
    let value = json!({
        "runs": n,
        "submitted_s": submitted.as_secs_f64(),
        "all_parked_s": parked.as_secs_f64(),
        "idle_rss_mb": mb(idle_kb),
        "parked_rss_mb": mb(parked_kb),
        "added_mb": mb(parked_kb) - mb(idle_kb),
    });
    Ok((value, gates, parked))
}

/// Phase 2: the signal's round trip over the first [`SIGNALLED`] gates, one
/// after another.
async fn round_trips(api: &Api, gates: &[String]) -> Result<Value, String> {
    if gates.is_empty() {
        return Err("no gate run to signal (parking them failed)".to_owned());
    }
    let mut trips = Vec::with_capacity(SIGNALLED);
    for id in gates.iter().take(SIGNALLED) {
        let sent = Instant::now();
        let (status, body) = api
            .post(&format!("/api/v1/runs/{id}/signals/go"), &json!({ "ok": true }))
            .await?;
        if status != reqwest::StatusCode::ACCEPTED {
            return Err(format!("signal to {id}: {status} {body}"));
        }
        loop {
            let report = api.run(id).await?;
            match report.get("status").and_then(Value::as_str) {
                Some("succeeded") => break,
                Some("running" | "waiting") => {}
                other => return Err(format!("run {id} after its signal: {other:?}")),
            }
            if sent.elapsed() > PATIENCE {
                return Err(format!("run {id} not succeeded {PATIENCE:?} after its signal"));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        trips.push(sent.elapsed().as_secs_f64() * 1e3);
    }
    trips.sort_by(f64::total_cmp);
    Ok(json!({
        "runs": trips.len(),
        "p50_ms": percentile(&trips, 0.5),
        "p95_ms": percentile(&trips, 0.95),
        "max_ms": percentile(&trips, 1.0),
    }))
}

/// Phase 3: `n` runs of `timer` due at the same instant, `lead` from now.
async fn timers_at_once(api: &Api, n: usize, lead: Duration) -> Result<Value, String> {
    // The runs parked before (the gates not signalled) stay parked.
    let base = api.metrics().await?.waiting;
    let at_ms = now_ms() + lead.as_millis() as i64;
    let at = format_instant(at_ms);
    let start = Instant::now();
    let timers = submit_many(api, "timer", n, json!({ "input": { "at": at } })).await?;
    let submitted = start.elapsed();
    eprintln!("{n} timers for {at} submitted in {:.1} s", submitted.as_secs_f64());
    // All parked, or the instant reached (then they were not all parked in time).
    let mut parked_before = false;
    loop {
        if api.metrics().await?.waiting >= base + n as f64 {
            parked_before = now_ms() < at_ms;
            break;
        }
        if now_ms() >= at_ms {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let parked_s = start.elapsed().as_secs_f64();
    let left = at_ms - now_ms();
    if left > 0 {
        tokio::time::sleep(Duration::from_millis(left as u64)).await;
    }
    // None waiting beyond the gates, none in flight: every timer finished.
    until("every timer run finished", || async {
        let m = api.metrics().await?;
        Ok(m.waiting <= base && m.in_flight == 0.0)
    })
    .await?;
    let all_finished_s = (now_ms() - at_ms) as f64 / 1e3;

    let step = (n / LATE_SAMPLE).max(1);
    let mut late = Vec::new();
    for id in timers.iter().step_by(step) {
        late.push(woke_at(api, id).await? - at_ms as f64);
    }
    late.sort_by(f64::total_cmp);
    // Every timer run is there, once, and succeeded.
    let statuses = api.list("timer").await?;
    let listed: HashMap<&str, &str> = statuses.iter().map(|(i, s)| (i.as_str(), s.as_str())).collect();
    let succeeded = timers
        .iter()
        .filter(|id| listed.get(id.as_str()) == Some(&"succeeded"))
        .count();
    let ok = parked_before && succeeded == n && statuses.len() == n;
    Ok(json!({
        "runs": n,
        "instant": at,
        "lead_s": lead.as_secs_f64(),
        "submitted_s": submitted.as_secs_f64(),
        "all_parked_s": parked_s,
        "parked_before_instant": parked_before,
        "all_finished_s": all_finished_s,
        "sample": late.len(),
        "late_p50_ms": percentile(&late, 0.5),
        "late_p99_ms": percentile(&late, 0.99),
        "late_max_ms": percentile(&late, 1.0),
        "listed": statuses.len(),
        "succeeded": succeeded,
        "ok": ok,
    }))
}

/// Phase 4: [`SPREAD`] runs of `timer`, due [`SPREAD_GAP_MS`] apart from 3 s on.
async fn timers_spread(api: &Api) -> Result<Value, String> {
    let first = now_ms() + 3_000;
    let mut runs = Vec::with_capacity(SPREAD);
    for i in 0..SPREAD {
        let at_ms = first + i as i64 * SPREAD_GAP_MS;
        let body = json!({ "input": { "at": format_instant(at_ms) } });
        runs.push((api.submit("timer", &body).await?, at_ms));
    }
    let submitted_by = now_ms();
    let mut late = Vec::with_capacity(SPREAD);
    for (id, at_ms) in &runs {
        late.push(woke_at(api, id).await? - *at_ms as f64);
    }
    late.sort_by(f64::total_cmp);
    Ok(json!({
        "runs": SPREAD,
        "gap_ms": SPREAD_GAP_MS,
        // Before the first was due: else the first were late from the start.
        "submitted_before_first_due": submitted_by < first,
        "late_p50_ms": percentile(&late, 0.5),
        "late_p99_ms": percentile(&late, 0.99),
        "late_max_ms": percentile(&late, 1.0),
    }))
}

/// When run `id`'s `nap` woke (ms since the epoch), once the run succeeded.
async fn woke_at(api: &Api, id: &str) -> Result<f64, String> {
    let start = Instant::now();
    loop {
        let report = api.run(id).await?;
        match report.get("status").and_then(Value::as_str) {
            Some("succeeded") => {
                let woke = report
                    .pointer("/nodes/nap/output/woke_at")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("run {id}: no nodes.nap.output.woke_at in {report}"))?;
                return parse_instant(woke)
                    .map(|ms| ms as f64)
                    .ok_or_else(|| format!("run {id}: woke_at `{woke}` is not an RFC 3339 instant"));
            }
            Some("running" | "waiting") if start.elapsed() < PATIENCE => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return Err(format!("run {id}: {other:?}")),
        }
    }
}

/// `n` runs of `workflow` with `body`, submitted by [`SUBMITTERS`] clients;
/// their ids in the order of the clients' turns.
async fn submit_many(api: &Api, workflow: &str, n: usize, body: Value) -> Result<Vec<String>, String> {
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..SUBMITTERS {
        let share = n / SUBMITTERS + usize::from(c < n % SUBMITTERS);
        let api = api.clone();
        let workflow = workflow.to_owned();
        let body = body.clone();
        tasks.spawn(async move {
            let mut ids = Vec::with_capacity(share);
            for _ in 0..share {
                ids.push(api.submit(&workflow, &body).await?);
            }
            Ok::<_, String>(ids)
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(ids) => all.extend(ids?),
            Err(e) => return Err(format!("a submitting task: {e}")),
        }
    }
    Ok(all)
}

// ---------------------------------------------------------------------------
// The API

/// The server's HTTP API.
#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    /// `http://127.0.0.1:PORT`.
    base: String,
}

/// What `/metrics` says of the runs.
struct Metrics {
    waiting: f64,
    in_flight: f64,
}

impl Api {
    /// `GET path`: status and JSON body; tried twice when the request fails
    /// (a keep-alive connection the server closed meanwhile).
    async fn get(&self, path: &str) -> Result<(reqwest::StatusCode, String), String> {
        let url = format!("{}{path}", self.base);
        let mut tried = false;
        loop {
            let sent = self.client.get(&url).send().await;
            let response = match sent {
                Ok(r) => r,
                Err(e) if !tried => {
                    eprintln!("GET {url}: {e}; trying again");
                    tried = true;
                    continue;
                }
                Err(e) => return Err(format!("GET {url}: {e}")),
            };
            let status = response.status();
            let text = response.text().await.map_err(|e| format!("GET {url}: {e}"))?;
            return Ok((status, text));
        }
    }

    /// `POST path` with a JSON body: status and JSON body (`null` when empty).
    async fn post(&self, path: &str, body: &Value) -> Result<(reqwest::StatusCode, Value), String> {
        let url = format!("{}{path}", self.base);
        let response = self
            .client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| format!("POST {url}: {e}"))?;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok((status, value))
    }

    /// Submits a run of `workflow`: its id.
    async fn submit(&self, workflow: &str, body: &Value) -> Result<String, String> {
        let (status, answer) = self.post(&format!("/api/v1/workflows/{workflow}/runs"), body).await?;
        if status != reqwest::StatusCode::CREATED {
            return Err(format!("submit {workflow}: {status} {answer}"));
        }
        answer
            .get("run_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("submit {workflow}: 201 without a run_id: {answer}"))
    }

    /// Run `id`'s report.
    async fn run(&self, id: &str) -> Result<Value, String> {
        let (status, text) = self.get(&format!("/api/v1/runs/{id}")).await?;
        if status != reqwest::StatusCode::OK {
            return Err(format!("GET run {id}: {status} {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("GET run {id}: not JSON ({e}): {text}"))
    }

    /// `flow_runs_waiting` and `flow_runs_in_flight` of `/metrics`.
    async fn metrics(&self) -> Result<Metrics, String> {
        let (status, text) = self.get("/metrics").await?;
        if status != reqwest::StatusCode::OK {
            return Err(format!("GET /metrics: {status} {text}"));
        }
        let gauge = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok())
        };
        Ok(Metrics {
            // Absent until the first count: none.
            waiting: gauge("flow_runs_waiting").unwrap_or(0.0),
            in_flight: gauge("flow_runs_in_flight").unwrap_or(0.0),
        })
    }

    /// Every run of `workflow` the server lists: id and status.
    async fn list(&self, workflow: &str) -> Result<Vec<(String, String)>, String> {
        let mut runs = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/runs?workflow={workflow}&limit=500");
            if let Some(c) = &cursor {
                path.push_str("&cursor=");
                path.push_str(c);
            }
            let (status, text) = self.get(&path).await?;
            if status != reqwest::StatusCode::OK {
                return Err(format!("GET {path}: {status} {text}"));
            }
            let page: Value = serde_json::from_str(&text).map_err(|e| format!("GET {path}: not JSON ({e})"))?;
            for run in page.get("runs").and_then(Value::as_array).into_iter().flatten() {
                let field = |k: &str| run.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
                runs.push((field("run_id"), field("status")));
            }
            cursor = page.get("next_cursor").and_then(Value::as_str).map(str::to_owned);
            if cursor.is_none() {
                return Ok(runs);
            }
        }
    }
}

/// Polls `check` every 50 ms until it holds, at most [`PATIENCE`].
async fn until<F, Fut>(what: &str, check: F) -> Result<(), String>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<bool, String>>,
{
    let start = Instant::now();
    while !check().await? {
        if start.elapsed() > PATIENCE {
            return Err(format!("{what}: not within {PATIENCE:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// The `p` quantile (nearest rank) of sorted figures.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// A process's resident memory in kB (`VmRSS` of `/proc/PID/status`).
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

// ---------------------------------------------------------------------------
// Instants (RFC 3339, UTC, to the ms): the engine's own format and parser

use flow_engine::journal::now_ms;

/// `2026-12-07T09:00:00.123Z` of ms since the epoch.
fn format_instant(ms: i64) -> String {
    flow_core::rfc3339(ms)
}

/// Ms since the epoch of an RFC 3339 instant, as the server writes them.
fn parse_instant(text: &str) -> Option<i64> {
    text.trim().parse::<jiff::Timestamp>().ok().map(|t| t.as_millisecond())
}

// ---------------------------------------------------------------------------
// The server
