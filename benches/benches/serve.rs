//! `flow serve` under load. Not a criterion bench: it starts the real release
//! `flow` binary (`flow serve --listen 127.0.0.1:0`) on a folder holding one
//! workflow of 3 nodes that never wait (two `transform`/`noop` nodes feeding a
//! `transform`: what is measured is orchestration, the journal and HTTP), once
//! per journal (SQLite `--journal-sync full`, SQLite `normal`, PostgreSQL on a
//! schema of its own), and for each:
//!
//! 1. one client submitting one run after another for 1 s: a submit's latency
//!    on a server with nothing else to do;
//! 2. 64 clients (tasks of this process sharing one HTTP/1.1 keep-alive client)
//!    submitting in a loop for 10 s (3 s under `--quick`) after a warm-up of
//!    1 s: runs per second (201s a second) and the p50, p99 and max submit
//!    latency; and how much CPU the server, this process and the rest of the
//!    machine (the database) used meanwhile;
//! 3. waits until every run submitted is `succeeded`, paging through
//!    `GET /api/v1/runs`: none lost (every id a 201 gave is listed), none twice
//!    (ids unique, and the journal lists as many runs as there were 201s);
//! 4. a burst: 1,000 submits fired at once, all must be 201; then the same
//!    check over every run of the server.
//!
//! The figures go to `target/flow-bench/serve.json` for `cargo xtask bench`'s
//! summary. The binary is `FLOW_BENCH_BIN`, or `target/release/flow` built
//! with `cargo build --release -p flow-cli` first. PostgreSQL is
//! `FLOW_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`); the
//! bench fails if it is not reachable. Journals are removed at the end unless
//! `FLOW_BENCH_KEEP_JOURNALS` is set. `FLOW_BENCH_SERVE_ONLY=sqlite_full,postgres`
//! runs only the journals named (`sqlite_full`, `sqlite_normal`, `postgres`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flow_benches::{Backend, BenchJournals, Server, flow_binary, quick, runtime, target_dir};
use serde_json::{Value, json};

/// Concurrent clients of the load.
const CLIENTS: usize = 64;
/// Submits of the burst.
const BURST: usize = 1_000;
/// The targets of the load.
const TARGET_RUNS_PER_S: f64 = 2_000.0;
const TARGET_P99_MS: f64 = 20.0;
/// How long the runs submitted may take to finish after the last submit.
const PATIENCE: Duration = Duration::from_secs(180);

const WORKFLOW: &str = "three";
const WORKFLOW_YAML: &str = r#"# The serve bench's workflow: two nodes feeding a third, none waiting.
name: three
input: { n: 0 }
nodes:
  - { id: a, kind: transform, config: { output: { n: "{{ input.n }}" } } }
  - { id: b, kind: noop }
  - { id: c, kind: transform, config: { output: { n: "{{ nodes.a.output.n }}" } } }
edges:
  - { from: a, to: c }
  - { from: b, to: c }
"#;

fn main() {
    let quick = quick();
    let seconds = if quick { 3 } else { 10 };
    let warmup = Duration::from_secs(1);
    let bin = flow_binary();
    let rt = runtime();
    let mut journals = BenchJournals::new(&rt);
    let workflows = std::env::temp_dir().join(format!("flow-bench-serve-{}", std::process::id()));
    let made =
        std::fs::create_dir_all(&workflows).and_then(|()| std::fs::write(workflows.join("three.yaml"), WORKFLOW_YAML));
    if let Err(e) = made {
        panic!("cannot write the workflow into {}: {e}", workflows.display());
    }
    let client = match reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(2 * BURST)
        .pool_idle_timeout(Duration::from_secs(600))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()
    {
        Ok(c) => c,
        Err(e) => panic!("an HTTP client: {e}"),
    };

    // `FLOW_BENCH_SERVE_ONLY=postgres,sqlite_full`: only these journals (to look into one).
    let only = std::env::var("FLOW_BENCH_SERVE_ONLY").ok();
    let mut results = Vec::new();
    for backend in [Backend::SqliteFull, Backend::SqliteNormal, Backend::Postgres] {
        if only
            .as_deref()
            .is_some_and(|only| !only.split(',').any(|b| b.trim() == backend.name()))
        {
            continue;
        }
        let Some(target) = journals.target(&rt, backend, "serve") else {
            continue;
        };
        let sync = if backend == Backend::SqliteNormal {
            "normal"
        } else {
            "full"
        };
        eprintln!(
            "\n== flow serve, journal {} ({seconds} s of {CLIENTS} clients)",
            backend.name()
        );
        let server = Server::start(&bin, &workflows, &target, &["--journal-sync", sync]);
        eprintln!("server pid {}, {}", server.pid(), server.base);
        let result = rt.block_on(measure(&client, &server, backend, warmup, Duration::from_secs(seconds)));
        drop(server);
        eprintln!("{}", serde_json::to_string_pretty(&result).unwrap_or_default());
        results.push(result);
    }
    drop(client);
    journals.remove(&rt);
    let _ = std::fs::remove_dir_all(&workflows);

    let out = json!({
        "quick": quick,
        "clients": CLIENTS,
        "seconds": seconds,
        "warmup_seconds": warmup.as_secs_f64(),
        "burst": BURST,
        "target_runs_per_second": TARGET_RUNS_PER_S,
        "target_p99_ms": TARGET_P99_MS,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "backends": results,
    });
    let dir = target_dir().join("flow-bench");
    let path = dir.join("serve.json");
    let written = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, out.to_string()));
    match written {
        Ok(()) => eprintln!("\nwritten to {}", path.display()),
        Err(e) => panic!("cannot write {}: {e}", path.display()),
    }
}

/// Every phase against one server.
async fn measure(
    client: &reqwest::Client,
    server: &Server,
    backend: Backend,
    warmup: Duration,
    duration: Duration,
) -> Value {
    let submit_url = format!("{}/api/v1/workflows/{WORKFLOW}/runs", server.base);
    let mut all_ids = Vec::new();

    let single = load(client, &submit_url, 1, Duration::ZERO, Duration::from_secs(1)).await;
    all_ids.extend(single.ids.iter().cloned());

    let cpu_before = Cpu::now(server.pid());
    let loaded = load(client, &submit_url, CLIENTS, warmup, duration).await;
    let cpu = cpu_before.since(server.pid());
    let load_end = Instant::now();
    all_ids.extend(loaded.ids.iter().cloned());
    let check = settle(client, &server.base, &all_ids, load_end).await;

    let burst = burst(client, &submit_url, BURST).await;
    let burst_end = Instant::now();
    all_ids.extend(burst.ids.iter().cloned());
    let burst_check = settle(client, &server.base, &all_ids, burst_end).await;

    let runs_per_second = loaded.latencies.len() as f64 / loaded.measured.as_secs_f64();
    let p99 = percentile_ms(&loaded.latencies, 0.99);
    let load_ok = loaded.errors == 0 && check.get("ok") == Some(&Value::Bool(true));
    let burst_ok = burst.created == BURST && burst_check.get("ok") == Some(&Value::Bool(true));
    json!({
        "backend": backend.name(),
        "single_client": {
            "created": single.latencies.len(),
            "errors": single.errors,
            "p50_ms": percentile_ms(&single.latencies, 0.5),
            "p99_ms": percentile_ms(&single.latencies, 0.99),
        },
        "load": {
            "created": loaded.ids.len(),
            "created_measured": loaded.latencies.len(),
            "measured_seconds": loaded.measured.as_secs_f64(),
            "errors": loaded.errors,
            "first_errors": loaded.first_errors,
            "runs_per_second": runs_per_second,
            "p50_ms": percentile_ms(&loaded.latencies, 0.5),
            "p90_ms": percentile_ms(&loaded.latencies, 0.9),
            "p99_ms": p99,
            "max_ms": percentile_ms(&loaded.latencies, 1.0),
            "cpu": cpu,
            "check": check,
            "ok": load_ok,
            "target_met": load_ok && runs_per_second >= TARGET_RUNS_PER_S && p99 <= TARGET_P99_MS,
        },
        "burst": {
            "submitted": BURST,
            "created": burst.created,
            "errors": BURST - burst.created,
            "first_errors": burst.first_errors,
            "wall_ms": burst.wall.as_secs_f64() * 1e3,
            "p50_ms": percentile_ms(&burst.latencies, 0.5),
            "p99_ms": percentile_ms(&burst.latencies, 0.99),
            "max_ms": percentile_ms(&burst.latencies, 1.0),
            "check": burst_check,
            "ok": burst_ok,
        },
    })
}

// ---------------------------------------------------------------------------
// The server

// ---------------------------------------------------------------------------
// Submitting

/// One submit: the run's id, or what went wrong.
async fn submit(client: &reqwest::Client, url: &str, n: u64) -> Result<String, String> {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(format!(r#"{{"input":{{"n":{n}}}}}"#))
        .send()
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| format!("body: {e}"))?;
    if status != reqwest::StatusCode::CREATED {
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        return Err(format!("{status}: {text}"));
    }
    let value: Value = serde_json::from_slice(&body).map_err(|e| format!("201 with a body that is not JSON: {e}"))?;
    value
        .get("run_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("201 without a run_id: {value}"))
}

/// What a load gave.
#[derive(Default)]
struct Load {
    /// Every run id a 201 gave (warm-up included).
    ids: Vec<String>,
    /// The latency of each 201 that started in the measured window, sorted.
    latencies: Vec<Duration>,
    /// From the end of the warm-up to the last answer.
    measured: Duration,
    errors: usize,
    first_errors: Vec<String>,
}

/// `clients` tasks submitting one run after another for `warmup + duration`;
/// the figures count the submits started after the warm-up.
async fn load(client: &reqwest::Client, url: &str, clients: usize, warmup: Duration, duration: Duration) -> Load {
    let start = Instant::now();
    let from = start + warmup;
    let end = from + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let client = client.clone();
        let url = url.to_owned();
        tasks.spawn(async move {
            let mut out = Load::default();
            let mut n = (c as u64) << 32;
            let mut last = start;
            loop {
                let t = Instant::now();
                if t >= end {
                    break;
                }
                let result = submit(&client, &url, n).await;
                last = Instant::now();
                n += 1;
                match result {
                    Ok(id) => {
                        if t >= from {
                            out.latencies.push(last - t);
                        }
                        out.ids.push(id);
                    }
                    Err(e) => {
                        out.errors += 1;
                        if out.first_errors.len() < 3 {
                            out.first_errors.push(e);
                        }
                    }
                }
            }
            (out, last)
        });
    }
    let mut all = Load::default();
    let mut last = from;
    while let Some(joined) = tasks.join_next().await {
        let Ok((out, finished)) = joined else {
            panic!("a client task panicked")
        };
        all.ids.extend(out.ids);
        all.latencies.extend(out.latencies);
        all.errors += out.errors;
        all.first_errors.extend(out.first_errors);
        last = last.max(finished);
    }
    all.first_errors.truncate(5);
    all.latencies.sort_unstable();
    all.measured = last.saturating_duration_since(from).max(Duration::from_millis(1));
    all
}

/// What a burst gave.
struct Burst {
    ids: Vec<String>,
    created: usize,
    latencies: Vec<Duration>,
    wall: Duration,
    first_errors: Vec<String>,
}

/// `n` submits fired at once, each a task of its own.
async fn burst(client: &reqwest::Client, url: &str, n: usize) -> Burst {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let client = client.clone();
        let url = url.to_owned();
        tasks.spawn(async move {
            let t = Instant::now();
            let result = submit(&client, &url, (1 << 48) + i as u64).await;
            (result, t.elapsed())
        });
    }
    let mut out = Burst {
        ids: Vec::with_capacity(n),
        created: 0,
        latencies: Vec::with_capacity(n),
        wall: Duration::ZERO,
        first_errors: Vec::new(),
    };
    while let Some(joined) = tasks.join_next().await {
        let Ok((result, took)) = joined else {
            panic!("a burst task panicked")
        };
        match result {
            Ok(id) => {
                out.ids.push(id);
                out.created += 1;
                out.latencies.push(took);
            }
            Err(e) if out.first_errors.len() < 5 => out.first_errors.push(e),
            Err(_) => {}
        }
    }
    out.wall = start.elapsed();
    out.latencies.sort_unstable();
    out
}

/// The `p` quantile (nearest rank) of sorted latencies, in ms.
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

// ---------------------------------------------------------------------------
// Checking

/// Every run the server lists: id and status, and how many ids came twice.
async fn list_all(client: &reqwest::Client, base: &str) -> Result<(HashMap<String, String>, usize), String> {
    let mut runs = HashMap::new();
    let mut repeated = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/v1/runs?limit=500");
        if let Some(c) = &cursor {
            url.push_str("&cursor=");
            url.push_str(c);
        }
        let response = client.get(&url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
        let status = response.status();
        let page: Value = response.json().await.map_err(|e| format!("GET {url}: {e}"))?;
        if !status.is_success() {
            return Err(format!("GET {url}: {status} {page}"));
        }
        for run in page.get("runs").and_then(Value::as_array).into_iter().flatten() {
            let id = run.get("run_id").and_then(Value::as_str).unwrap_or_default();
            let status = run.get("status").and_then(Value::as_str).unwrap_or_default();
            if runs.insert(id.to_owned(), status.to_owned()).is_some() {
                repeated += 1;
            }
        }
        cursor = page.get("next_cursor").and_then(Value::as_str).map(str::to_owned);
        if cursor.is_none() {
            return Ok((runs, repeated));
        }
    }
}

/// Waits (up to [`PATIENCE`]) until every run of `ids` has ended, then checks
/// that they all succeeded and that the server lists exactly these runs, each
/// once. `since`: the last submit, for how long the runs took to finish.
async fn settle(client: &reqwest::Client, base: &str, ids: &[String], since: Instant) -> Value {
    let submitted: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let deadline = since + PATIENCE;
    loop {
        let listed = list_all(client, base).await;
        let now = Instant::now();
        let (runs, repeated) = match listed {
            Ok(listed) => listed,
            Err(e) if now < deadline => {
                eprintln!("listing runs: {e}; trying again");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(e) => return json!({ "ok": false, "error": e }),
        };
        let ended = submitted
            .iter()
            .filter(|id| runs.get(**id).is_some_and(|s| s != "running"))
            .count();
        if ended < submitted.len() && now < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let succeeded = submitted
            .iter()
            .filter(|id| runs.get(**id).map(String::as_str) == Some("succeeded"))
            .count();
        let missing = submitted.iter().filter(|id| !runs.contains_key(**id)).count();
        let extra = runs.keys().filter(|id| !submitted.contains(id.as_str())).count();
        let mut other: Vec<String> = submitted
            .iter()
            .filter_map(|id| {
                let status = runs.get(*id)?;
                (status != "succeeded").then(|| format!("{id}: {status}"))
            })
            .collect();
        other.sort();
        other.truncate(5);
        let ok = succeeded == ids.len() && runs.len() == ids.len() && repeated == 0;
        return json!({
            "ok": ok,
            "created": ids.len(),
            "unique_ids": submitted.len(),
            "listed": runs.len(),
            "listed_twice": repeated,
            "succeeded": succeeded,
            "missing": missing,
            "unexpected": extra,
            "not_succeeded": other,
            "finished_within_ms": now.saturating_duration_since(since).as_secs_f64() * 1e3,
        });
    }
}

// ---------------------------------------------------------------------------
// CPU

/// CPU time so far: the server's, this process's, and the machine's (busy and
/// in all), in clock ticks.
struct Cpu {
    at: Instant,
    server: u64,
    bench: u64,
    busy: u64,
}

/// Clock ticks a second (`getconf CLK_TCK`; 100 on Linux).
const TICKS: f64 = 100.0;

impl Cpu {
    fn now(server: u32) -> Cpu {
        let busy = machine_busy_ticks();
        Cpu {
            at: Instant::now(),
            server: process_ticks(&PathBuf::from(format!("/proc/{server}/stat"))),
            bench: process_ticks(Path::new("/proc/self/stat")),
            busy,
        }
    }

    /// The cores each used since `self`, on average.
    fn since(&self, server: u32) -> Value {
        let now = Cpu::now(server);
        let wall = now.at.duration_since(self.at).as_secs_f64();
        let cores = |ticks: u64| ticks as f64 / TICKS / wall;
        let server = cores(now.server.saturating_sub(self.server));
        let bench = cores(now.bench.saturating_sub(self.bench));
        let busy = cores(now.busy.saturating_sub(self.busy));
        json!({
            "server_cores": server,
            "clients_cores": bench,
            "rest_cores": (busy - server - bench).max(0.0),
            "machine_busy_cores": busy,
        })
    }
}

/// utime + stime of a `/proc/PID/stat`, 0 when unreadable.
fn process_ticks(path: &Path) -> u64 {
    let Ok(text) = std::fs::read_to_string(path) else {
        return 0;
    };
    // Fields after the command's closing parenthesis: state is field 3, so
    // utime (14) and stime (15) are the 12th and 13th.
    let Some((_, rest)) = text.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

/// The clock ticks the machine's cores were busy (`/proc/stat`'s `cpu` line).
fn machine_busy_ticks() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let ticks: Vec<u64> = line.split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest is in user).
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    total.saturating_sub(idle)
}
