//! Workflow shapes and helpers shared by the criterion benches and `cargo xtask bench`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use flow_core::{EdgeSpec, NodeSpec, Trigger, WorkflowSpec};
use flow_engine::{Engine, RunOptions, RunStatus, Workflow};
use serde_json::{Value, json};

/// The graph shapes of the engine-overhead benches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One start node fanning out to `n - 1` nodes.
    FanOut,
    /// `n` nodes in a row.
    Chain,
    /// Layers of 100; each node joins two nodes of the layer before.
    Layered,
}

impl Shape {
    /// Every shape.
    pub const ALL: [Shape; 3] = [Shape::FanOut, Shape::Chain, Shape::Layered];

    /// The name used in bench ids.
    pub fn name(self) -> &'static str {
        match self {
            Shape::FanOut => "fan-out",
            Shape::Chain => "chain",
            Shape::Layered => "layered",
        }
    }
}

fn node(id: String, kind: &str, config: Value) -> NodeSpec {
    NodeSpec {
        id,
        kind: kind.to_owned(),
        config,
        description: None,
        retry: None,
        timeout_ms: None,
        trigger: Trigger::AllSuccess,
        continue_on_error: false,
        ..Default::default()
    }
}

fn edge(from: usize, to: usize) -> EdgeSpec {
    EdgeSpec {
        from: format!("n{from}"),
        to: format!("n{to}"),
        when: None,
    }
}

/// A workflow of `n` nodes of `kind` (with `config`) in `shape`.
pub fn spec(shape: Shape, n: usize, kind: &str, config: Value) -> WorkflowSpec {
    let nodes = (0..n).map(|i| node(format!("n{i}"), kind, config.clone())).collect();
    let edges = match shape {
        Shape::FanOut => (1..n).map(|i| edge(0, i)).collect(),
        Shape::Chain => (1..n).map(|i| edge(i - 1, i)).collect(),
        Shape::Layered => {
            const WIDTH: usize = 100;
            let mut edges = Vec::with_capacity(2 * n);
            for i in WIDTH..n {
                let layer_start = (i / WIDTH - 1) * WIDTH;
                let j = i % WIDTH;
                edges.push(edge(layer_start + j, i));
                edges.push(edge(layer_start + (j + 1) % WIDTH, i));
            }
            edges
        }
    };
    WorkflowSpec {
        name: format!("{}-{n}", shape.name()),
        description: None,
        strategy: None,
        input: None,
        secrets: Vec::new(),
        limits: Default::default(),
        nodes,
        edges,
        output: None,
    }
}

/// A validated workflow of `n` `noop` nodes in `shape`.
pub fn noop_workflow(engine: &Engine, shape: Shape, n: usize) -> Arc<Workflow> {
    compile(engine, spec(shape, n, "noop", Value::Null))
}

/// A validated workflow of `n` `delay` nodes with `ms: 0` (each suspends once).
pub fn delay0_workflow(engine: &Engine, shape: Shape, n: usize) -> Arc<Workflow> {
    compile(engine, spec(shape, n, "delay", json!({ "ms": 0 })))
}

/// Validates a spec with the engine's registry.
pub fn compile(engine: &Engine, spec: WorkflowSpec) -> Arc<Workflow> {
    let limits = flow_core::Limits {
        max_nodes: usize::MAX,
        max_edges: usize::MAX,
        ..flow_core::Limits::default()
    };
    match Workflow::compile(spec, engine.registry(), &limits) {
        Ok(wf) => Arc::new(wf),
        Err(e) => panic!("bench workflow is invalid: {e}"),
    }
}

/// Runs `workflow` `iters` times from inside a task on `rt` (never on the thread
/// that calls `block_on`) and returns the total wall time of the runs.
pub fn time_runs(rt: &tokio::runtime::Runtime, engine: &Engine, workflow: &Arc<Workflow>, iters: u64) -> Duration {
    time_runs_with(rt, engine, workflow, None, iters)
}

/// As [`time_runs`], each run with `input` (cloned before its clock starts).
pub fn time_runs_with(
    rt: &tokio::runtime::Runtime,
    engine: &Engine,
    workflow: &Arc<Workflow>,
    input: Option<&Value>,
    iters: u64,
) -> Duration {
    let input = input.cloned();
    time_runs_options(rt, engine, workflow, iters, move || match &input {
        Some(input) => RunOptions::new().input(input.clone()),
        None => RunOptions::new(),
    })
}

/// Runs `workflow` `iters` times as [`time_runs`] does, each run with the
/// options `options` makes (before its clock starts).
pub fn time_runs_options(
    rt: &tokio::runtime::Runtime,
    engine: &Engine,
    workflow: &Arc<Workflow>,
    iters: u64,
    options: impl Fn() -> RunOptions + Send + 'static,
) -> Duration {
    let engine = engine.clone();
    let workflow = workflow.clone();
    rt.block_on(async move {
        let task = tokio::spawn(async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let options = options();
                let start = Instant::now();
                let report = engine.run(&workflow, options).await;
                total += start.elapsed();
                match report {
                    Ok(r) if r.status == RunStatus::Succeeded => drop(r),
                    Ok(r) => panic!("bench run {}", r.status),
                    Err(e) => panic!("bench run failed to start: {e}"),
                }
            }
            total
        });
        task.await.unwrap_or_default()
    })
}

/// The bare-tokio baseline: `n` trivial tasks in `shape`, from inside a task.
/// Fan-out: spawn n and join them all (JoinSet); chain: spawn and await one after
/// another; layered: spawn each layer and join it before the next.
pub fn time_tokio(rt: &tokio::runtime::Runtime, shape: Shape, n: usize, iters: u64) -> Duration {
    rt.block_on(async move {
        let task = tokio::spawn(async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                match shape {
                    Shape::FanOut => {
                        let mut set = tokio::task::JoinSet::new();
                        for i in 0..n {
                            set.spawn(async move { std::hint::black_box(i) });
                        }
                        while set.join_next().await.is_some() {}
                    }
                    Shape::Chain => {
                        for i in 0..n {
                            let _ = tokio::spawn(async move { std::hint::black_box(i) }).await;
                        }
                    }
                    Shape::Layered => {
                        for layer in 0..n.div_ceil(100) {
                            let mut set = tokio::task::JoinSet::new();
                            for i in 0..100.min(n - layer * 100) {
                                set.spawn(async move { std::hint::black_box(i) });
                            }
                            while set.join_next().await.is_some() {}
                        }
                    }
                }
                total += start.elapsed();
            }
            total
        });
        task.await.unwrap_or_default()
    })
}

/// A multi-threaded runtime like the CLI's.
pub fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => panic!("cannot build a runtime: {e}"),
    }
}

/// Whether `cargo xtask bench --quick` asked for a short run (no 100k sizes).
pub fn quick() -> bool {
    std::env::var_os("FLOW_BENCH_QUICK").is_some()
}

/// The sizes of the engine-overhead benches.
pub fn sizes() -> Vec<usize> {
    if quick() {
        vec![100, 1_000, 10_000]
    } else {
        vec![100, 1_000, 10_000, 100_000]
    }
}

/// dagx, the closest Rust peer, on the same shapes: `n` trivial tasks, built and run
/// from inside a task (dagx graphs run once, so building is part of each run).
pub fn time_dagx(rt: &tokio::runtime::Runtime, shape: Shape, n: usize, iters: u64) -> Duration {
    use dagx::{DagRunner, task_fn};
    rt.block_on(async move {
        let task = tokio::spawn(async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let dag = DagRunner::new();
                match shape {
                    Shape::FanOut => {
                        let source = dag.add_task(task_fn(|_: ()| async { 1u64 }));
                        for i in 1..n as u64 {
                            dag.add_task(task_fn(move |x: u64| async move { x + i }))
                                .depends_on(&source);
                        }
                    }
                    Shape::Chain => {
                        let first = dag.add_task(task_fn(|_: ()| async { 1u64 }));
                        let mut prev = dag.add_task(task_fn(|x: u64| async move { x + 1 })).depends_on(&first);
                        for i in 2..n as u64 {
                            prev = dag
                                .add_task(task_fn(move |x: u64| async move { x + i }))
                                .depends_on(prev);
                        }
                    }
                    Shape::Layered => {
                        const WIDTH: usize = 100;
                        let mut layer: Vec<dagx::TaskHandle<u64>> = (0..WIDTH.min(n) as u64)
                            .map(|i| dag.add_task(task_fn(move |_: ()| async move { i })).into())
                            .collect();
                        let mut made = layer.len();
                        while made < n {
                            let width = WIDTH.min(n - made);
                            let next: Vec<dagx::TaskHandle<u64>> = (0..width)
                                .map(|j| {
                                    let a = &layer[j % layer.len()];
                                    let b = &layer[(j + 1) % layer.len()];
                                    dag.add_task(task_fn(|(a, b): (u64, u64)| async move { a + b }))
                                        .depends_on((a, b))
                                })
                                .collect();
                            made += width;
                            layer = next;
                        }
                    }
                }
                let result = dag
                    .run(|fut| {
                        tokio::spawn(fut);
                    })
                    .await;
                total += start.elapsed();
                if let Err(e) = result {
                    panic!("dagx run failed: {e}");
                }
            }
            total
        });
        task.await.unwrap_or_default()
    })
}

/// Where a benched run is journaled (the `journal` bench).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// No journal: the plain engine.
    Off,
    /// SQLite, `synchronous=FULL` (fsync at every commit).
    SqliteFull,
    /// SQLite, `synchronous=NORMAL` (WAL, fsync at checkpoints).
    SqliteNormal,
    /// PostgreSQL ([`flow_engine::journal::test_pg_url`]).
    Postgres,
}

impl Backend {
    /// Every backend, the plain engine first.
    pub const ALL: [Backend; 4] = [
        Backend::Off,
        Backend::SqliteFull,
        Backend::SqliteNormal,
        Backend::Postgres,
    ];

    /// The name used in bench ids.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Off => "none",
            Backend::SqliteFull => "sqlite_full",
            Backend::SqliteNormal => "sqlite_normal",
            Backend::Postgres => "postgres",
        }
    }
}

/// The journals of one bench process: fresh SQLite files in a folder of the
/// temp dir, and PostgreSQL schemas named after the process, one per case.
/// [`BenchJournals::remove`] deletes both.
#[derive(Debug)]
pub struct BenchJournals {
    dir: std::path::PathBuf,
    pg_url: String,
    tag: String,
    schemas: Vec<String>,
}

impl BenchJournals {
    /// Makes the folder and checks that PostgreSQL answers: a bench that needs
    /// it fails at once, saying so, rather than skipping it.
    pub fn new(rt: &tokio::runtime::Runtime) -> BenchJournals {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let tag = format!("{}_{}", std::process::id(), millis % 100_000_000);
        let dir = std::env::temp_dir().join(format!("flow-bench-journal-{tag}"));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {e}", dir.display());
        }
        let pg_url = flow_engine::journal::test_pg_url();
        let probe = rt.block_on(async {
            let (client, connection) = tokio_postgres::connect(&pg_url, tokio_postgres::NoTls).await?;
            let task = tokio::spawn(connection);
            let answer = client.simple_query("SELECT 1").await.map(drop);
            drop(client);
            let _ = task.await;
            answer
        });
        if let Err(e) = probe {
            panic!(
                "\n\nthe journal bench needs PostgreSQL and cannot reach it at {pg_url} ({e}).\n\
                 Start it, or point FLOW_TEST_PG_URL at one (postgres://user@host:port/db).\n"
            );
        }
        BenchJournals {
            dir,
            pg_url,
            tag,
            schemas: Vec::new(),
        }
    }

    /// A writer on a fresh, empty journal for case `case` (letters, digits and
    /// `_`), or `None` for [`Backend::Off`]. Panics with the reason when the
    /// journal cannot be opened.
    pub fn writer(
        &mut self,
        rt: &tokio::runtime::Runtime,
        backend: Backend,
        case: &str,
    ) -> Option<flow_engine::journal::Writer> {
        use flow_engine::journal::{self, Owner, SyncLevel, Writer};
        let opened = match backend {
            Backend::Off => return None,
            Backend::SqliteFull | Backend::SqliteNormal => {
                let sync = if backend == Backend::SqliteFull {
                    SyncLevel::Full
                } else {
                    SyncLevel::Normal
                };
                let path = self.dir.join(format!("{case}_{}.db", backend.name()));
                journal::SqliteJournal::open(&path, sync).map(|j| Arc::new(j) as Arc<dyn journal::Journal>)
            }
            Backend::Postgres => {
                let schema = format!("flow_bench_{}_{case}", self.tag);
                self.schemas.push(schema.clone());
                rt.block_on(async {
                    let url = journal::in_schema(&self.pg_url, &schema).await?;
                    journal::PgJournal::connect(&url)
                        .await
                        .map(|j| Arc::new(j) as Arc<dyn journal::Journal>)
                })
            }
        };
        let writer = opened.and_then(|j| Writer::start(j, Owner::this_process()));
        match writer {
            Ok(w) => Some(w),
            Err(e) => panic!("the {} journal for `{case}`: {e}", backend.name()),
        }
    }

    /// Where case `case` of `backend` is journaled by a process that opens the
    /// journal itself (as `flow serve --journal TARGET` does): the path of a
    /// fresh SQLite file, or a PostgreSQL URL on a fresh schema of its own.
    /// `None` for [`Backend::Off`]. Panics with the reason when the schema
    /// cannot be made.
    pub fn target(&mut self, rt: &tokio::runtime::Runtime, backend: Backend, case: &str) -> Option<String> {
        match backend {
            Backend::Off => None,
            Backend::SqliteFull | Backend::SqliteNormal => Some(
                self.dir
                    .join(format!("{case}_{}.db", backend.name()))
                    .to_string_lossy()
                    .into_owned(),
            ),
            Backend::Postgres => {
                let schema = format!("flow_bench_{}_{case}", self.tag);
                self.schemas.push(schema.clone());
                match rt.block_on(flow_engine::journal::in_schema(&self.pg_url, &schema)) {
                    Ok(url) => Some(url),
                    Err(e) => panic!("the postgres journal for `{case}`: {e}"),
                }
            }
        }
    }

    /// Deletes the SQLite files and drops the PostgreSQL schemas (call once
    /// the writers are dropped), unless `FLOW_BENCH_KEEP_JOURNALS` is set: then
    /// it says where they are, to look into.
    pub fn remove(self, rt: &tokio::runtime::Runtime) {
        if std::env::var_os("FLOW_BENCH_KEEP_JOURNALS").is_some() {
            eprintln!(
                "journals kept: SQLite files in {}, PostgreSQL schemas {} at {}",
                self.dir.display(),
                self.schemas.join(", "),
                self.pg_url
            );
            return;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if self.schemas.is_empty() {
            return;
        }
        let dropped = rt.block_on(async {
            let (client, connection) = tokio_postgres::connect(&self.pg_url, tokio_postgres::NoTls).await?;
            let task = tokio::spawn(connection);
            let mut result = Ok(());
            for schema in &self.schemas {
                result = result.and(
                    client
                        .simple_query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                        .await
                        .map(drop),
                );
            }
            drop(client);
            let _ = task.await;
            result
        });
        if let Err(e) = dropped {
            eprintln!("could not drop the bench's PostgreSQL schemas: {e}");
        }
    }
}

/// As [`time_runs`], each run journaled by `writer` when there is one.
pub fn time_runs_journaled(
    rt: &tokio::runtime::Runtime,
    engine: &Engine,
    workflow: &Arc<Workflow>,
    writer: Option<&flow_engine::journal::Writer>,
    iters: u64,
) -> Duration {
    let writer = writer.cloned();
    time_runs_options(rt, engine, workflow, iters, move || match &writer {
        Some(w) => RunOptions::new().journal(w.clone()),
        None => RunOptions::new(),
    })
}

/// The timer's own cost in a chain of sleeps: `steps` `tokio::time::sleep`s of
/// `ms` one after another, from inside a task (what a chain of `delay` nodes
/// would take with no orchestration at all).
pub fn time_tokio_sleeps(rt: &tokio::runtime::Runtime, steps: usize, ms: u64, iters: u64) -> Duration {
    rt.block_on(async move {
        let task = tokio::spawn(async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                for _ in 0..steps {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                total += start.elapsed();
            }
            total
        });
        task.await.unwrap_or_default()
    })
}

/// The folder cargo builds into: `CARGO_TARGET_DIR`, or the workspace's
/// `target/`. The benches that write figures for `cargo xtask bench` write
/// them to its `flow-bench/`.
pub fn target_dir() -> std::path::PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map_or_else(|| std::path::PathBuf::from("target"), |root| root.join("target")),
    }
}

/// The release `flow` binary, for the benches that start it as a process:
/// `FLOW_BENCH_BIN` when set, else `target/release/flow`, built (or found up
/// to date) now with `cargo build --release -p flow-cli`. Panics with the
/// reason when it cannot be built.
pub fn flow_binary() -> std::path::PathBuf {
    if let Some(bin) = std::env::var_os("FLOW_BENCH_BIN") {
        return std::path::PathBuf::from(bin);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(&cargo)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args(["build", "--release", "--package", "flow-cli", "--bin", "flow"])
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("`cargo build --release -p flow-cli` failed ({s})"),
        Err(e) => panic!("cannot run {}: {e}", cargo.to_string_lossy()),
    }
    let bin = target_dir()
        .join("release")
        .join(format!("flow{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        panic!("no flow binary at {} after building it", bin.display());
    }
    bin
}

// ---------------------------------------------------------------------------
// A `flow serve` process (the serve and waits benches)

/// A `flow serve` process, killed when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Server {
    /// `flow serve` on a free port of 127.0.0.1 with `more` arguments;
    /// waits until it listens.
    pub fn start(bin: &Path, workflows: &Path, journal: &str, more: &[&str]) -> Server {
        let mut child = match Command::new(bin)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--workflows"])
            .arg(workflows)
            .args(["--journal", journal])
            .args(more)
            .env_remove("FLOW_TOKEN")
            .env_remove("FLOW_JOURNAL")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => panic!("cannot run {}: {e}", bin.display()),
        };
        // Reads the server's stderr to its end (so it never blocks on a full
        // pipe), keeping the last lines to show if it does not start.
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let pipe = child.stderr.take();
        let kept = log.clone();
        std::thread::spawn(move || {
            let Some(pipe) = pipe else { return };
            let mut tx = Some(tx);
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = listening(&line)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(port);
                }
                let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
                if kept.len() >= 50 {
                    kept.remove(0);
                }
                kept.push(line);
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(port) => Server {
                child,
                base: format!("http://127.0.0.1:{port}"),
            },
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                let log = log.lock().unwrap_or_else(PoisonError::into_inner).join("\n");
                panic!("flow serve did not say where it listens ({status:?}):\n{log}");
            }
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port of a `flow serve: listening on http://ADDR (...)` line.
fn listening(line: &str) -> Option<u16> {
    let rest = line.split_once("listening on http://")?.1;
    rest.split_whitespace()
        .next()?
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| a.port())
}
