//! The server's state: the runtime (engine, journal, the workflows of its
//! folder, the runs this process is driving), its token and metrics.

use std::sync::Arc;
use std::time::Duration;

use flow_core::Report;
use flow_engine::journal::{Journal, RunRow, Writer};
use flow_engine::{Engine, Workflow};
pub use flow_runtime::Live;
use flow_runtime::{Observer, Runtime, WorkflowSource};
use tokio_util::sync::CancellationToken;

use crate::problem::Problem;

pub struct App {
    /// Starts, tracks, looks up, cancels and retries runs.
    pub runtime: Arc<Runtime>,
    pub token: Option<String>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// The login form's sessions.
    pub sessions: crate::auth::Sessions,
    /// Failed logins, by client address.
    pub attempts: crate::auth::Attempts,
    /// Whether the session cookie is `Secure` (served behind TLS).
    pub cookie_secure: bool,
    /// The value the page's forms carry and the server checks: a site that
    /// cannot read this server's pages cannot post them.
    pub csrf: String,
    /// Event streams open: one permit each.
    pub streams: Arc<tokio::sync::Semaphore>,
}

/// The server's metrics and logs of each run.
struct Metrics;

impl Observer for Metrics {
    fn started(&self, workflow: &str, _run_id: &str) {
        metrics::counter!("flow_runs_started_total", "workflow" => workflow.to_owned()).increment(1);
        metrics::gauge!("flow_runs_in_flight").increment(1.0);
    }

    fn finished(&self, workflow: &str, report: &Report, elapsed: Duration) {
        metrics::gauge!("flow_runs_in_flight").decrement(1.0);
        record_metrics(workflow, report);
        tracing::info!(
            run_id = %report.run_id,
            workflow = %workflow,
            status = %report.status,
            ms = elapsed.as_millis() as u64,
            "run finished"
        );
    }

    fn parked(&self, workflow: &str, run_id: &str) {
        metrics::gauge!("flow_runs_in_flight").decrement(1.0);
        tracing::info!(run_id = %run_id, workflow = %workflow, "run parked: every node under way waits");
    }

    fn failed(&self, workflow: &str, run_id: &str, error: &flow_engine::Error) {
        metrics::gauge!("flow_runs_in_flight").decrement(1.0);
        metrics::counter!("flow_runs_finished_total", "workflow" => workflow.to_owned(), "status" => "error")
            .increment(1);
        tracing::error!(run_id = %run_id, error = %error, "run ended without a report");
    }
}

impl App {
    pub fn new(
        engine: Engine,
        writer: Writer,
        source: Arc<dyn WorkflowSource>,
        token: Option<String>,
        metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    ) -> App {
        App {
            runtime: Arc::new(
                Runtime::new(engine, writer)
                    .with_parking()
                    .with_observer(Arc::new(Metrics))
                    .with_source(source),
            ),
            token,
            metrics,
            sessions: crate::auth::Sessions::default(),
            attempts: crate::auth::Attempts::default(),
            cookie_secure: false,
            csrf: uuid::Uuid::new_v4().simple().to_string(),
            streams: Arc::new(tokio::sync::Semaphore::new(crate::Bounds::default().max_event_streams)),
        }
    }

    pub fn writer(&self) -> &Writer {
        self.runtime.writer()
    }

    pub fn journal(&self) -> &Arc<dyn Journal> {
        self.runtime.journal()
    }

    /// Fired when the server stops taking new runs (SIGTERM).
    pub fn stopping(&self) -> &CancellationToken {
        self.runtime.stopping()
    }

    /// The workflows of the folder, as the API and the page list them.
    pub fn workflows(&self) -> Vec<crate::catalog::WorkflowInfo> {
        crate::catalog::info(&**self.runtime.source())
    }

    pub fn live(&self, run_id: &str) -> Option<Live> {
        self.runtime.live(run_id)
    }

    pub fn in_flight(&self) -> usize {
        self.runtime.in_flight()
    }

    /// A run's row and report as the journal has them now: the final report
    /// of a finished run; for one under way, nodes not settled yet are
    /// `pending` or `running`.
    pub async fn report(&self, run_id: &str) -> Result<(RunRow, Report, Option<Arc<Workflow>>), Problem> {
        let view = self.runtime.lookup(run_id).await?;
        Ok((view.row, view.report, view.workflow))
    }
}

/// Runs finished by workflow and status, node attempt durations, limit waits.
fn record_metrics(workflow: &str, report: &Report) {
    metrics::counter!(
        "flow_runs_finished_total",
        "workflow" => workflow.to_owned(),
        "status" => report.status.as_str()
    )
    .increment(1);
    metrics::histogram!("flow_run_duration_seconds", "workflow" => workflow.to_owned())
        .record(report.duration_ms / 1000.0);
    for (_, node) in report.nodes.iter() {
        for attempt in &node.attempts_detail {
            metrics::histogram!("flow_node_attempt_duration_seconds", "workflow" => workflow.to_owned())
                .record((attempt.finished_ms - attempt.started_ms).max(0.0) / 1000.0);
        }
        if let Some(wait) = node.limit_wait_ms {
            metrics::histogram!("flow_limit_wait_seconds", "workflow" => workflow.to_owned()).record(wait / 1000.0);
        }
    }
}
