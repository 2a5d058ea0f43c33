//! One run's options ([`RunOptions`]) and its handle ([`RunHandle`]).

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{Error, EventReceiver, EventSender, Report, Result, Strategy, StrategySpec};

/// Options of one run.
#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    pub(crate) input: Option<Value>,
    pub(crate) strategy: Option<Arc<dyn Strategy>>,
    pub(crate) cancel: Option<CancellationToken>,
    pub(crate) events: Option<EventSender>,
    pub(crate) strategy_spec: Option<StrategySpec>,
    pub(crate) journal: Option<flow_journal::Writer>,
    pub(crate) run_id: Option<Arc<str>>,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) signals: Option<crate::Signals>,
    pub(crate) park: bool,
    pub(crate) park_now: Option<CancellationToken>,
    pub(crate) parent: Option<flow_core::Parent>,
    pub(crate) depth: u32,
    pub(crate) parent_bell: Option<crate::Signals>,
    /// Secret values of the parent run, redacted in this one too.
    pub(crate) inherited_secrets: Vec<String>,
}

impl RunOptions {
    /// Default options: the workflow's own input and strategy.
    pub fn new() -> Self {
        RunOptions::default()
    }

    /// The run's input (replaces the workflow's default input).
    pub fn input(mut self, input: Value) -> Self {
        self.input = Some(input);
        self
    }

    /// Runs with this strategy instead of the workflow's.
    pub fn strategy(mut self, strategy: Arc<dyn Strategy>) -> Self {
        self.strategy = Some(strategy);
        self
    }

    /// Runs with the strategy `spec` describes instead of the workflow's (built
    /// with this engine's strategy kinds, and journaled as the run's strategy, so
    /// a resumed run uses it too).
    pub fn strategy_spec(mut self, spec: StrategySpec) -> Self {
        self.strategy_spec = Some(spec);
        self
    }

    /// With a journal: binds the idempotency key `key` to the run in the
    /// commit that creates it (so the key is never seen without its run).
    /// When another run holds the key already, the run is not created and
    /// starting it fails with `journal::Error::Lost`: look the key up then
    /// (`Journal::bound`).
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Makes the run durable: its records go to `writer`'s journal, each
    /// attempt's start durable before the node's side effect, each result
    /// before anything downstream starts. See `docs/durability.md`.
    pub fn journal(mut self, writer: flow_journal::Writer) -> Self {
        self.journal = Some(writer);
        self
    }

    /// Gives the run this id instead of a fresh UUIDv7 (a service that must
    /// answer with the id before the run starts). Ids must be unique.
    pub fn run_id(mut self, id: impl Into<Arc<str>>) -> Self {
        self.run_id = Some(id.into());
        self
    }

    /// Delivers signals to the run's `signal` nodes through `signals` (a run
    /// without a journal; with one, signals are written to the journal and
    /// `signals` rung). Without it, the handle has its own
    /// ([`RunHandle::signals`]).
    pub fn signals(mut self, signals: crate::Signals) -> Self {
        self.signals = Some(signals);
        self
    }

    /// Parks the run when every node under way waits (`wait`, `signal`) and
    /// nothing else can start: its records are in the journal, its row says
    /// `waiting` with when it is due, no process holds it, and the handle's
    /// report says `waiting`. A `Runtime` (or `Engine::resume`) takes it up
    /// again when due. Only with a journal; without one, the run waits in
    /// memory.
    pub fn park_when_waiting(mut self) -> Self {
        self.park = true;
        self
    }

    /// Cancels the run when this token is cancelled.
    pub fn cancel_token(mut self, token: CancellationToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// Sends the run's events to this channel.
    pub fn events(mut self, sender: EventSender) -> Self {
        self.events = Some(sender);
        self
    }

    /// Subscribes to the run's events: returns the receiving end.
    pub fn subscribe(&mut self) -> EventReceiver {
        let (tx, rx) = mpsc::unbounded_channel();
        self.events = Some(tx);
        rx
    }
}

/// A run started with [`Engine::start`].
#[derive(Debug)]
pub struct RunHandle {
    pub(crate) run_id: Arc<str>,
    pub(crate) cancel: CancellationToken,
    pub(crate) task: tokio::task::JoinHandle<Result<Report>>,
    pub(crate) signals: crate::Signals,
    pub(crate) park_now: CancellationToken,
}

impl RunHandle {
    /// The run's id: a UUIDv7, as in its report and events.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The run's signals: [`crate::Signals::send`] delivers one to a run
    /// without a journal; [`crate::Signals::ring`] says one was written to
    /// its journal.
    pub fn signals(&self) -> &crate::Signals {
        &self.signals
    }

    /// Asks the run to park as soon as every node under way waits (at once if
    /// they do now), whether or not it parks by itself: a journaled run that
    /// waits is left `waiting` in its journal, not cancelled (Ctrl-C on an
    /// attached `flow run`). A run that does not wait goes on; without a
    /// journal, nothing happens.
    pub fn park(&self) {
        self.park_now.cancel();
    }

    /// A token whose cancellation asks the run to park, as [`RunHandle::park`]
    /// (for a task that outlives the borrow of the handle: a signal handler).
    pub fn park_token(&self) -> CancellationToken {
        self.park_now.clone()
    }

    /// Cancels the run: running nodes stop at once, the rest become `cancelled`.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// A token that cancels the run when cancelled.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Waits for the report.
    pub async fn wait(self) -> Result<Report> {
        self.task.await.map_err(|e| Error::Aborted(e.to_string()))?
    }
}
