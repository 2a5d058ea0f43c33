//! Durable runs: recording a new run in the journal, and taking an interrupted
//! (or failed) one over to continue it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use flow_core::{Record, Recovered, WorkflowSpec, document_hash, document_of};
use flow_journal::{LEASE, RunLog, RunRow, Writer, now_ms};
use tokio_util::sync::CancellationToken;

use crate::driver::Restore;
use crate::redact::Redactor;
use crate::{Engine, Error, Result, ResumeError, RunHandle, RunOptions, RunStatus, Workflow, secrets};

/// What makes a run durable: its id, its journal, and for a resumed run what
/// it restores and how long it had gone on.
pub(crate) struct Durable {
    pub run_id: Arc<str>,
    pub log: Option<RunLog>,
    pub restore: Option<Box<Restore>>,
    pub offset: Duration,
}

impl Durable {
    pub(crate) fn none(run_id: Arc<str>) -> Durable {
        Durable {
            run_id,
            log: None,
            restore: None,
            offset: Duration::ZERO,
        }
    }
}

/// How [`Engine::resume`] continues a run.
#[derive(Debug, Clone, Default)]
pub struct ResumeOptions {
    retry_failed: bool,
    cancel: Option<CancellationToken>,
    events: Option<crate::EventSender>,
    pub(crate) park: bool,
}

impl ResumeOptions {
    /// Default options: continue an interrupted run.
    pub fn new() -> Self {
        ResumeOptions::default()
    }

    /// Parks the run again when every node under way waits (see
    /// `RunOptions::park_when_waiting`).
    pub fn park_when_waiting(mut self) -> Self {
        self.park = true;
        self
    }

    /// Also continue a run that finished `failed` or `cancelled`: its failed,
    /// cancelled and upstream_failed nodes (and failed items) run again, what
    /// succeeded is kept.
    pub fn retry_failed(mut self, yes: bool) -> Self {
        self.retry_failed = yes;
        self
    }

    /// Cancels the run when this token is cancelled.
    pub fn cancel_token(mut self, token: CancellationToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// Sends the run's events to `sender`.
    pub fn events(mut self, sender: crate::EventSender) -> Self {
        self.events = Some(sender);
        self
    }

    /// Subscribes to the run's events (as [`RunOptions::subscribe`]).
    pub fn subscribe(&mut self) -> crate::EventReceiver {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.events = Some(tx);
        rx
    }
}

/// A run taken over from the journal, ready to drive.
#[derive(Debug)]
pub struct Resumed {
    /// The workflow, compiled from the document the run started with.
    pub workflow: Arc<Workflow>,
    /// The handle of the run going on.
    pub handle: RunHandle,
}

impl Engine {
    /// Records a new run in `options`' journal, if it has one.
    pub(crate) async fn begin(
        &self,
        workflow: &Arc<Workflow>,
        options: &mut RunOptions,
        run_id: Arc<str>,
    ) -> Result<Durable> {
        let Some(writer) = options.journal.take() else {
            return Ok(Durable::none(run_id));
        };
        let redactor = Redactor::new(
            secrets(workflow)
                .into_values()
                .chain(options.inherited_secrets.iter().cloned()),
        );
        let input = options.input.clone().unwrap_or_else(|| workflow.input().clone());
        let document = document_of(workflow.spec());
        let record = Record::RunStarted {
            workflow: workflow.name().to_owned(),
            hash: document_hash(&document),
            document,
            input: redactor.redact_value(input),
            strategy: options.strategy_spec.clone(),
            started_at_ms: now_ms(),
            idempotency_key: options.idempotency_key.take(),
            parent: options.parent.clone(),
            depth: options.depth,
        };
        // Created by its first record, in the writer's next commit with
        // whatever else is waiting: a server's new runs share their commits.
        let log = writer.run(run_id.clone(), 1);
        log.append_durable(record).await?;
        Ok(Durable {
            log: Some(log),
            run_id,
            restore: None,
            offset: Duration::ZERO,
        })
    }

    /// Takes run `run_id` over from `writer`'s journal and continues it on its
    /// own task: what settled is not run again (outputs come from the journal),
    /// what was in flight runs again with its next attempt, the rest runs as
    /// usual. The workflow is the document the run started with, not today's
    /// file.
    ///
    /// # Errors
    ///
    /// [`Error::Resume`] when there is no such run, when it finished (and
    /// `retry_failed` is off, or it succeeded), or when another live process
    /// holds it (of two processes that race for one run, one gets it).
    pub async fn resume(&self, writer: &Writer, run_id: &str, options: ResumeOptions) -> Result<Resumed> {
        let journal = writer.journal();
        // The row alone decides whether the run may be taken; its records are
        // read once it is taken.
        let row = journal.row(run_id).await?.ok_or_else(|| ResumeError::NotFound {
            run_id: run_id.to_owned(),
            journal: journal.target().to_owned(),
        })?;
        let row = &row;
        let now = now_ms();
        match row.status_now(now) {
            RunStatus::Running => {
                return Err(ResumeError::Held {
                    run_id: run_id.to_owned(),
                    holder: row.owner.as_ref().map(|o| (o.pid, o.host.clone())),
                }
                .into());
            }
            RunStatus::Interrupted | RunStatus::Waiting => {}
            status if status == RunStatus::Succeeded || !options.retry_failed => {
                return Err(ResumeError::Finished {
                    run_id: run_id.to_owned(),
                    status,
                }
                .into());
            }
            _ => {}
        }
        let expected = row.owner.as_ref().map(|o| o.token.as_str());
        let lease = now + LEASE.as_millis() as i64;
        // A parked run is taken by its status (of two that race, one takes
        // it; none takes one that was woken and finished meanwhile).
        let woken = row.status == RunStatus::Waiting;
        let taken = if woken {
            journal.wake(run_id, writer.owner(), lease).await?
        } else {
            journal.claim(run_id, writer.owner(), expected, lease).await?
        };
        if !taken {
            return Err(ResumeError::TakenOver {
                run_id: run_id.to_owned(),
            }
            .into());
        }
        if let Some(dispatcher) = &self.inner_dispatcher() {
            dispatcher
                .adopt(run_id)
                .await
                .map_err(|e| unusable(run_id, format!("stopping its previous owner's tasks: {e}")))?;
        }
        // Read again now that the run is ours: a write of the previous owner
        // that was still in flight (a killed client's statement runs on in
        // its PostgreSQL backend) has landed before the claim, or lands
        // nothing (the journal fences it off).
        let stored = journal
            .load(run_id)
            .await?
            .ok_or_else(|| unusable(run_id, format!("it vanished from the journal {}", journal.target())))?;
        let next_seq = stored.records.last().map_or(1, |(seq, _)| seq + 1);
        let mut recovered = Recovered::fold(stored.records.iter().map(|(_, r)| r));
        if options.retry_failed {
            recovered.reset_failed();
        }
        let workflow = Arc::new(
            self.compile_stored(&recovered.document)
                .map_err(|reason| unusable(run_id, reason))?,
        );
        let (input, strategy, started_at_ms, parent, depth) = (
            std::mem::take(&mut recovered.input),
            recovered.strategy.take(),
            recovered.started_at_ms,
            recovered.parent.take(),
            recovered.depth,
        );
        let restore = restore(&workflow, recovered);
        let log = writer.run(Arc::from(run_id), next_seq);
        let at_ms = (now - started_at_ms).max(0) as f64;
        log.append_durable(if woken {
            Record::RunWoken { at_ms }
        } else {
            Record::RunResumed {
                at_ms,
                retry_failed: options.retry_failed,
            }
        })
        .await?;
        let mut run_options = RunOptions::new().input(input);
        if let Some(spec) = strategy {
            run_options = run_options.strategy_spec(spec);
        }
        run_options.cancel = options.cancel;
        run_options.events = options.events;
        run_options.parent = parent;
        run_options.depth = depth;
        let signals = crate::Signals::new();
        run_options.signals = Some(signals.clone());
        run_options.park = options.park;
        let park_now = CancellationToken::new();
        run_options.park_now = Some(park_now.clone());
        let durable = Durable {
            run_id: Arc::from(run_id),
            log: Some(log),
            restore: Some(Box::new(restore)),
            offset: Duration::from_millis((now - started_at_ms).max(0) as u64),
        };
        let (driver, cancel) = self.driver(&workflow, run_options, durable)?;
        let run = driver.run();
        Ok(Resumed {
            workflow,
            handle: RunHandle {
                run_id: Arc::from(run_id),
                cancel,
                task: tokio::spawn(async move { Ok(run.await) }),
                signals,
                park_now,
            },
        })
    }
}

/// The journal's results by node index (ids the workflow does not know are
/// dropped: the document is the one they were recorded with).
fn restore(workflow: &Workflow, recovered: Recovered) -> Restore {
    let mut restore = Restore::default();
    for (id, report) in recovered.settled {
        if let Some(index) = workflow.index_of(&id) {
            restore.nodes.insert(index, report);
        }
    }
    for (id, items) in recovered.items {
        if let Some(index) = workflow.index_of(&id) {
            restore
                .items
                .insert(index, items.into_iter().collect::<HashMap<_, _>>());
        }
    }
    restore.signals_taken = recovered.signals_taken;
    for ((id, item), flight) in recovered.in_flight {
        if let Some(index) = workflow.index_of(&id) {
            restore.in_flight.insert((index, item), flight);
        }
    }
    restore
}

fn unusable(run_id: &str, reason: String) -> Error {
    ResumeError::Unusable {
        run_id: run_id.to_owned(),
        reason,
    }
    .into()
}

impl Engine {
    /// Compiles the workflow document a run started with (its `run_started`
    /// record's) with this engine's node kinds and limits: the one way a stored
    /// run becomes a [`Workflow`] again, for resuming it, showing it or running
    /// its attempts elsewhere.
    ///
    /// # Errors
    ///
    /// Why the document does not read or no longer compiles here.
    pub fn compile_stored(&self, document: &serde_json::Value) -> std::result::Result<Workflow, String> {
        let spec: WorkflowSpec = serde_json::from_value(document.clone())
            .map_err(|e| format!("its stored workflow document cannot be read: {e}"))?;
        Workflow::compile(spec, self.registry(), self.limits()).map_err(|e| format!("its stored workflow: {e}"))
    }

    /// A stored run's report: the final one when it finished; otherwise rebuilt
    /// from its records, `running` or `interrupted` as its owner's liveness says
    /// now (a running run's duration is its time so far, an interrupted one's
    /// stops at its last record). `workflow` is the one
    /// [`compile_stored`](Self::compile_stored) gave for it.
    pub fn stored_report(
        &self,
        run_id: &str,
        row: &RunRow,
        recovered: &Recovered,
        workflow: &Arc<Workflow>,
    ) -> crate::Report {
        if let Some(report) = &recovered.finished {
            return report.clone();
        }
        let strategy = recovered
            .strategy
            .as_ref()
            .or(workflow.strategy())
            .map_or_else(|| "parallel".to_owned(), |s| s.kind.clone());
        let now = now_ms();
        let status = row.status_now(now);
        let mut report = recovered.report(workflow, run_id, &strategy, status);
        if status == RunStatus::Running {
            report.duration_ms = report.duration_ms.max((now - recovered.started_at_ms).max(0) as f64);
        }
        report
    }
}
