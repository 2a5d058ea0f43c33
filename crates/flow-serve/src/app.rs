//! The server's state: the engine, the journal, the workflows, the runs this
//! process is driving, and how a run's report is found.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use flow_core::{Recovered, Report};
use flow_engine::journal::{Journal, RunRow, Writer};
use flow_engine::{Engine, RunHandle, Workflow};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::catalog::Catalog;
use crate::problem::Problem;

/// A run this process drives: how to cancel it, and its report once it ends.
#[derive(Clone)]
pub struct Live {
    pub cancel: CancellationToken,
    pub done: watch::Receiver<Option<Arc<Report>>>,
}

pub struct App {
    pub engine: Engine,
    pub writer: Writer,
    pub journal: Arc<dyn Journal>,
    pub catalog: RwLock<Arc<Catalog>>,
    pub live: Mutex<HashMap<String, Live>>,
    pub token: Option<String>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Workflows compiled from journaled documents, by document hash.
    documents: Mutex<HashMap<String, Arc<Workflow>>>,
    /// Set when the server stops taking new runs (SIGTERM).
    pub stopping: CancellationToken,
}

impl App {
    pub fn new(
        engine: Engine,
        writer: Writer,
        catalog: Catalog,
        token: Option<String>,
        metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    ) -> App {
        App {
            journal: writer.journal().clone(),
            engine,
            writer,
            catalog: RwLock::new(Arc::new(catalog)),
            live: Mutex::new(HashMap::new()),
            token,
            metrics,
            documents: Mutex::new(HashMap::new()),
            stopping: CancellationToken::new(),
        }
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn live(&self, run_id: &str) -> Option<Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).get(run_id).cloned()
    }

    pub fn in_flight(&self) -> usize {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Follows a started run: keeps it cancellable while it goes on, counts it
    /// in the metrics, and publishes its report when it ends.
    pub fn track(self: &Arc<App>, workflow: &str, handle: RunHandle) -> Live {
        let (tx, rx) = watch::channel(None);
        let live = Live {
            cancel: handle.cancel_token(),
            done: rx,
        };
        let run_id = handle.run_id().to_owned();
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(run_id.clone(), live.clone());
        let workflow = workflow.to_owned();
        metrics::counter!("flow_runs_started_total", "workflow" => workflow.clone()).increment(1);
        metrics::gauge!("flow_runs_in_flight").increment(1.0);
        let app = self.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = handle.wait().await;
            metrics::gauge!("flow_runs_in_flight").decrement(1.0);
            match result {
                Ok(report) => {
                    record_metrics(&workflow, &report);
                    tracing::info!(
                        run_id = %run_id,
                        workflow = %workflow,
                        status = %report.status,
                        ms = started.elapsed().as_millis() as u64,
                        "run finished"
                    );
                    let _ = tx.send(Some(Arc::new(report)));
                }
                Err(e) => {
                    metrics::counter!("flow_runs_finished_total", "workflow" => workflow.clone(), "status" => "error")
                        .increment(1);
                    tracing::error!(run_id = %run_id, error = %e, "run ended without a report");
                }
            }
            app.live.lock().unwrap_or_else(|p| p.into_inner()).remove(&run_id);
        });
        live
    }

    /// The workflow a journaled run started with, compiled once per document.
    pub fn document(&self, recovered: &Recovered) -> Result<Arc<Workflow>, Problem> {
        if let Some(w) = self
            .documents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&recovered.hash)
        {
            return Ok(w.clone());
        }
        let workflow = self
            .engine
            .compile_stored(&recovered.document)
            .map(Arc::new)
            .map_err(|e| Problem::internal(format!("the run: {e}")))?;
        let mut documents = self.documents.lock().unwrap_or_else(|p| p.into_inner());
        if documents.len() > 256 {
            documents.clear();
        }
        documents.insert(recovered.hash.clone(), workflow.clone());
        Ok(workflow)
    }

    /// A run's row and report as the journal has them now: the final report
    /// of a finished run; for one under way, nodes not settled yet are
    /// `pending` or `running`.
    pub async fn report(&self, run_id: &str) -> Result<(RunRow, Report, Option<Arc<Workflow>>), Problem> {
        let stored = self
            .journal
            .load(run_id)
            .await?
            .ok_or_else(|| Problem::not_found(format!("no run `{run_id}`")))?;
        let recovered = Recovered::fold(stored.records.iter().map(|(_, r)| r));
        let workflow = self.document(&recovered).ok();
        if let Some(report) = &recovered.finished {
            return Ok((stored.row, report.clone(), workflow));
        }
        let Some(workflow) = workflow else {
            return Err(Problem::internal(format!(
                "run `{run_id}`: its workflow cannot be read"
            )));
        };
        let report = self.engine.stored_report(run_id, &stored.row, &recovered, &workflow);
        Ok((stored.row, report, Some(workflow)))
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
