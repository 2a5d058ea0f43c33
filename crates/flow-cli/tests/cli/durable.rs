//! Durable runs through the `flow` binary, every case on SQLite and on
//! PostgreSQL (`FLOW_TEST_PG_URL`, each case in a schema of its own; these
//! tests fail, never skip, when PostgreSQL cannot be reached): `flow resume`
//! after a SIGKILL at many points of a run, `--retry-failed`, two resumes
//! racing for one run, bad journal targets, `flow runs list` and `flow runs show`.
//!
//! A server in the test process answers the workflows' `http` nodes and counts
//! each request's `Idempotency-Key`, which says what ran how many times.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::{BufRead, Read};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::any;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::{Out, command, read_json, tempdir, write};

// ---------------------------------------------------------------------------
// The server

/// One request the server received: the name in its path and its key.
#[derive(Debug, Clone)]
struct Seen {
    name: String,
    key: Option<String>,
    at: Instant,
}

/// Every request the server received, in order; and when `/hold` requests ended.
#[derive(Clone, Default)]
pub(crate) struct Log(Arc<Mutex<Vec<Seen>>>, Arc<Mutex<Vec<Ended>>>);

/// A `/hold` request that ended: answered, or dropped by its client.
#[derive(Debug, Clone)]
pub(crate) struct Ended {
    pub(crate) name: String,
    pub(crate) at: Instant,
    pub(crate) answered: bool,
}

impl Log {
    /// Records a request; how many requests with its key there have been, this one included.
    fn push(&self, name: &str, headers: &HeaderMap) -> usize {
        let key = headers
            .get("idempotency-key")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = 1 + all.iter().filter(|s| key.is_some() && s.key == key).count();
        all.push(Seen {
            name: name.to_owned(),
            key,
            at: Instant::now(),
        });
        n
    }

    fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many requests named `name` came.
    pub(crate) fn count(&self, name: &str) -> usize {
        self.all().iter().filter(|s| s.name == name).count()
    }

    /// The keys of the requests named `name`, in order.
    pub(crate) fn keys_of(&self, name: &str) -> Vec<Option<String>> {
        self.all()
            .into_iter()
            .filter(|s| s.name == name)
            .map(|s| s.key)
            .collect()
    }

    /// When the requests whose name starts with `prefix` came, in order.
    pub(crate) fn times_of(&self, prefix: &str) -> Vec<Instant> {
        self.all()
            .into_iter()
            .filter(|s| s.name.starts_with(prefix))
            .map(|s| s.at)
            .collect()
    }

    /// When the request named `name` came (its first).
    pub(crate) fn time_of(&self, name: &str) -> Option<Instant> {
        self.all().into_iter().find(|s| s.name == name).map(|s| s.at)
    }

    /// The `/hold` requests that ended.
    pub(crate) fn ended(&self) -> Vec<Ended> {
        self.1.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The run ids of the keys seen, in order of first sight.
    pub(crate) fn of_run_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for seen in self.all() {
            if let Some((run_id, _)) = seen.key.as_deref().and_then(|k| k.split_once(':'))
                && !ids.iter().any(|i| i == run_id)
            {
                ids.push(run_id.to_owned());
            }
        }
        ids
    }

    /// The keys of run `run_id`'s requests, with how many times each came.
    pub(crate) fn of_run(&self, run_id: &str) -> BTreeMap<String, usize> {
        let prefix = format!("{run_id}:");
        let mut keys = BTreeMap::new();
        for seen in self.all() {
            if let Some(key) = seen.key.filter(|k| k.starts_with(&prefix)) {
                *keys.entry(key).or_default() += 1;
            }
        }
        keys
    }
}

/// An HTTP server on a free port of 127.0.0.1, on a runtime of its own:
/// - `/echo/{name}?ms=N` waits N ms, then answers 200 with
///   `{"name", "method", "got": <the request's JSON body>}`;
/// - `/flaky/{name}?ms=N` answers 500 to the first request with a key, 200 (as
///   `/echo`) to the next ones;
/// - `/hold/{name}?ms=N` is `/echo` that also notes when it ended, answered
///   or dropped by its client.
pub(crate) struct Server {
    pub(crate) base: String,
    pub(crate) log: Log,
    _runtime: tokio::runtime::Runtime,
}

impl Server {
    pub(crate) fn start() -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the test server");
        let log = Log::default();
        let app = Router::new()
            .route("/echo/{name}", any(echo))
            .route("/flaky/{name}", any(flaky))
            .route("/hold/{name}", any(hold))
            .with_state(log.clone());
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a free port on 127.0.0.1");
        let addr = listener.local_addr().expect("the server's address");
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Server {
            base: format!("http://{addr}"),
            log,
            _runtime: runtime,
        }
    }
}

type Wait = Query<BTreeMap<String, u64>>;

async fn answer(name: &str, method: &Method, query: &BTreeMap<String, u64>, body: &Bytes) -> Value {
    if let Some(ms) = query.get("ms") {
        tokio::time::sleep(Duration::from_millis(*ms)).await;
    }
    let got: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    json!({ "name": name, "method": method.as_str(), "got": got })
}

async fn echo(
    State(log): State<Log>,
    UrlPath(name): UrlPath<String>,
    Query(query): Wait,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Json<Value> {
    log.push(&name, &headers);
    Json(answer(&name, &method, &query, &body).await)
}

async fn hold(
    State(log): State<Log>,
    UrlPath(name): UrlPath<String>,
    Query(query): Wait,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Json<Value> {
    struct Noted {
        log: Log,
        name: String,
        answered: bool,
    }
    impl Drop for Noted {
        fn drop(&mut self) {
            self.log.1.lock().unwrap_or_else(|e| e.into_inner()).push(Ended {
                name: std::mem::take(&mut self.name),
                at: Instant::now(),
                answered: self.answered,
            });
        }
    }
    log.push(&name, &headers);
    let mut noted = Noted {
        log: log.clone(),
        name: name.clone(),
        answered: false,
    };
    let answer = answer(&name, &method, &query, &body).await;
    noted.answered = true;
    Json(answer)
}

async fn flaky(
    State(log): State<Log>,
    UrlPath(name): UrlPath<String>,
    Query(query): Wait,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let nth = log.push(&name, &headers);
    let answer = answer(&name, &method, &query, &body).await;
    if nth == 1 {
        (StatusCode::INTERNAL_SERVER_ERROR, "not yet").into_response()
    } else {
        Json(answer).into_response()
    }
}

// ---------------------------------------------------------------------------
// Journals

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// A journal of one case's own: a SQLite file in a temporary folder, or a fresh
/// PostgreSQL schema (dropped at the end, kept when the test fails).
pub(crate) struct Journal {
    pub(crate) target: String,
    schema: Option<String>,
    _dir: Option<TempDir>,
}

fn small_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

impl Journal {
    pub(crate) fn new(backend: Backend, name: &str) -> Journal {
        match backend {
            Backend::Sqlite => {
                let dir = tempdir();
                Journal {
                    target: dir.path().join("runs.db").display().to_string(),
                    schema: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                static NEXT: AtomicU64 = AtomicU64::new(0);
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos());
                let schema = format!(
                    "t_{name}_{}_{}_{}",
                    std::process::id(),
                    nanos % 1_000_000,
                    NEXT.fetch_add(1, Ordering::Relaxed)
                );
                let base = flow_journal::test_pg_url();
                let target = small_runtime()
                    .block_on(flow_journal::in_schema(&base, &schema))
                    .unwrap_or_else(|e| {
                        panic!(
                            "PostgreSQL is needed by this test and cannot be used at {base} \
                             (start it, or set FLOW_TEST_PG_URL to one that trusts this user): {e}"
                        )
                    });
                Journal {
                    target,
                    schema: Some(schema),
                    _dir: None,
                }
            }
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        let Some(schema) = &self.schema else { return };
        if std::thread::panicking() {
            eprintln!("kept PostgreSQL schema {schema} of a failed test");
            return;
        }
        small_runtime().block_on(async {
            let Ok((client, connection)) =
                tokio_postgres::connect(&flow_journal::test_pg_url(), tokio_postgres::NoTls).await
            else {
                return;
            };
            tokio::spawn(connection);
            let _ = client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .await;
        });
    }
}

// ---------------------------------------------------------------------------
// Running `flow`

/// No `flow` process of these tests may take longer.
pub(crate) const DEADLINE: Duration = Duration::from_secs(60);

pub(crate) fn spawn<S: AsRef<OsStr>>(args: &[S]) -> Child {
    command()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run flow: {e}"))
}

/// Waits for `child` (killed past [`DEADLINE`]) and collects what it printed.
pub(crate) fn collect(mut child: Child) -> Out {
    fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > DEADLINE => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("flow did not finish in {DEADLINE:?}");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("waiting for flow: {e}"),
        }
    };
    Out {
        code: status.code(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

pub(crate) fn flow<S: AsRef<OsStr>>(args: &[S]) -> Out {
    collect(spawn(args))
}

/// `flow run FILE --journal TARGET --quiet --report -`.
fn run(file: &Path, journal: &Journal) -> Out {
    flow(&[
        "run",
        &file.display().to_string(),
        "--journal",
        &journal.target,
        "--quiet",
        "--report",
        "-",
    ])
}

/// `flow resume RUN_ID --journal TARGET --quiet --report -` and more flags.
pub(crate) fn resume(run_id: &str, journal: &Journal, more: &[&str]) -> Out {
    let mut args = vec![
        "resume",
        run_id,
        "--journal",
        &journal.target,
        "--quiet",
        "--report",
        "-",
    ];
    args.extend(more);
    flow(&args)
}

/// `flow runs list --journal TARGET --json` with `more` flags, parsed.
fn list(journal: &Journal, more: &[&str]) -> Vec<Value> {
    list_if_any(journal, more).unwrap_or_else(|| panic!("there is no journal at {}", journal.target))
}

/// As [`list`]; `None` when there is no journal there yet (a SQLite file
/// that no run has created).
fn list_if_any(journal: &Journal, more: &[&str]) -> Option<Vec<Value>> {
    let mut args = vec!["runs", "list", "--journal", &journal.target, "--json"];
    args.extend(more);
    let out = flow(&args);
    if out.code == Some(2) && out.stderr.contains("there is no journal at") {
        return None;
    }
    assert_eq!(out.code, Some(0), "flow runs list {more:?}: {out:?}");
    match serde_json::from_str(&out.stdout) {
        Ok(Value::Array(rows)) => Some(rows),
        _ => panic!("flow runs list --json printed no array: {out:?}"),
    }
}

/// The status `flow runs list` gives run `run_id`.
fn listed_status(journal: &Journal, run_id: &str) -> String {
    let rows = list(journal, &[]);
    let row = rows
        .iter()
        .find(|r| r["run_id"] == run_id)
        .unwrap_or_else(|| panic!("run {run_id} is not listed: {rows:?}"));
    row["status"].as_str().unwrap_or_default().to_owned()
}

/// `flow runs show RUN_ID --report -`, parsed.
fn show(journal: &Journal, run_id: &str) -> Value {
    let out = flow(&["runs", "show", run_id, "--journal", &journal.target, "--report", "-"]);
    assert_eq!(out.code, Some(0), "flow runs show {run_id}: {out:?}");
    out.report()
}

/// The run id of the `flow: run <id> journaled in <target>` line, if printed.
pub(crate) fn printed_run_id(stderr: &str) -> Option<String> {
    stderr.lines().find_map(|line| {
        let rest = line.strip_prefix("flow: run ")?;
        let (id, _) = rest.split_once(" journaled in ")?;
        Some(id.to_owned())
    })
}

pub(crate) fn run_id_of(report: &Value) -> String {
    report["run_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no run_id in the report: {report}"))
        .to_owned()
}

pub(crate) fn status_of(report: &Value, node: &str) -> String {
    report["nodes"][node]["status"].as_str().unwrap_or_default().to_owned()
}

/// An `http` node's output without what changes from run to run (its headers,
/// such as `date`, and its duration): `{status, body}`, also inside arrays.
pub(crate) fn normalize(output: &Value) -> Value {
    match output {
        Value::Object(map) if map.contains_key("duration_ms") && map.contains_key("headers") => {
            json!({ "status": map["status"], "body": map["body"] })
        }
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

/// What must be the same in two runs of one workflow: every node's status, its
/// output (normalized) and its items' counts.
pub(crate) fn shape(report: &Value) -> BTreeMap<String, Value> {
    let Some(nodes) = report["nodes"].as_object() else {
        panic!("a report without nodes: {report}");
    };
    nodes
        .iter()
        .map(|(id, node)| {
            let value = json!({
                "status": node["status"],
                "output": normalize(&node["output"]),
                "items": node.get("items").cloned().unwrap_or(Value::Null),
            });
            (id.clone(), value)
        })
        .collect()
}

// ---------------------------------------------------------------------------
// 1. SIGKILL at many points of a run, then `flow resume`

/// Chains and parallel branches of POSTs (and a PUT, a PATCH, a DELETE), a
/// for_each of 8 POSTs two at a time, a join, and two more after it: about 1 s.
const CRASH: &str = r#"name: crash
strategy: { kind: parallel }
input: { items: [ant, bee, cat, dog, eel, fox, gnu, hen] }
nodes:
  - { id: start, kind: http, config: { method: POST, url: "BASE/echo/start?ms=80", body: { step: start } } }
  - { id: b1, kind: http, config: { method: POST, url: "BASE/echo/b1?ms=100", body: { after: "{{ nodes.start.output.body.name }}" } } }
  - { id: b2, kind: http, config: { method: PUT, url: "BASE/echo/b2?ms=250", body: { after: "{{ nodes.b1.output.body.name }}" } } }
  - { id: b3, kind: http, config: { method: POST, url: "BASE/echo/b3?ms=60" } }
  - { id: c1, kind: http, config: { method: POST, url: "BASE/echo/c1?ms=300", body: [1, 2, 3] } }
  - { id: c2, kind: http, config: { method: PATCH, url: "BASE/echo/c2?ms=80", body: { after: "{{ nodes.c1.output.body.got }}" } } }
  - id: each
    kind: http
    for_each: "{{ input.items }}"
    max_concurrency: 2
    config:
      method: POST
      url: "BASE/echo/item-{{ index }}?ms={{ 120 + 30 * (index % 3) }}"
      body: { item: "{{ item }}", index: "{{ index }}" }
  - id: join
    kind: transform
    config:
      output:
        b: "{{ nodes.b3.output.body }}"
        c: "{{ nodes.c2.output.body.got }}"
        items: "{{ nodes.each.output | map(attribute='body') | map(attribute='got') | list }}"
  - { id: f1, kind: http, config: { method: POST, url: "BASE/echo/f1?ms=100", body: "{{ nodes.join.output }}" } }
  - { id: f2, kind: http, config: { method: DELETE, url: "BASE/echo/f2?ms=80" } }
edges:
  - { from: start, to: b1 }
  - { from: b1, to: b2 }
  - { from: b2, to: b3 }
  - { from: start, to: c1 }
  - { from: c1, to: c2 }
  - { from: b1, to: each }
  - { from: b3, to: join }
  - { from: c2, to: join }
  - { from: each, to: join }
  - { from: join, to: f1 }
  - { from: f1, to: f2 }
"#;

/// The crash workflow's `http` nodes that are not for_each nodes.
const PLAIN: [&str; 8] = ["start", "b1", "b2", "b3", "c1", "c2", "f1", "f2"];
const ITEMS: usize = 8;
/// Kill points per backend, and how many run at once.
const POINTS: u32 = 32;
const WORKERS: usize = 4;

/// Every key a run of the crash workflow sends: `<run_id>:<node>` and
/// `<run_id>:each:<index>`.
fn crash_keys(run_id: &str) -> BTreeSet<String> {
    PLAIN
        .iter()
        .map(|node| format!("{run_id}:{node}"))
        .chain((0..ITEMS).map(|i| format!("{run_id}:each:{i}")))
        .collect()
}

/// The keys of what the journal holds as succeeded: plain nodes, and items.
fn settled_keys(report: &Value, run_id: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for node in PLAIN {
        if status_of(report, node) == "succeeded" {
            keys.insert(format!("{run_id}:{node}"));
        }
    }
    for item in report["nodes"]["each"]["item_runs"].as_array().into_iter().flatten() {
        if item["status"] == "succeeded" {
            let index = item["index"]
                .as_u64()
                .unwrap_or_else(|| panic!("item without index: {item}"));
            keys.insert(format!("{run_id}:each:{index}"));
        }
    }
    keys
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    /// Killed before the run was in the journal.
    NotStarted,
    /// The run had finished (or its end was journaled) before the kill.
    Finished,
    /// Interrupted, then resumed.
    Interrupted {
        /// Plain nodes and items the journal held as succeeded.
        settled: usize,
        /// Whether some of the for_each's items (not all) had settled.
        partial_items: bool,
        /// Requests sent twice: in flight at the kill, sent again.
        repeated: usize,
    },
}

struct Crash<'a> {
    backend: Backend,
    file: &'a Path,
    server: &'a Server,
    reference: &'a BTreeMap<String, Value>,
}

impl Crash<'_> {
    /// Starts a journaled run, SIGKILLs it `delay` after it started, resumes
    /// it, and checks the result and what the server received.
    fn kill_point(&self, n: u32, delay: Duration) -> (Outcome, Option<String>) {
        let journal = Journal::new(self.backend, &format!("crash_{n}"));
        let mut child = command()
            .args(["run".as_ref(), self.file.as_os_str()])
            .args(["--journal", &journal.target, "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run flow: {e}"));
        // The delay counts from the run's start, the `flow: run <id> journaled`
        // line: the process's own start-up varies a lot on a busy machine.
        let pipe = child.stderr.take();
        let (started, start) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            for line in pipe.map(std::io::BufReader::new).into_iter().flat_map(|p| p.lines()) {
                let Ok(line) = line else { break };
                if line.starts_with("flow: run ") {
                    let _ = started.send(());
                }
                text.push_str(&line);
                text.push('\n');
            }
            text
        });
        let _ = start.recv_timeout(Duration::from_secs(20));
        std::thread::sleep(delay);
        let status = match child.try_wait() {
            Ok(Some(status)) => status,
            _ => {
                let _ = child.kill(); // SIGKILL
                child.wait().unwrap_or_else(|e| panic!("waiting for flow: {e}"))
            }
        };
        let stderr = reader.join().unwrap_or_default();
        let killed = status.code().is_none();
        let what = format!("{:?} kill point {n} at {delay:?}", self.backend);
        assert!(killed || status.code() == Some(0), "{what}: {status}\n{stderr}");

        let rows = list_if_any(&journal, &[]).unwrap_or_default();
        let row = match rows.as_slice() {
            [] => {
                assert!(killed, "{what}: the finished run is not listed\n{stderr}");
                return (Outcome::NotStarted, None);
            }
            [row] => row,
            _ => panic!("{what}: one run, not {rows:?}"),
        };
        let run_id = row["run_id"].as_str().unwrap_or_default().to_owned();
        if let Some(printed) = printed_run_id(&stderr) {
            assert_eq!(printed, run_id, "{what}");
        }
        let what = format!("{what}, run {run_id}");
        let expected = crash_keys(&run_id);
        if row["status"] == "succeeded" {
            // Finished before the kill, or killed once its end was journaled.
            let keys = self.server.log.of_run(&run_id);
            assert_eq!(keys, expected.iter().map(|k| (k.clone(), 1)).collect(), "{what}");
            return (Outcome::Finished, Some(run_id));
        }
        assert!(killed, "{what}: {row}");
        assert_eq!(
            row["status"], "interrupted",
            "{what}: a killed run is interrupted at once: {row}"
        );

        // What the journal holds, before resuming.
        let before = show(&journal, &run_id);
        assert_eq!(before["status"], "interrupted", "{what}: {before}");
        let settled = settled_keys(&before, &run_id);
        for (id, node) in shape(&before) {
            if node["status"] == "succeeded" {
                assert_eq!(node, self.reference[&id], "{what}: {id} as journaled");
            } else {
                let status = node["status"].as_str().unwrap_or_default();
                assert!(["pending", "running"].contains(&status), "{what}: {id}: {node}");
            }
        }
        let items_settled = settled.iter().filter(|k| k.contains(":each:")).count();
        let partial_items = status_of(&before, "each") != "succeeded" && (1..ITEMS).contains(&items_settled);

        // What the server had received of the run before the resume (the run's
        // process is dead and two processes have run since: nothing more comes).
        let sent_before = self.server.log.of_run(&run_id);
        for key in &settled {
            assert_eq!(
                sent_before.get(key),
                Some(&1),
                "{what}: {key} settled, so it was sent once"
            );
        }

        let out = resume(&run_id, &journal, &[]);
        assert_eq!(out.code, Some(0), "{what}: {out:?}");
        let after = out.report();
        assert_eq!(after["run_id"], run_id.as_str(), "{what}");
        assert_eq!(after["status"], "succeeded", "{what}: {after}");
        assert_eq!(&shape(&after), self.reference, "{what}: the resumed run's report");

        let keys = self.server.log.of_run(&run_id);
        assert_eq!(
            keys.keys().cloned().collect::<BTreeSet<_>>(),
            expected,
            "{what}: every request, each with its own key"
        );
        for (key, count) in &keys {
            assert!(*count <= 2, "{what}: {key} received {count} times");
            // The resume sends exactly what had not settled, once.
            let by_resume = count - sent_before.get(key).copied().unwrap_or(0);
            if settled.contains(key) {
                assert_eq!(
                    by_resume, 0,
                    "{what}: {key} had succeeded before the kill, and was sent again"
                );
            } else {
                // Sent again by the resume. (A request the killed process had
                // written may reach the server after `sent_before` was read, so
                // the split between the two processes is not exact; the total
                // is: at most twice, checked above.)
                assert!(
                    *count >= 1 && by_resume <= 2,
                    "{what}: {key} had not settled: the resume sends it (received {count} times)"
                );
            }
        }
        let repeated = keys.values().filter(|c| **c == 2).count();
        assert_eq!(listed_status(&journal, &run_id), "succeeded", "{what}");
        let outcome = Outcome::Interrupted {
            settled: settled.len(),
            partial_items,
            repeated,
        };
        (outcome, Some(run_id))
    }
}

fn kill_and_resume_at_many_points(backend: Backend) {
    let test_started = Instant::now();
    let server = Server::start();
    let dir = tempdir();
    let file = write(&dir, "crash.yaml", CRASH.replace("BASE", &server.base));

    // The reference: one run without a kill.
    let journal = Journal::new(backend, "crash_ref");
    let started = Instant::now();
    let out = run(&file, &journal);
    let wall = started.elapsed();
    assert_eq!(out.code, Some(0), "{out:?}");
    let report = out.report();
    assert_eq!(report["status"], "succeeded", "{report}");
    let run_id = run_id_of(&report);
    assert_eq!(
        printed_run_id(&out.stderr).as_deref(),
        Some(run_id.as_str()),
        "{}",
        out.stderr
    );
    let reference = shape(&report);
    assert_eq!(
        reference["each"]["items"],
        json!({ "total": 8, "succeeded": 8, "failed": 0, "cancelled": 0 })
    );
    assert_eq!(
        reference["join"]["output"]["items"][7],
        json!({ "item": "hen", "index": 7 })
    );
    assert_eq!(
        server.log.of_run(&run_id),
        crash_keys(&run_id).into_iter().map(|k| (k, 1)).collect(),
        "the reference run sends every request once"
    );
    drop(journal);

    // Kill points evenly spread over the run, from its start to its length.
    let length = Duration::from_secs_f64(report["duration_ms"].as_f64().unwrap_or(1000.0) / 1000.0);
    let first = Duration::from_millis(20);
    let step = length.saturating_sub(first) / (POINTS - 1);
    let points: Vec<Duration> = (0..POINTS).map(|i| first + step * i).collect();
    let crash = Crash {
        backend,
        file: &file,
        server: &server,
        reference: &reference,
    };
    let next = AtomicUsize::new(0);
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(delay) = points.get(i) else { break };
                    let outcome = crash.kill_point(i as u32, *delay);
                    outcomes
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((*delay, outcome));
                }
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap_or_else(|e| e.into_inner());
    outcomes.sort_by_key(|(delay, _)| *delay);
    assert_eq!(outcomes.len(), POINTS as usize);

    // Every request carried a key of a run the test knows.
    let mut runs: BTreeSet<String> = outcomes.iter().filter_map(|(_, (_, id))| id.clone()).collect();
    runs.insert(run_id);
    for seen in server.log.all() {
        let key = seen
            .key
            .unwrap_or_else(|| panic!("a request to {} without an Idempotency-Key", seen.name));
        let run = key.split(':').next().unwrap_or_default();
        assert!(runs.contains(run), "{key}: not a key of the test's runs");
    }

    let count = |f: &dyn Fn(&Outcome) -> bool| outcomes.iter().filter(|(_, (o, _))| f(o)).count();
    let interrupted = count(&|o| matches!(o, Outcome::Interrupted { .. }));
    let partial = count(&|o| {
        matches!(
            o,
            Outcome::Interrupted {
                partial_items: true,
                ..
            }
        )
    });
    let midway = count(&|o| matches!(o, Outcome::Interrupted { settled: 1.., .. }));
    let repeated = count(&|o| matches!(o, Outcome::Interrupted { repeated: 1.., .. }));
    let finished = count(&|o| *o == Outcome::Finished);
    let not_started = count(&|o| *o == Outcome::NotStarted);
    eprintln!(
        "{backend:?}: reference run {wall:?}; {POINTS} kill points from {first:?} after its start to {:?}: {interrupted} \
         interrupted ({midway} after something settled, {partial} with the for_each partly done, {repeated} \
         with a request sent again), {not_started} before the run began, {finished} after it finished; {:?} in all",
        points[points.len() - 1],
        test_started.elapsed()
    );
    let table: Vec<String> = outcomes.iter().map(|(d, (o, _))| format!("{d:?}: {o:?}")).collect();
    assert!(
        interrupted >= 20,
        "too few kill points interrupted the run:\n{}",
        table.join("\n")
    );
    assert!(
        midway >= 15,
        "too few kill points came after something settled:\n{}",
        table.join("\n")
    );
    assert!(
        partial >= 3,
        "too few kill points hit the for_each midway:\n{}",
        table.join("\n")
    );
}

#[test]
#[cfg(target_os = "linux")]
fn sqlite_sigkill_at_32_points_then_resume_sends_nothing_settled_again() {
    kill_and_resume_at_many_points(Backend::Sqlite);
}

#[test]
#[cfg(target_os = "linux")]
fn postgres_sigkill_at_32_points_then_resume_sends_nothing_settled_again() {
    kill_and_resume_at_many_points(Backend::Postgres);
}

// ---------------------------------------------------------------------------
// 2. --retry-failed

const RETRY: &str = r#"name: retry
strategy: { kind: all-settled }
nodes:
  - { id: ok1, kind: http, config: { method: POST, url: "BASE/echo/ok1", body: { n: 1 } } }
  - { id: ok2, kind: http, config: { method: POST, url: "BASE/echo/ok2", body: "{{ nodes.ok1.output.body.got }}" } }
  - { id: bad1, kind: http, config: { method: POST, url: "BASE/flaky/bad1?ms=20" } }
  - { id: after1, kind: http, config: { method: POST, url: "BASE/echo/after1", body: { from: "{{ nodes.bad1.output.body.name }}" } } }
  - { id: bad2, kind: http, config: { method: PUT, url: "BASE/flaky/bad2?ms=40" } }
  - { id: after2, kind: http, config: { method: POST, url: "BASE/echo/after2", body: { from: "{{ nodes.bad2.output.body.name }}" } } }
edges:
  - { from: ok1, to: ok2 }
  - { from: bad1, to: after1 }
  - { from: bad2, to: after2 }
"#;

fn retry_failed_runs_only_what_failed(backend: Backend) {
    let server = Server::start();
    let dir = tempdir();
    let file = write(&dir, "retry.yaml", RETRY.replace("BASE", &server.base));
    let journal = Journal::new(backend, "retry");

    let out = run(&file, &journal);
    assert_eq!(out.code, Some(1), "{out:?}");
    let report = out.report();
    let run_id = run_id_of(&report);
    assert_eq!(report["status"], "failed");
    for (node, status) in [
        ("ok1", "succeeded"),
        ("ok2", "succeeded"),
        ("bad1", "failed"),
        ("after1", "upstream_failed"),
        ("bad2", "failed"),
        ("after2", "upstream_failed"),
    ] {
        assert_eq!(status_of(&report, node), status, "{node}: {report}");
    }
    assert!(
        report["nodes"]["bad1"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("500")),
        "{report}"
    );
    assert_eq!(listed_status(&journal, &run_id), "failed");
    assert_eq!(show(&journal, &run_id), report, "runs show of the failed run");

    // Without --retry-failed a finished run is not resumed; nothing is sent.
    let sent = server.log.all().len();
    let out = resume(&run_id, &journal, &[]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains("finished (failed)") && out.stderr.contains("--retry-failed"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, "");
    assert_eq!(server.log.all().len(), sent);

    let out = resume(&run_id, &journal, &["--retry-failed"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let retried = out.report();
    assert_eq!(retried["run_id"], run_id.as_str());
    assert_eq!(retried["status"], "succeeded", "{retried}");
    for node in ["ok1", "ok2", "bad1", "after1", "bad2", "after2"] {
        assert_eq!(status_of(&retried, node), "succeeded", "{node}: {retried}");
    }
    // What had succeeded is kept, outputs included.
    for node in ["ok1", "ok2"] {
        assert_eq!(retried["nodes"][node], report["nodes"][node], "{node}");
    }
    assert_eq!(
        retried["nodes"]["after1"]["output"]["body"]["got"],
        json!({ "from": "bad1" })
    );
    assert_eq!(
        retried["nodes"]["after2"]["output"]["body"]["got"],
        json!({ "from": "bad2" })
    );
    let expected: BTreeMap<String, usize> = [
        ("ok1", 1),
        ("ok2", 1),
        ("bad1", 2),
        ("after1", 1),
        ("bad2", 2),
        ("after2", 1),
    ]
    .into_iter()
    .map(|(node, n)| (format!("{run_id}:{node}"), n))
    .collect();
    assert_eq!(server.log.of_run(&run_id), expected);
    assert_eq!(server.log.all().len(), 8, "no request without the run's keys");
    assert_eq!(listed_status(&journal, &run_id), "succeeded");
    assert_eq!(show(&journal, &run_id), retried, "runs show of the retried run");

    // A succeeded run: nothing to resume or retry.
    for more in [&[][..], &["--retry-failed"][..]] {
        let out = resume(&run_id, &journal, more);
        assert_eq!(out.code, Some(2), "{more:?}: {out:?}");
        assert!(out.stderr.contains("succeeded"), "{more:?}: {}", out.stderr);
        assert_eq!(out.stdout, "");
    }
    assert_eq!(server.log.all().len(), 8);
}

#[test]
fn sqlite_retry_failed_runs_only_what_failed() {
    retry_failed_runs_only_what_failed(Backend::Sqlite);
}

#[test]
fn postgres_retry_failed_runs_only_what_failed() {
    retry_failed_runs_only_what_failed(Backend::Postgres);
}

// ---------------------------------------------------------------------------
// 3. A held run, and two resumes racing

const HOLD: &str = r#"name: hold
nodes:
  - { id: first, kind: http, config: { method: POST, url: "BASE/echo/first" } }
  - { id: slow, kind: delay, config: { ms: 2500 } }
  - { id: last, kind: http, config: { method: POST, url: "BASE/echo/last" } }
edges:
  - { from: first, to: slow }
  - { from: slow, to: last }
"#;

fn one_resume_wins(backend: Backend) {
    let server = Server::start();
    let dir = tempdir();
    let file = write(&dir, "hold.yaml", HOLD.replace("BASE", &server.base));
    let journal = Journal::new(backend, "race");

    let mut child = command()
        .args(["run".as_ref(), file.as_os_str()])
        .args(["--journal", &journal.target, "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run flow: {e}"));
    // Wait until `first` is journaled as succeeded (`slow` is running then).
    let waiting = Instant::now();
    let run_id = loop {
        assert!(
            waiting.elapsed() < Duration::from_secs(20),
            "the run never reached `slow`"
        );
        if let Some([row]) = list_if_any(&journal, &[]).as_deref() {
            let run_id = row["run_id"].as_str().unwrap_or_default().to_owned();
            if status_of(&show(&journal, &run_id), "first") == "succeeded" {
                break run_id;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };

    // A live process holds the run.
    assert_eq!(listed_status(&journal, &run_id), "running");
    let out = resume(&run_id, &journal, &[]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains("is held") && out.stderr.contains(&format!("process {}", child.id())),
        "{}",
        out.stderr
    );

    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    assert_eq!(listed_status(&journal, &run_id), "interrupted");

    // Two resumes at once: one takes the run, the other is refused.
    let racers = [
        spawn(&[
            "resume",
            &run_id,
            "--journal",
            &journal.target,
            "--quiet",
            "--report",
            "-",
        ]),
        spawn(&[
            "resume",
            &run_id,
            "--journal",
            &journal.target,
            "--quiet",
            "--report",
            "-",
        ]),
    ];
    let mut outs: Vec<Out> = racers.into_iter().map(collect).collect();
    outs.sort_by_key(|o| o.code);
    let [winner, loser] = [&outs[0], &outs[1]];
    assert_eq!((winner.code, loser.code), (Some(0), Some(2)), "{outs:?}");
    assert!(
        loser.stderr.contains("is held") || loser.stderr.contains("taken over"),
        "{}",
        loser.stderr
    );
    assert_eq!(loser.stdout, "");
    let report = winner.report();
    assert_eq!(report["status"], "succeeded", "{report}");
    assert_eq!(status_of(&report, "last"), "succeeded");
    let expected: BTreeMap<String, usize> = [format!("{run_id}:first"), format!("{run_id}:last")]
        .into_iter()
        .map(|k| (k, 1))
        .collect();
    assert_eq!(server.log.of_run(&run_id), expected);
    assert_eq!(listed_status(&journal, &run_id), "succeeded");
}

#[test]
#[cfg(target_os = "linux")]
fn sqlite_a_held_run_is_refused_and_of_two_resumes_one_wins() {
    one_resume_wins(Backend::Sqlite);
}

#[test]
#[cfg(target_os = "linux")]
fn postgres_a_held_run_is_refused_and_of_two_resumes_one_wins() {
    one_resume_wins(Backend::Postgres);
}

// ---------------------------------------------------------------------------
// 4. Bad journal targets

#[test]
fn bad_journal_targets_are_refused_before_anything_runs() {
    let server = Server::start();
    let dir = tempdir();
    let file = write(
        &dir,
        "one.yaml",
        format!(
            "name: one\nnodes:\n  - {{ id: post, kind: http, config: {{ method: POST, url: \"{}/echo/post\" }} }}\n",
            server.base
        ),
    );
    let missing = dir.path().join("missing").join("runs.db");
    let plain = write(&dir, "plain", "a file, not a folder\n");
    let under_file = plain.join("runs.db");
    let garbage_text = "this is not a SQLite database\n".repeat(200);
    let garbage = write(&dir, "garbage.db", &garbage_text);
    let refused = "postgres://postgres@127.0.0.1:1/test";
    // The target, why `flow run` refuses it, and why the other commands do.
    let cases = [
        (missing.display().to_string(), "cannot open", "there is no journal"),
        (under_file.display().to_string(), "cannot open", "there is no journal"),
        (garbage.display().to_string(), "not a SQLite file", "not a SQLite file"),
        (refused.to_owned(), "refused", "refused"),
    ];
    let file = file.display().to_string();
    for (target, reason, reason_reading) in &cases {
        let by_flag = flow(&["run", &file, "--journal", target, "--report", "-"]);
        let mut by_env = command();
        by_env.env("FLOW_JOURNAL", target).args(["run", &file, "--report", "-"]);
        let by_env = collect(
            by_env
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run flow: {e}")),
        );
        for out in [by_flag, by_env] {
            assert_eq!(out.code, Some(2), "{target}: {out:?}");
            assert!(
                out.stderr.contains("--journal") && out.stderr.contains(target.as_str()),
                "{target}: {}",
                out.stderr
            );
            assert!(out.stderr.contains(reason), "{target}: {}", out.stderr);
            assert!(!out.stderr.contains("run succeeded"), "{target}: {}", out.stderr);
            assert_eq!(out.stdout, "", "{target}: no report");
        }
        // The other commands refuse it too.
        for args in [
            vec!["runs", "list", "--journal", target],
            vec![
                "runs",
                "show",
                "0190b0c4-7d1e-7a3b-9c2d-5e6f7a8b9c0d",
                "--journal",
                target,
            ],
            vec!["resume", "0190b0c4-7d1e-7a3b-9c2d-5e6f7a8b9c0d", "--journal", target],
        ] {
            let out = flow(&args);
            assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
            assert!(
                out.stderr.contains("--journal") && out.stderr.contains(reason_reading),
                "{args:?}: {}",
                out.stderr
            );
        }
    }
    assert_eq!(server.log.all().len(), 0, "nothing ran");
    assert!(!dir.path().join("missing").exists(), "no folder was created");
    assert_eq!(
        std::fs::read_to_string(&garbage).unwrap_or_default(),
        garbage_text,
        "the file that is not a journal is left as it was"
    );
}

// ---------------------------------------------------------------------------
// 5. flow runs list, flow runs show

const ALPHA: &str = "name: alpha
nodes:
  - { id: a, kind: transform, config: { output: { n: 1 } } }
  - { id: b, kind: delay, config: { ms: 10 } }
  - { id: c, kind: noop }
  - { id: never, kind: noop }
edges: [{ from: a, to: b }, { from: b, to: c }, { from: a, to: never, when: 'false' }]
";

const BETA: &str = "name: beta
nodes:
  - { id: a, kind: noop }
  - { id: b, kind: fail, config: { message: 'on purpose' } }
  - { id: c, kind: noop }
edges: [{ from: a, to: b }, { from: b, to: c }]
";

/// Whether `text` looks like `2026-12-01T13:32:03.456Z`.
fn is_rfc3339(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

fn runs_list_and_show(backend: Backend) {
    let dir = tempdir();
    let alpha = write(&dir, "alpha.yaml", ALPHA);
    let beta = write(&dir, "beta.yaml", BETA);
    let journal = Journal::new(backend, "list");
    match backend {
        // Reading runs does not create a journal.
        Backend::Sqlite => {
            assert_eq!(list_if_any(&journal, &[]), None);
            assert!(
                !Path::new(&journal.target).exists(),
                "runs list created {}",
                journal.target
            );
        }
        Backend::Postgres => assert_eq!(list(&journal, &[]), Vec::<Value>::new(), "a new journal has no runs"),
    }

    // alpha, beta, alpha: each writes its report to a file.
    let mut runs = Vec::new();
    for (i, (file, code)) in [(&alpha, 0), (&beta, 1), (&alpha, 0)].into_iter().enumerate() {
        let report_path = dir.path().join(format!("report-{i}.json"));
        let out = flow(&[
            "run",
            &file.display().to_string(),
            "--journal",
            &journal.target,
            "--journal-sync",
            if i == 0 { "normal" } else { "full" },
            "--report",
            &report_path.display().to_string(),
        ]);
        assert_eq!(out.code, Some(code), "{out:?}");
        let report = read_json(&report_path);
        let run_id = run_id_of(&report);
        assert_eq!(
            printed_run_id(&out.stderr).as_deref(),
            Some(run_id.as_str()),
            "{}",
            out.stderr
        );
        runs.push((run_id, report));
        std::thread::sleep(Duration::from_millis(5));
    }
    let ids = |rows: &[Value]| -> Vec<String> {
        rows.iter()
            .map(|r| r["run_id"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let id = |i: usize| runs[i].0.clone();

    let rows = list(&journal, &[]);
    assert_eq!(ids(&rows), vec![id(2), id(1), id(0)], "newest first");
    for (row, (run_id, report)) in rows.iter().zip(runs.iter().rev()) {
        assert_eq!(row["run_id"], run_id.as_str());
        assert_eq!(row["workflow"], report["workflow"], "{row}");
        assert_eq!(row["status"], report["status"], "{row}");
        let started = row["started_at"].as_str().unwrap_or_default();
        assert!(is_rfc3339(started), "started_at: {row}");
        assert!(
            row["finished_at"].as_str().is_some_and(is_rfc3339),
            "finished_at: {row}"
        );
        let duration = row["duration_ms"].as_f64().unwrap_or(-1.0);
        assert!(duration >= 0.0, "duration_ms: {row}");
        let reported = report["duration_ms"].as_f64().unwrap_or(-1.0);
        assert!(
            (duration - reported).abs() < 1.0,
            "duration_ms {duration} vs the report's {reported}"
        );
        // Counts by status, from the report.
        let mut counts = serde_json::Map::new();
        for node in report["nodes"].as_object().into_iter().flat_map(|m| m.values()) {
            let status = node["status"].as_str().unwrap_or_default().to_owned();
            let n = counts.get(&status).and_then(Value::as_u64).unwrap_or(0);
            counts.insert(status, json!(n + 1));
        }
        assert_eq!(row["nodes"], Value::Object(counts), "{row}");
    }
    let started: Vec<&str> = rows
        .iter()
        .map(|r| r["started_at"].as_str().unwrap_or_default())
        .collect();
    assert!(started.windows(2).all(|w| w[0] >= w[1]), "{started:?}");
    assert_eq!(
        rows[1]["nodes"],
        json!({ "succeeded": 1, "failed": 1, "upstream_failed": 1 })
    );
    assert_eq!(rows[0]["nodes"], json!({ "succeeded": 3, "skipped": 1 }));

    assert_eq!(ids(&list(&journal, &["--status", "failed"])), vec![id(1)]);
    assert_eq!(ids(&list(&journal, &["--status", "succeeded"])), vec![id(2), id(0)]);
    assert_eq!(ids(&list(&journal, &["--status", "interrupted"])), Vec::<String>::new());
    assert_eq!(ids(&list(&journal, &["--workflow", "alpha"])), vec![id(2), id(0)]);
    assert_eq!(ids(&list(&journal, &["--workflow", "beta"])), vec![id(1)]);
    assert_eq!(ids(&list(&journal, &["--workflow", "gamma"])), Vec::<String>::new());
    assert_eq!(
        ids(&list(&journal, &["--workflow", "beta", "--status", "succeeded"])),
        Vec::<String>::new()
    );
    assert_eq!(ids(&list(&journal, &["--limit", "2"])), vec![id(2), id(1)]);
    assert_eq!(
        ids(&list(&journal, &["--workflow", "alpha", "--limit", "1"])),
        vec![id(2)]
    );

    // The table names every run.
    let out = flow(&["runs", "list", "--journal", &journal.target]);
    assert_eq!(out.code, Some(0), "{out:?}");
    for (run_id, _) in &runs {
        assert!(out.stdout.contains(run_id.as_str()), "{}", out.stdout);
    }

    // `runs show` rebuilds the very report `run --report` wrote; to a file too.
    for (run_id, report) in &runs {
        assert_eq!(&show(&journal, run_id), report, "runs show {run_id}");
    }
    let shown = dir.path().join("shown.json");
    let out = flow(&[
        "runs",
        "show",
        &id(1),
        "--journal",
        &journal.target,
        "--report",
        &shown.display().to_string(),
    ]);
    assert_eq!(out.code, Some(0), "a failed run is shown with exit 0: {out:?}");
    assert_eq!(read_json(&shown), runs[1].1);
    let out = flow(&["runs", "show", "no-such-run", "--journal", &journal.target]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("no run `no-such-run`"), "{}", out.stderr);

    // FLOW_JOURNAL stands for --journal.
    let mut cmd = command();
    cmd.env("FLOW_JOURNAL", &journal.target)
        .args(["runs", "list", "--json"]);
    let out = collect(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run flow: {e}")),
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    let rows: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(rows.as_array().map(Vec::len), Some(3), "{out:?}");
}

#[test]
fn sqlite_runs_list_filters_newest_first_and_show_gives_the_report() {
    runs_list_and_show(Backend::Sqlite);
}

#[test]
fn postgres_runs_list_filters_newest_first_and_show_gives_the_report() {
    runs_list_and_show(Backend::Postgres);
}
