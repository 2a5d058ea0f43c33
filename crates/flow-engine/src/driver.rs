//! One run: the DAG scheduler. It owns the run's state machine (flow-core), asks the
//! strategy (flow-strategy) when and how many nodes may start, starts them, and
//! settles them as they finish.
//!
//! Hot-path rules: a node that finishes without waiting is completed inline, with
//! no task; only a node that really suspends is spawned into the run's `JoinSet`.
//! Per-node work is O(degree): no scan over all nodes except once at cancellation.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use flow_core::{
    Context, ContextWriter, InFlight, ItemRun, NodeCall, NodeReport, NodeReports, NodeStatus, Phase, Report, RunState,
    RunStatus, Settled, Transition, Workflow,
};
use flow_journal::RunLog;
use flow_strategy::Strategy;
use serde_json::Value;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::attempt::{Attempts, Finished, Limit, sleep_until};

mod for_each;
mod resume;
use crate::event::{Event, EventKind, EventSender};
use crate::fact::Fact;
use crate::limit::SharedLimit;
use crate::redact::Redactor;
use for_each::ForEachRun;

/// What waits in the ready queue: a node, or the next item of a `for_each` node.
/// Encoded as `node * 2 + is_items`, so a queue ordered by it takes nodes in
/// file order, each node's items right after the node would be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Unit(usize);

impl Unit {
    fn node(node: usize) -> Unit {
        Unit(node << 1)
    }
    fn items(node: usize) -> Unit {
        Unit((node << 1) | 1)
    }
    fn index(self) -> usize {
        self.0 >> 1
    }
    fn is_items(self) -> bool {
        self.0 & 1 == 1
    }
}

enum ReadyQueue {
    /// Unbounded concurrency: everything ready starts now, order is irrelevant.
    Fifo(VecDeque<Unit>),
    /// A cap: the lowest file index first (topological order, ties by file order).
    Ordered(BinaryHeap<Reverse<Unit>>),
}

impl ReadyQueue {
    fn push(&mut self, unit: Unit) {
        match self {
            ReadyQueue::Fifo(q) => q.push_back(unit),
            ReadyQueue::Ordered(h) => h.push(Reverse(unit)),
        }
    }
    /// Puts back a unit that was popped but could not start, first in line.
    fn put_back(&mut self, unit: Unit) {
        match self {
            ReadyQueue::Fifo(q) => q.push_front(unit),
            ReadyQueue::Ordered(h) => h.push(Reverse(unit)),
        }
    }
    fn pop(&mut self) -> Option<Unit> {
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

/// Node indices are small and distinct: they hash as themselves (a lookup per
/// `for_each` item must not pay for SipHash).
#[derive(Default)]
struct NodeIndexHasher(u64);

impl Hasher for NodeIndexHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = n as u64;
    }
}

pub(crate) struct Driver {
    shared: Arc<Shared>,
    strategy: Arc<dyn Strategy>,
    /// The only handle that records results; node kinds get `Context`s, read-only.
    writer: ContextWriter,
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
    /// The `for_each` nodes whose items are under way.
    for_each: HashMap<usize, ForEachRun, BuildHasherDefault<NodeIndexHasher>>,
    /// Most items one `for_each` may give.
    max_items: usize,
    /// What a resumed run takes from its journal instead of running again.
    restore: Option<Box<Restore>>,
    /// Whether the run's cancellation is in the journal.
    cancel_recorded: bool,
    /// Set while a restored result is being settled: it is not journaled again.
    replaying: bool,
    /// Cancelled when the run is asked to park ([`crate::RunHandle::park`]).
    park_now: CancellationToken,
}

/// A run whose every unit under way waits is parked only when none is due
/// sooner than this: a short wait is waited in memory, on time.
const PARK_AFTER: Duration = Duration::from_secs(1);

/// A resumed run's results from the journal, by node index.
#[derive(Default)]
pub(crate) struct Restore {
    /// Nodes that ran and settled.
    pub nodes: HashMap<usize, NodeReport>,
    /// Items that settled, by node, then index.
    pub items: HashMap<usize, HashMap<usize, (ItemRun, Value)>>,
    /// Units cut short: they run again with their next attempt.
    pub in_flight: HashMap<(usize, Option<usize>), InFlight>,
    /// The signals the run's waits had taken: the newest number, by name.
    pub signals_taken: std::collections::HashMap<String, u64>,
}

/// What the driver and every node task of one run share: one `Arc` clone per node.
pub(crate) struct Shared {
    pub(crate) workflow: Arc<Workflow>,
    t0: Instant,
    events: Option<EventSender>,
    pub(crate) run_id: Arc<str>,
    /// The run's own token, a child of the caller's: fail-fast cancels it alone.
    pub(crate) cancel: CancellationToken,
    pub(crate) redactor: Redactor,
    /// The `run` span: the parent of every `node` span, also in spawned tasks.
    pub(crate) span: tracing::Span,
    /// Each node's shared limit (`None` when no node of the workflow takes one).
    limits: Option<Box<[Option<Arc<SharedLimit>>]>>,
    /// The run's journal, when it is durable.
    pub(crate) journal: Option<RunLog>,
    /// How long the run had gone on before this process took it (a resumed run).
    offset: Duration,
    /// Where attempts run, when not in this process.
    pub(crate) dispatcher: Option<Arc<dyn crate::Dispatcher>>,
    /// Signals sent to the run (in memory), or the bell for those written to its journal.
    pub(crate) signals: crate::Signals,
    /// The signals the run's waits have taken.
    pub(crate) taken: crate::waits::Taken,
    /// Its units that wait now.
    pub(crate) waiters: crate::waits::Waiters,
    /// Whether the run is parked when every unit under way waits.
    pub(crate) parking: bool,
    /// Where the run sits among runs that start runs: its parent, its depth,
    /// its children, and the engine that starts them.
    pub(crate) family: crate::child::Family,
}

impl Shared {
    pub(crate) fn now_ms(&self) -> f64 {
        ms(self.t0.elapsed())
    }

    /// Whether someone subscribed to the run's events.
    #[inline]
    pub(crate) fn has_subscribers(&self) -> bool {
        self.events.is_some()
    }

    /// Sends the event `kind` builds, only when someone subscribed.
    pub(crate) fn emit(&self, kind: impl FnOnce() -> EventKind) {
        if let Some(tx) = &self.events {
            let _ = tx.send(Event {
                run_id: self.run_id.clone(),
                at_ms: self.now_ms(),
                kind: kind(),
            });
        }
    }

    fn node_id(&self, index: usize) -> Arc<str> {
        self.workflow.nodes()[index].id_arc().clone()
    }
}

pub(crate) struct DriverParts {
    pub workflow: Arc<Workflow>,
    pub strategy: Arc<dyn Strategy>,
    pub input: Value,
    pub secrets: BTreeMap<String, String>,
    pub cancel: CancellationToken,
    pub events: Option<EventSender>,
    pub run_id: Arc<str>,
    pub limits: Option<Box<[Option<Arc<SharedLimit>>]>>,
    pub max_items: usize,
    pub journal: Option<RunLog>,
    pub restore: Option<Box<Restore>>,
    pub offset: Duration,
    pub dispatcher: Option<Arc<dyn crate::Dispatcher>>,
    pub signals: crate::Signals,
    pub parking: bool,
    pub park_now: CancellationToken,
    pub family: crate::child::Family,
    pub inherited_secrets: Vec<String>,
}

/// Milliseconds to the microsecond: whole microseconds over 1000 print as
/// `150.713`, where `as_secs_f64() * 1000.0` gave `150.71300000000002`.
pub(crate) fn ms(d: Duration) -> f64 {
    (d.as_secs() * 1_000_000 + u64::from(d.subsec_micros())) as f64 / 1000.0
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
            limits,
            max_items,
            journal,
            restore,
            offset,
            dispatcher,
            signals,
            parking,
            park_now,
            family,
            inherited_secrets,
        } = parts;
        let taken = restore.as_ref().map(|r| r.signals_taken.clone()).unwrap_or_default();
        let journal_present = journal.is_some();
        let cap = strategy.max_concurrency().map_or(usize::MAX, |n| n.get());
        let ready = if cap == usize::MAX {
            ReadyQueue::Fifo(VecDeque::new())
        } else {
            ReadyQueue::Ordered(BinaryHeap::new())
        };
        let redactor = Redactor::new(secrets.values().cloned().chain(inherited_secrets));
        let span = tracing::info_span!("run", run_id = &*run_id, workflow = workflow.name());
        Driver {
            writer: ContextWriter::for_run(workflow.clone(), input, secrets, run_id.clone()),
            state: RunState::new(&workflow),
            entries: workflow
                .nodes()
                .iter()
                .map(|node| (node.id_arc().clone(), NodeReport::new(NodeStatus::Cancelled)))
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
                limits,
                journal,
                offset,
                dispatcher,
                signals,
                taken: tokio::sync::Mutex::new(taken),
                waiters: crate::waits::Waiters::default(),
                parking: parking && journal_present,
                family,
            }),
            user_token: cancel,
            admit_at: None,
            transitions: Vec::new(),
            for_each: HashMap::default(),
            max_items,
            restore,
            replaying: false,
            cancel_recorded: false,
            park_now,
            strategy,
        }
    }

    fn workflow(&self) -> &Arc<Workflow> {
        &self.shared.workflow
    }

    fn context(&self) -> &Context {
        self.writer.context()
    }

    /// The whole run, inside its `run` span (inline attempts are polled inside it).
    pub(crate) fn run(self) -> impl Future<Output = Report> + Send + 'static {
        let span = self.shared.span.clone();
        self.drive().instrument(span)
    }

    async fn drive(mut self) -> Report {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.t0 = Instant::now().checked_sub(shared.offset).unwrap_or_else(Instant::now);
        }
        self.shared.emit(|| EventKind::RunStarted {
            workflow: self.workflow().name().to_owned(),
            strategy: self.strategy.name().to_owned(),
            nodes: self.workflow().nodes().len(),
        });
        for node in self.state.initial() {
            self.make_ready(node);
        }
        let run_token = self.shared.cancel.clone();
        let waits = self.shared.clone();
        let park_now = self.park_now.clone();
        // Only a journaled run can park: a plain run's loop does not watch for it.
        let journaled = self.shared.journal.is_some();
        // A resumed run cancelled before it goes on (a parked run cancelled)
        // keeps what its journal says settled: restored results are settled
        // first. Only what was under way restarts, to be cancelled at once: a
        // parked run's units under way are its waits.
        if self.restore.is_some() && self.user_token.is_cancelled() {
            self.fill();
        }
        loop {
            if self.user_token.is_cancelled() && !self.cancelling {
                self.cancel();
            }
            if self.cancelling && self.user_token.is_cancelled() && !self.cancel_recorded {
                let at_ms = self.shared.now_ms();
                self.shared.note(&Fact::RunCancelled { at_ms }, true);
                self.cancel_recorded = true;
            }
            self.fill();
            if self.in_flight == 0 && (self.ready.is_empty() || self.cancelling) {
                break;
            }
            if self.should_park() {
                return self.park().await;
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
                // A unit began to wait: perhaps every unit under way waits now.
                () = waits.waiters.bell.notified(), if waits.parking || park_now.is_cancelled() => {}
                // Asked to park: at once if every unit waits, else when they do.
                () = park_now.cancelled(), if journaled && !park_now.is_cancelled() => {}
            }
        }
        let shared = self.shared.clone();
        let report = self.finish();
        let finished = Fact::RunFinished { report: &report };
        if let Err(e) = shared.note_durable(&finished).await {
            // A failed write stays with the writer: its next flush reports it.
            // Subscribers hear of the end all the same.
            tracing::error!(error = %e, "the run's end could not be journaled");
            shared.publish(&finished);
        } else if shared.journal.is_some() {
            shared.family.ended(&shared.run_id);
        }
        report
    }

    /// Whether to park the run now: it may (a journal, parking asked for, or
    /// asked now through [`crate::RunHandle::park`]),
    /// nothing else can start, every unit under way waits, and none is due
    /// within [`PARK_AFTER`] (a short wait is waited in memory).
    fn should_park(&self) -> bool {
        let shared = &self.shared;
        let asked = shared.journal.is_some() && self.park_now.is_cancelled();
        if !(shared.parking || asked)
            || self.cancelling
            || self.in_flight == 0
            || !self.ready.is_empty()
            || self.admit_at.is_some()
            || shared.waiters.count() < self.in_flight
        {
            return false;
        }
        let (due, _, _) = shared.waiters.summary();
        asked || due.is_none_or(|at| at - flow_journal::now_ms() >= PARK_AFTER.as_millis() as i64)
    }

    /// Parks the run: its waiting units stop here (their records say what
    /// they wait for: a resumed run waits for the same), `run_waiting` is
    /// recorded, and the journal's row says `waiting`, due at the earliest
    /// wait, held by nobody. The report says `waiting`.
    async fn park(mut self) -> Report {
        let (due, signals, units) = self.shared.waiters.summary();
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        self.in_flight = 0;
        let shared = self.shared.clone();
        let fact = Fact::RunWaiting {
            at_ms: shared.now_ms(),
            wake_at_ms: due,
            signals: &signals,
        };
        match shared.note_durable(&fact).await {
            Ok(()) => {
                if let Some(log) = &shared.journal {
                    let writer = log.writer();
                    match writer.journal().park(&shared.run_id, writer.owner(), due).await {
                        Ok(true) => {
                            // A signal sent before the row said `waiting` rang
                            // nothing: if one is there, the run is due now.
                            let taken = shared.taken.lock().await.clone();
                            for name in &signals {
                                let after = taken.get(name).copied().unwrap_or(0);
                                if let Ok(Some(_)) = writer.journal().next_signal(&shared.run_id, name, after).await {
                                    if let Err(e) = writer.journal().make_due(&shared.run_id).await {
                                        tracing::warn!(error = %e, "a parked run's signal could not make it due");
                                    }
                                    break;
                                }
                            }
                        }
                        Ok(false) => {
                            tracing::warn!(run_id = %shared.run_id, "not parked: another process holds the run")
                        }
                        Err(e) => {
                            tracing::error!(run_id = %shared.run_id, error = %e, "not parked: the run stays with this process's lease until it expires, then is taken over")
                        }
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "the run's parking could not be journaled"),
        }
        self.into_report(RunStatus::Waiting, |state, index, entry| {
            entry.status = if state.phase(index) == Phase::Running {
                NodeStatus::Running
            } else {
                NodeStatus::Pending
            };
            if let Some((_, item, waiting)) = units.iter().find(|(node, _, _)| *node == index) {
                entry.status = NodeStatus::Waiting;
                if item.is_none() {
                    entry.waiting_for = Some(waiting.described());
                    entry.child_run_id = waiting.child_run_id.clone();
                }
            }
        })
    }

    fn make_ready(&mut self, node: usize) {
        let shared = &self.shared;
        shared.emit(|| EventKind::NodeReady {
            node: shared.node_id(node),
        });
        self.ready.push(Unit::node(node));
    }

    /// Starts ready nodes while the strategy allows; inline completions may make
    /// more nodes ready, which this loop then starts too.
    fn fill(&mut self) {
        while !self.cancelling && self.in_flight < self.cap && self.admit_at.is_none() {
            let Some(unit) = self.ready.pop() else { break };
            let node = unit.index();
            if unit.is_items() {
                if !self.item_ready(node) {
                    continue;
                }
                if self.restore.is_some() && self.replay_item(node) {
                    continue;
                }
            } else if self.restore.is_some() && self.replay(node) {
                continue;
            } else if self.is_for_each(node) {
                // Rendering the list starts nothing: no admission is spent on it.
                self.begin_for_each(node);
                continue;
            }
            if let Err(wait) = self.strategy.admit() {
                self.ready.put_back(unit);
                self.admit_at = Some(tokio::time::Instant::now() + wait);
                break;
            }
            if unit.is_items() {
                self.start_item(node);
            } else {
                self.start(node);
            }
        }
    }

    fn start(&mut self, index: usize) {
        if !self.state.start(index) {
            return;
        }
        let prepared = self
            .render(index)
            .and_then(|config| Ok((config, self.limit(index, &[])?)));
        let (config, limit) = match prepared {
            Ok(prepared) => prepared,
            Err(message) => {
                let shared = &self.shared;
                shared.emit(|| EventKind::NodeStarted {
                    node: shared.node_id(index),
                    attempt: 1,
                });
                let at = shared.now_ms();
                self.complete(Finished::failed_to_start(index, None, at, message));
                return;
            }
        };
        let call = NodeCall::new(self.shared.node_id(index), config, self.context().clone());
        let resumed = self.in_flight(index, None);
        self.launch(Attempts {
            node: index,
            item: None,
            call: Some(call),
            resumed,
            limit,
            shared: self.shared.clone(),
        });
    }

    /// Runs a node's (or an item's) attempts: polled once here, spawned only if
    /// they wait.
    fn launch(&mut self, attempts: Attempts) {
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
        let node = &self.workflow().nodes()[index];
        let config = node.config();
        if config.is_literal() {
            return config.render(self.context()).map_err(|e| e.to_string());
        }
        for id in &config.references().nodes {
            if self.context().settled_by_id(id).is_none() {
                return Err(format!(
                    "config reads `nodes.{id}`, but `{id}` has not run yet (add an edge from `{id}` to `{}`)",
                    node.id()
                ));
            }
        }
        config
            .render(self.context())
            .map_err(|e| self.shared.redactor.redact(&config_error(&e)))
    }

    /// The node's shared limit and its rendered key, if it takes one; `extra` are
    /// a `for_each` item's names, which the key may read.
    fn limit(&self, index: usize, extra: &[(&str, &Value)]) -> Result<Option<Limit>, String> {
        let Some(shared) = self.shared.limits.as_ref().and_then(|l| l[index].clone()) else {
            return Ok(None);
        };
        let Some(limit) = self.workflow().nodes()[index].limit() else {
            return Ok(None);
        };
        let key = match limit.key() {
            None => String::new(),
            Some(template) => match template.render_with(self.context(), extra) {
                Ok(value) => match &*value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
                Err(e) => return Err(self.shared.redactor.redact(&format!("limit.key: {e}"))),
            },
        };
        Ok(Some(Limit {
            name: limit.name().clone(),
            shared,
            key,
        }))
    }

    fn complete(&mut self, finished: Finished) {
        let Finished {
            node: index,
            item,
            result,
            cancelled,
            attempts,
        } = finished;
        if let Some(item) = item {
            self.complete_item(index, item, result, cancelled, attempts);
            return;
        }
        let entry = &mut self.entries[index].1;
        entry.started_ms = attempts.first().map(|a| a.started_ms);
        entry.finished_ms = match attempts.last() {
            Some(a) => Some(a.finished_ms),
            None => Some(self.shared.now_ms()),
        };
        entry.attempts = attempts.len() as u32;
        if self.shared.limits.is_some() && self.shared.workflow.nodes()[index].limit().is_some() {
            entry.limit_wait_ms = Some(attempts.iter().filter_map(|a| a.limit_wait_ms).sum());
        }
        entry.attempts_detail = attempts;
        if self.shared.family.has_children() {
            entry.child_run_id = self.shared.family.child_of(index, None);
        }
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

    /// Records a node's result in the context, with its `NodeSettled`
    /// transition (journaled when `journaled` holds): the one place a result is
    /// written.
    fn record(&mut self, index: usize, status: NodeStatus, output: Value, error: Option<String>, journaled: bool) {
        let settled = Fact::NodeSettled {
            node: index,
            base: &self.entries[index].1,
            status,
            output: &output,
            error: &error,
        };
        self.shared.note(&settled, journaled);
        let recorded = self.writer.record(index, Settled::new(status, output, error));
        // The state machine settles each node once, so a slot is never written twice.
        debug_assert!(recorded, "node {index} was recorded twice");
    }

    fn settle(&mut self, index: usize, status: NodeStatus, passes: bool, output: Value, error: Option<String>) {
        // Journaled (unless restored from the journal) before any downstream
        // start, which waits for it to be durable.
        self.record(index, status, output, error, !self.replaying);
        if status == NodeStatus::Failed && !passes {
            self.failed = true;
        }
        let shared = self.shared.clone();
        let workflow = &shared.workflow;
        let context = self.writer.context();
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
                Transition::Ready(n) if !self.cancelling => self.make_ready(n),
                Transition::Settled { node, status, error } => {
                    if status == NodeStatus::Failed {
                        self.failed = true;
                    }
                    let error = error.map(|e| shared.redactor.redact(&e));
                    self.record(node, status, Value::Null, error, false);
                }
                _ => {}
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
        for node in self.state.cancel_pending() {
            self.record(node, NodeStatus::Cancelled, Value::Null, None, false);
        }
    }

    fn finish(mut self) -> Report {
        // Anything still marked running lost its task to an abort: it was cancelled.
        if !self.state.is_finished() {
            let now = self.shared.now_ms();
            let items: Vec<usize> = self.for_each.keys().copied().collect();
            for node in items {
                self.finish_for_each(node);
            }
            for index in 0..self.workflow().nodes().len() {
                if self.state.phase(index) == Phase::Running {
                    self.entries[index].1.finished_ms = Some(now);
                    self.settle(index, NodeStatus::Cancelled, false, Value::Null, None);
                }
            }
            // Nodes that became ready while the run was being cancelled never start.
            self.cancel_pending();
        }
        let status = if self.user_token.is_cancelled() {
            RunStatus::Cancelled
        } else if self.failed {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        // The workflow's `output:`, rendered once everything succeeded: a
        // template that fails fails the run.
        let output = match (status, self.workflow().output()) {
            (RunStatus::Succeeded, Some(template)) => Some(
                template
                    .render(self.context())
                    .map(|v| self.shared.redactor.redact_value((*v).clone()))
                    .map_err(|e| match e.place() {
                        Some(_) => e.to_string(),
                        None => format!("output: {e}"),
                    }),
            ),
            _ => None,
        };
        let status = match &output {
            Some(Err(_)) => RunStatus::Failed,
            _ => status,
        };
        let parent = self.shared.family.parent.clone();
        let mut report = self.into_report(status, |_, _, _| {});
        report.parent = parent;
        match output {
            Some(Ok(value)) => report.output = value,
            Some(Err(error)) => report.output_error = Some(error),
            None => {}
        }
        report
    }

    /// The run's report with `status`: each node's entry with its settled
    /// result (the output redacted); `unsettled` fills in one without.
    fn into_report(self, status: RunStatus, unsettled: impl Fn(&RunState, usize, &mut NodeReport)) -> Report {
        let duration_ms = self.shared.now_ms();
        let shared = self.shared;
        let mut entries = self.entries;
        for (index, ((_, entry), settled)) in entries.iter_mut().zip(self.writer.into_settled()).enumerate() {
            match settled {
                Some(s) => {
                    entry.status = s.status;
                    entry.output = shared.redactor.redact_value(s.output);
                    entry.error = s.error;
                }
                None => unsettled(&self.state, index, entry),
            }
            if entry.started_ms.is_none() {
                entry.finished_ms = None;
            }
        }
        Report::new(
            shared.workflow.name(),
            &*shared.run_id,
            self.strategy.name(),
            status,
            duration_ms,
            NodeReports::from_entries(entries),
        )
    }
}

/// A config that failed to render, for the report: the error names its place
/// (`nodes[0].config.url: ...`) when the template knows it.
pub(crate) fn config_error(e: &flow_core::TemplateError) -> String {
    match e.place() {
        Some(_) => e.to_string(),
        None => format!("config: {e}"),
    }
}
