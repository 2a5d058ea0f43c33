//! `flow serve`: runs submitted over HTTP, watched live, kept in the journal,
//! with a web page to see them.
//!
//! One [`Engine`] for the whole server (so `limits:` hold across every run),
//! one journal [`Writer`] (every run is durable; runs in flight when the server
//! died are resumed at its next start), the workflows of one folder (reloaded
//! on SIGHUP), and axum in front: `/api/v1` (JSON, errors as RFC 9457
//! problems), `/openapi.json`, `/metrics`, `/healthz`, and the page at `/`.

#![warn(missing_docs)]

mod api;
mod app;
mod auth;
mod catalog;
mod guard;
mod listen;
mod page;
mod problem;
mod routes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use flow_engine::journal::{Owner, SyncLevel, Writer};
use flow_engine::{Engine, Limits};

pub use flow_engine::journal::rfc3339;
pub use listen::Bounds;

use app::App;

/// How to run the server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen (`127.0.0.1:8080`; port 0 picks a free one, printed at start).
    pub listen: SocketAddr,
    /// The folder of workflow files.
    pub workflows: PathBuf,
    /// The journal: a SQLite path or a `postgres://` URL.
    pub journal: String,
    /// SQLite's sync level.
    pub sync: SyncLevel,
    /// `FLOW_TOKEN`: when set, every API request and page needs it.
    pub token: Option<String>,
    /// Listen beyond loopback without a token anyway.
    pub insecure: bool,
    /// How long runs under way may go on after SIGTERM before the server stops
    /// (they are left `interrupted`, resumed at the next start).
    pub grace: Duration,
    /// Load limits for workflow files.
    pub limits: Limits,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Run node attempts on `flow worker`s through the PostgreSQL queue
    /// (`--dispatch queue`) instead of in this process.
    pub queue: bool,
    /// Host names the server answers to besides IP addresses and `localhost`
    /// (`--allowed-host`): the name clients use when it sits behind a proxy
    /// or a DNS name.
    pub allowed_hosts: Vec<String>,
    /// Mark the session cookie `Secure` (the server is reached over TLS, behind
    /// a proxy).
    pub cookie_secure: bool,
    /// Caps and timeouts on clients.
    pub bounds: Bounds,
}

/// Why the server did not start (exit 2) or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Bad configuration: nothing was started.
    #[error("{0}")]
    Usage(String),
    /// The server failed while running.
    #[error("{0}")]
    Failed(String),
}

/// Checks the configuration, opens the journal, loads the workflows, resumes
/// the runs a previous server left interrupted, and serves until SIGTERM or
/// Ctrl-C (then lets runs under way finish for `grace`).
pub async fn serve(config: Config) -> Result<(), ServeError> {
    if !config.listen.ip().is_loopback() && config.token.is_none() && !config.insecure {
        return Err(ServeError::Usage(format!(
            "refusing to listen on {} without a token: set FLOW_TOKEN (or pass --insecure to accept anyone who can reach it)",
            config.listen
        )));
    }
    if config.bounds.max_connections == 0 {
        return Err(ServeError::Usage("--max-connections must be at least 1".into()));
    }
    if config.bounds.header_timeout.is_zero() || config.bounds.stall_timeout.is_zero() {
        return Err(ServeError::Usage(
            "--header-timeout and --stall-timeout must be longer than 0".into(),
        ));
    }
    if config.token.as_deref().is_some_and(str::is_empty) {
        return Err(ServeError::Usage("FLOW_TOKEN is set but empty".into()));
    }
    if config.queue && !flow_engine::journal::is_postgres(&config.journal) {
        return Err(ServeError::Usage(
            "--dispatch queue needs a PostgreSQL journal (--journal postgres://...): workers reach the queue through it"
                .into(),
        ));
    }
    survive_file_size_limit();
    let journal = flow_engine::journal::open(&config.journal, config.sync)
        .await
        .map_err(|e| ServeError::Usage(format!("--journal: {e}")))?;
    let writer = Writer::start(journal, Owner::this_process()).map_err(|e| ServeError::Usage(e.to_string()))?;
    let mut engine = Engine::builder()
        .limits(config.limits)
        .catalog(Arc::new(flow_engine::FolderCatalog::new(config.workflows.clone())));
    if config.queue {
        let queue = flow_dist::Queue::connect(&config.journal, &writer.owner().token)
            .await
            .map_err(|e| ServeError::Usage(format!("--dispatch queue: {e}")))?;
        engine = engine.dispatcher(Arc::new(queue));
    }
    let engine = engine.build();
    let source = flow_runtime::Folder::load(&engine, &config.workflows)
        .map_err(|e| ServeError::Usage(format!("--workflows {e}")))?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| ServeError::Usage(format!("cannot listen on {}: {e}", config.listen)))?;
    let address = listener.local_addr().map_err(|e| ServeError::Failed(e.to_string()))?;
    let mut app = App::new(engine, writer, Arc::new(source), config.token.clone(), metrics_handle());
    app.cookie_secure = config.cookie_secure;
    app.streams = Arc::new(tokio::sync::Semaphore::new(config.bounds.max_event_streams));
    let app = Arc::new(app);
    let workflows = app.runtime.source().entries();
    let invalid = workflows.values().filter(|e| e.workflow.is_none()).count();
    eprintln!(
        "flow serve: listening on http://{address} ({} workflows{}, journal {})",
        workflows.len(),
        if invalid > 0 {
            format!(", {invalid} invalid")
        } else {
            String::new()
        },
        app.journal().target()
    );
    resume_interrupted(&app).await;
    // Not only at start: a run whose owner dies later (another server on the
    // journal, one restarted under another host name) is taken over too.
    app.runtime.keep_taking_over(TAKEOVER_EVERY, |run_id, workflow| {
        eprintln!("flow serve: resuming run {run_id} of `{workflow}`");
    });
    // Parked runs (every node waits) are woken here when due: a timer's
    // instant, or a signal sent to them (by any process on the journal).
    app.runtime.keep_waking(WAKE_EVERY, |run_id, workflow| {
        tracing::info!(run_id = %run_id, workflow = %workflow, "woke a parked run");
    });
    tokio::spawn(reload_on_hangup(app.clone()));

    let router = routes::router(
        app.clone(),
        config.max_body_bytes,
        guard::AllowedHosts::new(&config.allowed_hosts),
        config.bounds.stall_timeout,
    );
    let stopping = app.stopping().clone();
    let stop = async move {
        wait_for_stop().await;
        eprintln!("flow serve: stopping: no new requests; runs under way get the grace period");
        stopping.cancel();
    };
    listen::serve(listener, router, config.bounds, stop, config.grace).await;
    // Runs under way finish, up to the grace period; the rest stay in the
    // journal as `interrupted` and are resumed at the next start.
    let deadline = tokio::time::Instant::now() + config.grace;
    while app.in_flight() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left = app.in_flight();
    if left > 0 {
        eprintln!("flow serve: {left} runs still under way are left for the next start");
    }
    let _ = app.writer().flush().await;
    Ok(())
}

/// A write past the process's file size limit (`ulimit -f`) makes the kernel
/// send SIGXFSZ, which kills by default: caught instead, the write fails
/// (`EFBIG`) like a full disk's, and the journal's writer waits and tries
/// again until the limit is raised or space is freed.
fn survive_file_size_limit() {
    #[cfg(target_os = "linux")]
    {
        use tokio::signal::unix::{SignalKind, signal};
        const SIGXFSZ: i32 = 25;
        if let Ok(mut xfsz) = signal(SignalKind::from_raw(SIGXFSZ)) {
            tokio::spawn(async move {
                while xfsz.recv().await.is_some() {
                    tracing::warn!("a write went past the file size limit (SIGXFSZ)");
                }
            });
        }
    }
}

/// How often a server looks for parked runs made due by another process (a
/// signal sent through it, a run it parked); its own timers and signals wake
/// runs on time.
const WAKE_EVERY: Duration = Duration::from_millis(500);

/// How often a server looks for runs whose owner died, after its start.
const TAKEOVER_EVERY: Duration = Duration::from_secs(2);

/// Runs whose process died (`interrupted`) are taken over and continued.
async fn resume_interrupted(app: &Arc<App>) {
    for (run_id, workflow) in app.runtime.resume_interrupted().await {
        eprintln!("flow serve: resuming run {run_id} of `{workflow}`");
    }
}

/// Reads the workflows folder again. Runs under way keep the version they
/// started with (they hold their own `Arc<Workflow>`).
pub(crate) fn reload(app: &App) -> Result<(), String> {
    let source = app.runtime.source();
    source.reload().map_err(|e| format!("--workflows {e}"))?;
    let invalid = source.entries().values().filter(|e| e.workflow.is_none()).count();
    tracing::info!(invalid, "workflows reloaded");
    Ok(())
}

#[cfg(unix)]
async fn reload_on_hangup(app: Arc<App>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hangup.recv().await.is_some() {
        match reload(&app) {
            Ok(()) => eprintln!("flow serve: workflows reloaded"),
            Err(e) => eprintln!("flow serve: reload failed: {e}"),
        }
    }
}

#[cfg(not(unix))]
async fn reload_on_hangup(_: Arc<App>) {}

async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// The process's Prometheus recorder, installed once.
fn metrics_handle() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ];
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(&buckets)
                .ok()?
                .install_recorder()
                .ok()
        })
        .clone()
}
