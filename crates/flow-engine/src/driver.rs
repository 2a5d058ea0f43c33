//! One run: the DAG scheduler. It owns the run's state machine (flow-core), asks the
//! strategy (flow-strategy) when and how many nodes may start, starts them, and
//! settles them as they finish.
//!
//! Hot-path rules: a node that finishes without waiting is completed inline, with
//! no task; only a node that really suspends is spawned into the run's `JoinSet`.
//! Per-node work is O(degree): no scan over all nodes except once at cancellation.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use flow_core::{
    AttemptReport, Context, NodeCall, NodeError, NodeReport, NodeReports, NodeStatus, Phase, Report, RunState,
    RunStatus, Settled, Transition, Workflow,
};
use flow_strategy::Strategy;
use futures::FutureExt;
use serde_json::Value;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::event::{Event, EventKind, EventSender};
use crate::redact::Redactor;

/// What one node's execution (all its attempts) produced.
struct Finished {
    node: usize,
    result: Result<Value, NodeError>,
    cancelled: bool,
    attempts: Vec<AttemptReport>,
}

enum ReadyQueue {
    /// Unbounded concurrency: everything ready starts now, order is irrelevant.
    Fifo(VecDeque<usize>),
    /// A cap: the lowest file index first (topological order, ties by file order).
    Ordered(BinaryHeap<Reverse<usize>>),
}

impl ReadyQueue {
    fn push(&mut self, node: usize) {
        match self {
            ReadyQueue::Fifo(q) => q.push_back(node),
            ReadyQueue::Ordered(h) => h.push(Reverse(node)),
        }
    }
    fn pop(&mut self) -> Option<usize> {
        match self {
            ReadyQueue::Fifo(q) => q.pop_front(),
            ReadyQueue::Ordered(h) => h.pop().map(|Reverse(n)| n),
        }
    }
    fn is_empty(&self) -> bool {
        match self {
            ReadyQueue::Fifo(q) => q.is_empty(),
            ReadyQueue::Ordered(h) => h.is_empty(),
        }
    }
}

pub(crate) struct Driver {
    shared: Arc<Shared>,
    strategy: Arc<dyn Strategy>,
    context: Context,
    state: RunState,
    /// The report's entries, filled in as nodes settle (one array, no copy at the end).
    entries: Vec<(Arc<str>, NodeReport)>,
    ready: ReadyQueue,
    tasks: JoinSet<Finished>,
    in_flight: usize,
    cap: usize,
    fail_fast: bool,
    failed: bool,
    cancelling: bool,
    user_token: CancellationToken,
    admit_at: Option<tokio::time::Instant>,
    transitions: Vec<Transition>,
}

/// What the driver and every node task of one run share: one `Arc` clone per node.
struct Shared {
    workflow: Arc<Workflow>,
    t0: Instant,
    events: Option<EventSender>,
    run_id: u64,
    /// The run's own token, a child of the caller's: fail-fast cancels it alone.
    cancel: CancellationToken,
    redactor: Redactor,
    /// The `run` span: the parent of every `node` span, also in spawned tasks.
    span: tracing::Span,
}

impl Shared {
    fn now_ms(&self) -> f64 {
        ms(self.t0.elapsed())
    }

    fn emit(&self, kind: impl FnOnce() -> EventKind) {
        if let Some(tx) = &self.events {
            let _ = tx.send(Event {
                run_id: self.run_id,
                at_ms: self.now_ms(),
                kind: kind(),
            });
        }
    }
}

pub(crate) struct DriverParts {
    pub workflow: Arc<Workflow>,
    pub strategy: Arc<dyn Strategy>,
    pub input: Value,
    pub secrets: BTreeMap<String, String>,
    pub cancel: CancellationToken,
    pub events: Option<EventSender>,
    pub run_id: u64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Driver {
    pub(crate) fn new(parts: DriverParts) -> Driver {
        let DriverParts {
            workflow,
            strategy,
            input,
            secrets,
            cancel,
            events,
            run_id,
        } = parts;
        let cap = strategy.max_concurrency().map_or(usize::MAX, |n| n.get());
        let ready = if cap == usize::MAX {
            ReadyQueue::Fifo(VecDeque::new())
        } else {
            ReadyQueue::Ordered(BinaryHeap::new())
        };
        let redactor = Redactor::new(secrets.values().cloned());
        let span = tracing::info_span!("run", run_id, workflow = workflow.name());
        Driver {
            context: Context::new(workflow.clone(), input, secrets),
            state: RunState::new(&workflow),
            entries: workflow
                .nodes()
                .iter()
                .map(|node| {
                    let report = NodeReport {
                        status: NodeStatus::Cancelled,
                        attempts: 0,
                        started_ms: None,
                        finished_ms: None,
                        output: Value::Null,
                        error: None,
                        attempts_detail: Vec::new(),
                    };
                    (node.id_arc().clone(), report)
                })
                .collect(),
            ready,
            tasks: JoinSet::new(),
            in_flight: 0,
            cap,
            fail_fast: strategy.fail_fast(),
            failed: false,
            cancelling: false,
            shared: Arc::new(Shared {
                workflow,
                t0: Instant::now(),
                events,
                run_id,
                cancel: cancel.child_token(),
                redactor,
                span,
            }),
            user_token: cancel,
            admit_at: None,
            transitions: Vec::new(),
            strategy,
        }
    }

    fn emit(&self, kind: impl FnOnce() -> EventKind) {
        self.shared.emit(kind);
    }

    fn workflow(&self) -> &Arc<Workflow> {
        &self.shared.workflow
    }

    /// The whole run, inside its `run` span (inline attempts are polled inside it).
    pub(crate) fn run(self) -> impl Future<Output = Report> + Send + 'static {
        let span = self.shared.span.clone();
        self.drive().instrument(span)
    }

    async fn drive(mut self) -> Report {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.t0 = Instant::now();
        }
        self.emit(|| EventKind::RunStarted {
            workflow: self.workflow().name().to_owned(),
            strategy: self.strategy.name().to_owned(),
            nodes: self.workflow().nodes().len(),
        });
        for node in self.state.initial() {
            self.make_ready(node);
        }
        let run_token = self.shared.cancel.clone();
        loop {
            if self.user_token.is_cancelled() && !self.cancelling {
                self.cancel();
            }
            self.fill();
            if self.in_flight == 0 && (self.ready.is_empty() || self.cancelling) {
                break;
            }
            let admit_at = self.admit_at;
            tokio::select! {
                biased;
                _ = run_token.cancelled(), if !self.cancelling => self.cancel(),
                Some(joined) = self.tasks.join_next(), if self.in_flight > 0 => {
                    self.in_flight -= 1;
                    // An error here is an abort (panics are caught inside the task);
                    // the node stays running and is settled as cancelled at the end.
                    if let Ok(finished) = joined {
                        self.complete(finished);
                    }
                }
                _ = sleep_until(admit_at), if admit_at.is_some() => self.admit_at = None,
            }
        }
        self.finish()
    }

    fn make_ready(&mut self, node: usize) {
        if self.shared.events.is_some() {
            let id = self.workflow().nodes()[node].id_arc().clone();
            self.emit(|| EventKind::NodeReady { node: id });
        }
        self.ready.push(node);
    }

    /// Starts ready nodes while the strategy allows; inline completions may make
    /// more nodes ready, which this loop then starts too.
    fn fill(&mut self) {
        while !self.cancelling && self.in_flight < self.cap && self.admit_at.is_none() {
            let Some(node) = self.ready.pop() else { break };
            if let Err(wait) = self.strategy.admit() {
                self.ready.push(node);
                self.admit_at = Some(tokio::time::Instant::now() + wait);
                break;
            }
            self.start(node);
        }
    }

    fn start(&mut self, index: usize) {
        if !self.state.start(index) {
            return;
        }
        let config = match self.render(index) {
            Ok(config) => config,
            Err(message) => {
                if self.shared.events.is_some() {
                    let id = self.workflow().nodes()[index].id_arc().clone();
                    self.emit(|| EventKind::NodeStarted { node: id, attempt: 1 });
                }
                let at = self.shared.now_ms();
                self.complete(Finished {
                    node: index,
                    result: Err(NodeError::permanent(message.clone())),
                    cancelled: false,
                    attempts: vec![AttemptReport {
                        started_ms: at,
                        finished_ms: at,
                        error: Some(message),
                    }],
                });
                return;
            }
        };
        let attempts = Attempts {
            node: index,
            call: Some(NodeCall {
                node_id: self.workflow().nodes()[index].id_arc().clone(),
                config,
                attempt: 1,
                context: self.context.clone(),
            }),
            shared: self.shared.clone(),
        };
        // Poll once here: a node that finishes without waiting costs no task.
        let mut fut: Pin<Box<dyn Future<Output = Finished> + Send>> = Box::pin(attempts.run());
        let waker = futures::task::noop_waker_ref();
        match fut.as_mut().poll(&mut TaskContext::from_waker(waker)) {
            Poll::Ready(finished) => self.complete(finished),
            Poll::Pending => {
                self.in_flight += 1;
                self.tasks.spawn(fut);
            }
        }
    }

    /// Renders the node's config; an error names what is missing.
    fn render(&self, index: usize) -> Result<Arc<Value>, String> {
        let workflow = self.workflow();
        let node = &workflow.nodes()[index];
        let config = node.config();
        if config.is_literal() {
            return config
                .render(workflow.templates(), &self.context)
                .map_err(|e| e.to_string());
        }
        for id in &config.references().nodes {
            if self.context.settled_by_id(id).is_none() {
                return Err(format!(
                    "config reads `nodes.{id}`, but `{id}` has not run yet (add an edge from `{id}` to `{}`)",
                    node.id()
                ));
            }
        }
        config
            .render(workflow.templates(), &self.context)
            .map_err(|e| self.shared.redactor.redact(&format!("config: {e}")))
    }

    fn complete(&mut self, finished: Finished) {
        let Finished {
            node: index,
            result,
            cancelled,
            attempts,
        } = finished;
        let entry = &mut self.entries[index].1;
        entry.started_ms = attempts.first().map(|a| a.started_ms);
        entry.finished_ms = match attempts.last() {
            Some(a) => Some(a.finished_ms),
            None => Some(self.shared.now_ms()),
        };
        entry.attempts = attempts.len() as u32;
        entry.attempts_detail = attempts;
        let continue_on_error = self.workflow().nodes()[index].continue_on_error();
        let (status, output, error) = match result {
            _ if cancelled => (NodeStatus::Cancelled, Value::Null, None),
            Ok(output) => (NodeStatus::Succeeded, output, None),
            Err(e) => (
                NodeStatus::Failed,
                Value::Null,
                Some(self.shared.redactor.redact(e.message())),
            ),
        };
        let passes = status == NodeStatus::Succeeded || (status == NodeStatus::Failed && continue_on_error);
        self.settle(index, status, passes, output, error);
    }

    fn settle(&mut self, index: usize, status: NodeStatus, passes: bool, output: Value, error: Option<String>) {
        let shared = self.shared.clone();
        let workflow = &shared.workflow;
        if shared.events.is_some() {
            let node = workflow.nodes()[index].id_arc().clone();
            let attempts = self.entries[index].1.attempts;
            let error = error.clone();
            self.emit(|| EventKind::NodeSettled {
                node,
                status,
                attempts,
                error,
            });
        }
        self.context.record(index, Settled::new(status, output, error));
        if status == NodeStatus::Failed && !passes {
            self.failed = true;
        }
        let context = &self.context;
        let mut when = |e: usize| {
            let edge = &workflow.edges()[e];
            match &edge.when {
                None => Ok(true),
                Some(expr) => expr.is_true(context).map_err(|err| {
                    format!(
                        "edge `{}` -> `{}`: `when: {}` could not be evaluated: {err}",
                        workflow.nodes()[edge.from].id(),
                        workflow.nodes()[edge.to].id(),
                        expr.source()
                    )
                }),
            }
        };
        let mut transitions = std::mem::take(&mut self.transitions);
        self.state
            .settle(workflow, index, status, passes, &mut when, &mut transitions);
        for t in transitions.drain(..) {
            match t {
                Transition::Ready(n) => {
                    if !self.cancelling {
                        self.make_ready(n);
                    }
                }
                Transition::Settled { node, status, error } => {
                    let error = error.map(|e| shared.redactor.redact(&e));
                    if status == NodeStatus::Failed {
                        self.failed = true;
                    }
                    if shared.events.is_some() {
                        let id = workflow.nodes()[node].id_arc().clone();
                        let err = error.clone();
                        self.emit(|| EventKind::NodeSettled {
                            node: id,
                            status,
                            attempts: 0,
                            error: err,
                        });
                    }
                    self.context.record(node, Settled::new(status, Value::Null, error));
                }
            }
        }
        self.transitions = transitions;
        if self.failed && self.fail_fast && !self.cancelling {
            self.cancel();
        }
    }

    /// Stops the run: running nodes are told to stop at once (they settle as
    /// cancelled when their task returns), nodes not started become cancelled.
    fn cancel(&mut self) {
        self.cancelling = true;
        self.shared.cancel.cancel();
        self.cancel_pending();
    }

    /// Settles every node that has not started as cancelled (with its event).
    fn cancel_pending(&mut self) {
        let pending = self.state.cancel_pending();
        for node in pending {
            if self.shared.events.is_some() {
                let id = self.workflow().nodes()[node].id_arc().clone();
                self.emit(|| EventKind::NodeSettled {
                    node: id,
                    status: NodeStatus::Cancelled,
                    attempts: 0,
                    error: None,
                });
            }
            self.context
                .record(node, Settled::new(NodeStatus::Cancelled, Value::Null, None));
        }
    }

    fn finish(mut self) -> Report {
        // Anything still marked running lost its task to an abort: it was cancelled.
        if !self.state.is_finished() {
            let now = self.shared.now_ms();
            for index in 0..self.workflow().nodes().len() {
                if self.state.phase(index) == Phase::Running {
                    self.entries[index].1.finished_ms = Some(now);
                    self.settle(index, NodeStatus::Cancelled, false, Value::Null, None);
                }
            }
            // Nodes that became ready while the run was being cancelled never start.
            self.cancel_pending();
        }
        let duration_ms = self.shared.now_ms();
        let status = if self.user_token.is_cancelled() {
            RunStatus::Cancelled
        } else if self.failed {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        self.emit(|| EventKind::RunFinished { status, duration_ms });
        let shared = self.shared;
        let workflow = &shared.workflow;
        let mut entries = self.entries;
        for ((_, entry), settled) in entries.iter_mut().zip(self.context.into_settled()) {
            if let Some(s) = settled {
                entry.status = s.status;
                entry.output = shared.redactor.redact_value(s.output);
                entry.error = s.error;
            }
            if entry.started_ms.is_none() {
                entry.finished_ms = None;
            }
        }
        let nodes = NodeReports::from_entries(entries);
        Report {
            workflow: workflow.name().to_owned(),
            run_id: shared.run_id,
            strategy: self.strategy.name().to_owned(),
            status,
            duration_ms,
            nodes,
        }
    }
}

/// Waits for the next admission. tokio's timer fires on the first 1 ms tick at or
/// after the deadline, and under a quota with no burst every late start is lost for
/// good (at 50/s, 1 ms late per start is a 5% slower rate). So the timer covers all
/// but the last 2 ms, and a blocking-pool thread sleeps the rest precisely.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    const FINE: Duration = Duration::from_millis(2);
    let Some(at) = at else {
        return std::future::pending().await;
    };
    if let Some(coarse) = at.checked_sub(FINE)
        && coarse > tokio::time::Instant::now()
    {
        tokio::time::sleep_until(coarse).await;
    }
    let rest = at.saturating_duration_since(tokio::time::Instant::now());
    if !rest.is_zero() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
    }
}

/// Every attempt of one node: timeouts, retries with backoff, cancellation, panics.
struct Attempts {
    node: usize,
    call: Option<NodeCall>,
    shared: Arc<Shared>,
}

impl Attempts {
    fn cancelled(self, attempts: Vec<AttemptReport>) -> Finished {
        Finished {
            node: self.node,
            result: Err(NodeError::permanent("cancelled")),
            cancelled: true,
            attempts,
        }
    }

    async fn run(mut self) -> Finished {
        let shared = self.shared.clone();
        let node = &shared.workflow.nodes()[self.node];
        let policy = *node.retry();
        let timeout = node.timeout();
        let kind = node.kind();
        let mut attempts = Vec::with_capacity(1);
        let mut attempt = 1;
        loop {
            let started = shared.now_ms();
            if shared.events.is_some() {
                let id = node.id_arc().clone();
                shared.emit(|| EventKind::NodeStarted { node: id, attempt });
            }
            let span = tracing::debug_span!(
                parent: &shared.span,
                "node",
                node = node.id(),
                kind = node.kind_name(),
                attempt
            );
            // The last attempt hands its call over; earlier ones need a copy.
            let next = if attempt < policy.max_attempts {
                self.call.clone()
            } else {
                self.call.take()
            };
            let Some(mut call) = next else {
                return Finished {
                    node: self.node,
                    result: Err(NodeError::permanent("internal error: no call left for this attempt")),
                    cancelled: false,
                    attempts,
                };
            };
            call.attempt = attempt;
            let work = AssertUnwindSafe(kind.run(call)).catch_unwind().instrument(span.clone());
            let outcome = tokio::select! {
                biased;
                r = with_timeout(work, timeout) => Some(r),
                _ = shared.cancel.cancelled() => None,
            };
            let finished = shared.now_ms();
            let result = match outcome {
                None => {
                    attempts.push(AttemptReport {
                        started_ms: started,
                        finished_ms: finished,
                        error: Some("cancelled".to_owned()),
                    });
                    return self.cancelled(attempts);
                }
                Some(Err(TimedOut)) => Err(NodeError::new(format!(
                    "timed out after {} ms (timeout_ms)",
                    timeout.map_or(0, |t| t.as_millis())
                ))),
                Some(Ok(Err(panic))) => Err(NodeError::permanent(format!("panicked: {}", panic_message(&panic)))),
                Some(Ok(Ok(r))) => r,
            };
            let error = result.as_ref().err().map(|e| shared.redactor.redact(e.message()));
            attempts.push(AttemptReport {
                started_ms: started,
                finished_ms: finished,
                error: error.clone(),
            });
            match result {
                Err(e) if attempt < policy.max_attempts && e.is_retryable() => {
                    let unit = (RandomState::new().hash_one((self.node, attempt)) >> 11) as f64 / (1u64 << 53) as f64;
                    let mut wait = policy.delay(attempt, unit);
                    if let Some(asked) = e.retry_after() {
                        wait = wait.max(asked.min(policy.max_backoff));
                    }
                    if shared.events.is_some() {
                        let id = node.id_arc().clone();
                        let error = error.unwrap_or_default();
                        shared.emit(|| EventKind::AttemptFailed {
                            node: id,
                            attempt,
                            error,
                            retry_in_ms: ms(wait),
                        });
                    }
                    tracing::debug!(
                        parent: &span,
                        node = node.id(),
                        attempt,
                        wait_ms = ms(wait),
                        "attempt failed; retrying"
                    );
                    tokio::select! {
                        biased;
                        _ = shared.cancel.cancelled() => return self.cancelled(attempts),
                        _ = tokio::time::sleep(wait) => {}
                    }
                    attempt += 1;
                }
                result => {
                    return Finished {
                        node: self.node,
                        result,
                        cancelled: false,
                        attempts,
                    };
                }
            }
        }
    }
}

struct TimedOut;

async fn with_timeout<F: Future>(work: F, timeout: Option<Duration>) -> Result<F::Output, TimedOut> {
    match timeout {
        None => Ok(work.await),
        Some(limit) => tokio::time::timeout(limit, work).await.map_err(|_| TimedOut),
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}
