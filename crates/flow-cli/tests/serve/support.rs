//! Starting `flow serve` on a free port of its own, talking to it over HTTP,
//! reading its event streams, and a counting HTTP server for the workflows'
//! `http` nodes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use reqwest::Method;
use serde_json::{Value, json};
use tempfile::TempDir;

/// How long a server may take to say where it listens.
const START: Duration = Duration::from_secs(20);
/// How long any wait of these tests may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// Files

/// A PostgreSQL schema of a test's own, dropped at the end (kept, and named,
/// when the test failed). The test fails when PostgreSQL cannot be reached.
pub struct Schema(String);

impl Schema {
    /// A fresh schema named after `prefix` and this process, and the journal
    /// URL whose tables live in it.
    pub async fn fresh(prefix: &str) -> (String, Schema) {
        let name = format!("{prefix}_{}_{}", std::process::id(), flow_journal::now_ms() % 1_000_000);
        let url = flow_journal::in_schema(&flow_journal::test_pg_url(), &name)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL is needed by this test and is not reachable: {e}"));
        (url, Schema(name))
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept PostgreSQL schema {} of a failed test", self.0);
            return;
        }
        let schema = self.0.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async {
                if let Ok((client, connection)) =
                    tokio_postgres::connect(&flow_journal::test_pg_url(), tokio_postgres::NoTls).await
                {
                    tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A temporary folder with a `workflows/` folder and a SQLite journal path,
/// kept across restarts of the server.
pub struct Dirs {
    _dir: TempDir,
    pub workflows: PathBuf,
    pub journal: PathBuf,
}

impl Dirs {
    pub fn new() -> Dirs {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary folder: {e}"));
        let workflows = dir.path().join("workflows");
        std::fs::create_dir(&workflows).unwrap_or_else(|e| panic!("{}: {e}", workflows.display()));
        let journal = dir.path().join("runs.db");
        Dirs {
            _dir: dir,
            workflows,
            journal,
        }
    }

    /// Dirs holding `files` (file name, text) in `workflows/`.
    pub fn with(files: &[(&str, &str)]) -> Dirs {
        let dirs = Dirs::new();
        for (name, text) in files {
            dirs.add(name, text);
        }
        dirs
    }

    /// Writes a workflow file.
    pub fn add(&self, name: &str, text: &str) {
        let path = self.workflows.join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

// ---------------------------------------------------------------------------
// The server

/// `flow` with a clean environment: no token, journal or log level of the
/// machine running the tests.
pub fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flow"));
    cmd.env_remove("RUST_LOG")
        .env_remove("FLOW_TOKEN")
        .env_remove("FLOW_JOURNAL")
        .env("NO_COLOR", "1")
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null());
    cmd
}

/// A `flow serve` process, killed (SIGKILL) when dropped.
pub struct Flow {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// What the process wrote on stderr so far.
    stderr: Arc<Mutex<String>>,
    /// The token sent with every request, if any.
    token: Option<String>,
    pub client: reqwest::Client,
}

/// How to start a server.
#[derive(Default)]
pub struct Start<'a> {
    /// `--listen` (default `127.0.0.1:0`).
    pub listen: Option<&'a str>,
    /// More arguments.
    pub args: &'a [&'a str],
    /// `FLOW_TOKEN`; also sent by [`Flow`]'s requests.
    pub token: Option<&'a str>,
    /// `--journal` instead of the folder's SQLite file.
    pub journal: Option<&'a str>,
}

/// An HTTP client that follows no redirect (the tests look at them).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_else(|e| panic!("an HTTP client: {e}"))
}

/// The address of a `flow serve: listening on http://ADDR (...)` line.
fn listening(line: &str) -> Option<std::net::SocketAddr> {
    let rest = line.split_once("listening on http://")?.1;
    rest.split_whitespace().next()?.parse().ok()
}

impl Flow {
    /// `flow serve` on `dirs` and a free port of 127.0.0.1.
    pub fn start(dirs: &Dirs) -> Flow {
        Flow::start_with(dirs, Start::default())
    }

    /// `flow serve` on `dirs`, as `start` says; waits until it listens.
    pub fn start_with(dirs: &Dirs, start: Start<'_>) -> Flow {
        let mut cmd = command();
        cmd.arg("serve")
            .arg("--listen")
            .arg(start.listen.unwrap_or("127.0.0.1:0"))
            .arg("--workflows")
            .arg(&dirs.workflows)
            .arg("--journal")
            .arg(
                start
                    .journal
                    .map_or_else(|| dirs.journal.clone().into_os_string(), Into::into),
            )
            .args(start.args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(token) = start.token {
            cmd.env("FLOW_TOKEN", token);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run flow serve: {e}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let pipe = child.stderr.take();
        let log = stderr.clone();
        std::thread::spawn(move || {
            let Some(pipe) = pipe else { return };
            let mut tx = Some(tx);
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = listening(&line)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr);
                }
                let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = match rx.recv_timeout(START) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                std::thread::sleep(Duration::from_millis(50));
                let text = stderr.lock().unwrap_or_else(PoisonError::into_inner).clone();
                panic!("flow serve did not say where it listens ({status:?}):\n{text}");
            }
        };
        Flow {
            child,
            // A server listening on 0.0.0.0 is reached on loopback too.
            base: format!("http://127.0.0.1:{}", addr.port()),
            stderr,
            token: start.token.map(str::to_owned),
            client: client(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to `path`, with the server's token if it has one.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        Resp::of(self.request(Method::GET, path)).await
    }

    /// A POST of `body` as JSON.
    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        Resp::of(self.request(Method::POST, path).json(body)).await
    }

    /// A POST without a body.
    pub async fn post_empty(&self, path: &str) -> Resp {
        Resp::of(self.request(Method::POST, path)).await
    }

    /// Submits a run of `workflow` (`query` appended to the path); asserts 201.
    pub async fn submit(&self, workflow: &str, query: &str, body: &Value) -> Value {
        let resp = self
            .post(&format!("/api/v1/workflows/{workflow}/runs{query}"), body)
            .await;
        assert_eq!(resp.status, 201, "submit {workflow}{query}: {resp:?}");
        resp.json()
    }

    /// Submits a run and waits for its end: its report.
    pub async fn run_to_end(&self, workflow: &str, body: &Value) -> Value {
        let report = self.submit(workflow, "?wait=20", body).await;
        assert!(report.get("nodes").is_some(), "?wait=20 gave no report: {report}");
        report
    }

    /// `GET /api/v1/runs/{id}`: the run's report.
    pub async fn report(&self, run_id: &str) -> Value {
        let resp = self.get(&format!("/api/v1/runs/{run_id}")).await;
        assert_eq!(resp.status, 200, "GET run {run_id}: {resp:?}");
        resp.json()
    }

    /// Polls the run's report until `done` says so.
    pub async fn wait_report(&self, run_id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let report = self.report(run_id).await;
            if done(&report) {
                return report;
            }
            if started.elapsed() > PATIENCE {
                panic!(
                    "run {run_id}: no {what} after {PATIENCE:?}: {report}\n--- server:\n{}",
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Polls until the run's status is `status`.
    pub async fn wait_status(&self, run_id: &str, status: &str) -> Value {
        self.wait_report(run_id, status, |r| r["status"] == status).await
    }

    /// Polls `/healthz` until the server drives no run (its bookkeeping of a
    /// run ends just after the run's end is journaled).
    pub async fn wait_idle(&self) {
        let started = Instant::now();
        loop {
            let health = self.get("/healthz").await.json();
            if health["runs_in_flight"] == 0 {
                return;
            }
            assert!(started.elapsed() < PATIENCE, "runs still in flight: {health}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every event of the run's stream (with `Last-Event-ID: after`), read
    /// until the stream ends.
    pub async fn events(&self, run_id: &str, after: Option<&str>) -> Vec<Sse> {
        let mut stream = self.open_events(run_id, after).await;
        let mut all = Vec::new();
        while let Some(event) = stream.next(PATIENCE).await {
            all.push(event);
        }
        all
    }

    /// The run's event stream, opened (asserts 200 and its content type).
    pub async fn open_events(&self, run_id: &str, after: Option<&str>) -> Events {
        let mut request = self.request(Method::GET, &format!("/api/v1/runs/{run_id}/events"));
        if let Some(after) = after {
            request = request.header("Last-Event-ID", after);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET events of {run_id}: {e}"));
        assert_eq!(response.status(), 200, "GET events of {run_id}");
        let kind = header(response.headers(), "content-type");
        assert!(kind.starts_with("text/event-stream"), "events as {kind}");
        Events {
            response,
            buffer: Vec::new(),
            ended: false,
        }
    }

    /// Sends `signal` (`TERM`, `HUP`; number `number`) once the process
    /// catches it (so it is never sent before the handler is installed).
    pub fn signal(&self, signal: &str, number: u32) {
        send_signal(self.pid(), signal, number);
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, and the process reaped.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit (at most `deadline`).
    pub async fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if started.elapsed() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- flow serve at {} wrote:\n{}", self.base, self.stderr());
        }
    }
}

/// Whether the process catches `signal` yet (Linux: `SigCgt` in /proc/PID/status).
fn catches(pid: u32, signal: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (signal - 1)) != 0)
}

pub fn send_signal(pid: u32, signal: &str, number: u32) {
    let started = Instant::now();
    while !catches(pid, number) {
        assert!(started.elapsed() < PATIENCE, "process {pid} never caught SIG{signal}");
        std::thread::sleep(Duration::from_millis(5));
    }
    let kill = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status();
    assert!(kill.is_ok_and(|s| s.success()), "kill -{signal} {pid} failed");
}

/// JSON text as a value, however deeply nested (a report nests a run's input
/// a few levels deeper than it was sent).
pub fn parse(text: &str) -> serde_json::Result<Value> {
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    let value = <Value as serde::Deserialize>::deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

pub fn header(headers: &reqwest::header::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default()
}

/// A response, read whole.
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl std::fmt::Debug for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}) {}", self.status, self.header("content-type"), self.text)
    }
}

impl Resp {
    pub async fn of(request: reqwest::RequestBuilder) -> Resp {
        let response = request.send().await.unwrap_or_else(|e| panic!("request failed: {e}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_else(|e| panic!("reading a body: {e}"));
        Resp { status, headers, text }
    }

    pub fn header(&self, name: &str) -> String {
        header(&self.headers, name)
    }

    pub fn json(&self) -> Value {
        parse(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// Asserts an RFC 9457 problem of `status`; its detail.
    pub fn problem(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{self:?}");
        assert_problem(self.status, &self.header("content-type"), &self.text);
        self.json()["detail"].as_str().unwrap_or_default().to_owned()
    }
}

/// Asserts that a response is a problem: its content type, and `type`,
/// `title`, `status` (the response's), `detail`.
pub fn assert_problem(status: u16, content_type: &str, body: &str) {
    if let Err(e) = problem_issue(status, content_type, body) {
        panic!("{e}");
    }
}

/// What keeps a response from being a proper problem, if anything.
pub fn problem_issue(status: u16, content_type: &str, body: &str) -> Result<(), String> {
    if !content_type.starts_with("application/problem+json") {
        return Err(format!("{status} as {content_type}, not a problem: {body}"));
    }
    let problem: Value = serde_json::from_str(body).map_err(|e| format!("a problem that is not JSON ({e}): {body}"))?;
    let text = |field: &str| problem[field].as_str().is_some_and(|t| !t.is_empty());
    if !(text("type") && text("title") && text("detail") && problem["status"] == status) {
        return Err(format!("a {status} problem without its fields: {problem}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Server-sent events

/// One event of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Sse {
    pub id: Option<String>,
    pub event: String,
    pub data: Value,
}

impl Sse {
    pub fn seq(&self) -> u64 {
        self.id
            .as_deref()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("an event without a numeric id: {self:?}"))
    }
}

/// A stream of events being read.
pub struct Events {
    response: reqwest::Response,
    buffer: Vec<u8>,
    ended: bool,
}

impl Events {
    /// The next event (keep-alive comments skipped); `None` when the stream
    /// ended. Panics when none comes within `deadline`.
    pub async fn next(&mut self, deadline: Duration) -> Option<Sse> {
        let started = Instant::now();
        loop {
            if let Some(event) = self.parse() {
                return Some(event);
            }
            if self.ended {
                assert!(
                    self.buffer.iter().all(u8::is_ascii_whitespace),
                    "the stream ended within an event: {:?}",
                    String::from_utf8_lossy(&self.buffer)
                );
                return None;
            }
            let left = deadline.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, self.response.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buffer.extend_from_slice(&bytes),
                Ok(Ok(None)) => self.ended = true,
                Ok(Err(e)) => panic!("reading events: {e}"),
                Err(_) => panic!("no event nor end of the stream in {deadline:?}"),
            }
        }
    }

    /// Parses the first complete block of the buffer, skipping comment-only ones.
    fn parse(&mut self) -> Option<Sse> {
        loop {
            // Split on bytes: a chunk may end within a character.
            let end = self.buffer.windows(2).position(|w| w == b"\n\n")?;
            let block = String::from_utf8_lossy(&self.buffer[..end]).replace('\r', "");
            self.buffer.drain(..end + 2);
            let mut id = None;
            let mut event = String::from("message");
            let mut data: Vec<String> = Vec::new();
            for line in block.lines() {
                if line.starts_with(':') {
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "id" => id = Some(value.to_owned()),
                    "event" => event = value.to_owned(),
                    "data" => data.push(value.to_owned()),
                    _ => {}
                }
            }
            if data.is_empty() && id.is_none() {
                continue;
            }
            let data = data.join("\n");
            let data =
                parse(&data).unwrap_or_else(|e| panic!("event {event} with data that is not JSON ({e}): {data}"));
            return Some(Sse { id, event, data });
        }
    }
}

// ---------------------------------------------------------------------------
// The counting server

/// What the counting server received: each `Idempotency-Key`, with how many
/// requests carried it.
#[derive(Clone, Default)]
pub struct Log {
    keys: Arc<Mutex<BTreeMap<String, usize>>>,
    /// While set, `/gate/{name}` answers 500.
    closed: Arc<AtomicBool>,
}

impl Log {
    fn push(&self, headers: &HeaderMap) {
        let key = headers
            .get("idempotency-key")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        *self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default() += 1;
    }

    /// The keys of run `run_id`'s requests, with how many times each came.
    pub fn of_run(&self, run_id: &str) -> BTreeMap<String, usize> {
        let prefix = format!("{run_id}:");
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(k, n)| (k.clone(), *n))
            .collect()
    }
}

/// An HTTP server on a free port of 127.0.0.1, on a thread and runtime of its
/// own (so it answers whatever the test's runtime does):
/// `/echo/{name}` answers 200 `{"name"}`; `/gate/{name}` answers 500 while the
/// gate is closed, else as `/echo`. Both count each request's key.
pub struct Counter {
    pub base: String,
    pub log: Log,
    /// Dropped to stop the server.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Counter {
    pub fn start() -> Counter {
        let log = Log::default();
        let app = axum::Router::new()
            .route("/echo/{name}", axum::routing::any(echo))
            .route("/gate/{name}", axum::routing::any(gate))
            .with_state(log.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("a runtime for the counting server: {e}"));
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .unwrap_or_else(|e| panic!("a free port: {e}"));
                let _ = tx.send(listener.local_addr());
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        let addr = rx
            .recv_timeout(START)
            .unwrap_or_else(|e| panic!("the counting server did not start: {e}"))
            .unwrap_or_else(|e| panic!("the counting server's address: {e}"));
        Counter {
            base: format!("http://{addr}"),
            log,
            _stop: stop,
        }
    }

    /// `text` with every `BASE` replaced by this server's address.
    pub fn fill(&self, text: &str) -> String {
        text.replace("BASE", &self.base)
    }

    pub fn close_gate(&self, closed: bool) {
        self.log.closed.store(closed, Ordering::SeqCst);
    }
}

async fn echo(State(log): State<Log>, UrlPath(name): UrlPath<String>, headers: HeaderMap) -> Json<Value> {
    log.push(&headers);
    Json(json!({ "name": name }))
}

async fn gate(State(log): State<Log>, UrlPath(name): UrlPath<String>, headers: HeaderMap) -> Response {
    log.push(&headers);
    if log.closed.load(Ordering::SeqCst) {
        (StatusCode::INTERNAL_SERVER_ERROR, "the gate is closed").into_response()
    } else {
        Json(json!({ "name": name })).into_response()
    }
}

/// `flow runs list --journal JOURNAL --json`, parsed.
pub fn runs_list(journal: &Path) -> Vec<Value> {
    let out = command()
        .args(["runs", "list", "--json", "--journal"])
        .arg(journal)
        .output()
        .unwrap_or_else(|e| panic!("cannot run flow runs list: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "flow runs list: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_str(&stdout) {
        Ok(Value::Array(rows)) => rows,
        _ => panic!("flow runs list --json printed no array: {stdout}"),
    }
}
