//! The coordinator's side: attempts become rows of `flow_tasks`, outcomes
//! come back through `NOTIFY`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use flow_core::{NodeCall, NodeError};
use flow_engine::{Dispatcher, Quota, Slot, SlotGuard, Task};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::secrets::{self, Secrets};
use crate::{Error, Result, connect, listening, now_ms, schema, storage};

/// Most rows inserted (or cancelled) by one statement.
const BATCH: usize = 1024;
/// How often outcomes are also looked for without a notification.
const SWEEP: Duration = Duration::from_secs(1);

/// The PostgreSQL queue, as a [`Dispatcher`]: give it to
/// [`flow_engine::EngineBuilder::dispatcher`] and every attempt of every run
/// of that engine runs on a [`Worker`](crate::Worker). Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

struct Inner {
    target: String,
    /// For quotas: admissions are answered on their own connection.
    quotas: tokio_postgres::Client,
    admit: tokio_postgres::Statement,
    coordinator: String,
    ops: mpsc::UnboundedSender<Op>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    /// The slot keys whose rows this process has made.
    slot_keys: Mutex<std::collections::HashSet<String>>,
    /// The kinds of this coordinator's queued tasks that no live worker takes.
    unserved: tokio::sync::watch::Sender<Vec<String>>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("target", &self.inner.target)
            .field("coordinator", &self.inner.coordinator)
            .finish_non_exhaustive()
    }
}

struct Row {
    id: String,
    run_id: String,
    node: String,
    item: Option<i64>,
    attempt: i32,
    kind: String,
    config: String,
    key: String,
    timeout_ms: Option<i64>,
}

enum Op {
    Insert(Row, oneshot::Sender<Result<()>>),
    Cancel(String),
    /// Gives a limit's slot back: its key, its number, its holder.
    Release(String, i32, String),
    /// Cancels every open task of a run (another coordinator took it over).
    Abandon(String, oneshot::Sender<Result<()>>),
}

impl Queue {
    /// Connects to `url` (the journal's database), creates the queue's tables
    /// if needed, and starts the tasks that insert attempts and wait for
    /// outcomes. `coordinator` names this process in the rows it inserts (the
    /// journal writer's owner token). Must be called inside a Tokio runtime.
    pub async fn connect(url: &str, coordinator: &str) -> Result<Queue> {
        let mut client = connect(url).await?;
        schema::migrate(&mut client).await?;
        let (listener, notes) = listening(url, &["flow_task_done"]).await?;
        let quotas = connect(url).await?;
        let admit = quotas.prepare(ADMIT).await.map_err(storage)?;
        let (ops, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            target: flow_journal::shown_url(url),
            quotas,
            admit,
            coordinator: coordinator.to_owned(),
            ops,
            waiting: Mutex::new(HashMap::new()),
            slot_keys: Mutex::new(std::collections::HashSet::new()),
            unserved: tokio::sync::watch::Sender::new(Vec::new()),
        });
        tokio::spawn(write_loop(client, rx, inner.coordinator.clone()));
        tokio::spawn(outcome_loop(listener, notes, Arc::downgrade(&inner)));
        Ok(Queue { inner })
    }

    /// Cancels the open tasks of run `run_id` (queued or being worked on),
    /// which a coordinator that died left behind: call it before taking the
    /// run over. Workers running one drop it.
    pub async fn abandon(&self, run_id: &str) -> Result<()> {
        let (ack, done) = oneshot::channel();
        self.inner
            .ops
            .send(Op::Abandon(run_id.to_owned(), ack))
            .map_err(|_| stopped())?;
        done.await.map_err(|_| stopped())?
    }
}

fn stopped() -> Error {
    Error::Storage("the queue's connection has ended".into())
}

/// Cancels the task when the attempt is dropped before its outcome came.
struct Pending {
    inner: Arc<Inner>,
    id: String,
    armed: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.armed {
            self.inner
                .waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&self.id);
            let _ = self.inner.ops.send(Op::Cancel(std::mem::take(&mut self.id)));
        }
    }
}

#[async_trait::async_trait]
impl Dispatcher for Queue {
    async fn dispatch(&self, task: Task, call: NodeCall) -> Result<Value, NodeError> {
        let secrets: Secrets = secrets::of_context(&call.context);
        let config = secrets::mask(&call.config, &secrets).to_string();
        let id = uuid::Uuid::now_v7().to_string();
        let (tx, outcome) = oneshot::channel();
        self.inner
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.clone(), tx);
        let mut pending = Pending {
            inner: self.inner.clone(),
            id: id.clone(),
            armed: true,
        };
        let (ack, inserted) = oneshot::channel();
        let row = Row {
            id,
            run_id: task.run_id.to_string(),
            node: task.node.to_string(),
            item: task.item.map(|i| i as i64),
            attempt: task.attempt as i32,
            kind: task.kind.to_string(),
            config,
            key: task.idempotency_key,
            timeout_ms: task.timeout.map(|t| t.as_millis() as i64),
        };
        let queued = match self.inner.ops.send(Op::Insert(row, ack)) {
            Ok(()) => inserted.await.unwrap_or_else(|_| Err(stopped())),
            Err(_) => Err(stopped()),
        };
        if let Err(e) = queued {
            // Not queued: retryable, like any infrastructure failure.
            return Err(NodeError::new(format!("not queued: {e}")));
        }
        // While it waits: when no live worker takes its kind, the run's
        // operators hear it (once), in its journal and its events.
        let mut unserved = self.inner.unserved.subscribe();
        let tell = |unserved: &mut tokio::sync::watch::Receiver<Vec<String>>| {
            let now = unserved.borrow_and_update().iter().any(|k| **k == *task.kind);
            if now {
                task.notices.say(&format!(
                    "no live `flow worker` takes `{kind}` tasks: this attempt waits in the queue until one that takes `{kind}` starts",
                    kind = task.kind
                ));
            }
            now
        };
        let mut told = tell(&mut unserved);
        tokio::pin!(outcome);
        let outcome = loop {
            tokio::select! {
                outcome = &mut outcome => break outcome,
                changed = unserved.changed(), if !told => {
                    told = changed.is_err() || tell(&mut unserved);
                }
            }
        };
        let outcome = outcome.map_err(|_| NodeError::new("the queue's connection ended before the outcome came"))?;
        pending.armed = false;
        decode(&outcome, &secrets)
    }

    async fn adopt(&self, run_id: &str) -> Result<(), String> {
        self.abandon(run_id).await.map_err(|e| e.to_string())
    }

    async fn slot(&self, slot: &Slot<'_>) -> Option<Result<SlotGuard, Duration>> {
        match self.take_slot(slot).await {
            Ok(verdict) => Some(verdict),
            Err(e) => {
                // The shared cap cannot be read: wait and ask again, rather
                // than run beyond it.
                tracing::warn!(error = %e, "a shared limit's slots could not be read; retrying");
                Some(Err(Duration::from_millis(100)))
            }
        }
    }

    async fn admit(&self, quota: &Quota<'_>) -> Option<Result<(), Duration>> {
        let interval = (1e6 / quota.per_second).max(1.0) as i64;
        let tolerance = interval * i64::from(quota.burst.max(1) - 1);
        // The declaration is part of the key: a changed limit starts afresh.
        let key = format!(
            "{}\n{}\n{}\n{}/{}",
            quota.workflow.unwrap_or(""),
            quota.name,
            quota.key,
            quota.per_second,
            quota.burst
        );
        let now = now_us();
        match self
            .inner
            .quotas
            .query_opt(&self.inner.admit, &[&key, &now, &interval, &tolerance])
            .await
        {
            Ok(Some(_)) => Some(Ok(())),
            Ok(None) => {
                let tat: Option<i64> = self
                    .inner
                    .quotas
                    .query_opt("SELECT tat FROM flow_quotas WHERE key = $1", &[&key])
                    .await
                    .ok()
                    .flatten()
                    .map(|r| r.get(0));
                let wait_us = tat.map_or(interval, |tat| tat - tolerance - now).max(1_000);
                Some(Err(Duration::from_micros(wait_us as u64)))
            }
            Err(e) => {
                // The shared quota cannot be read: wait and ask again, rather
                // than start beyond it.
                tracing::warn!(error = %flow_journal::pg_message(&e), "a shared quota could not be read; retrying");
                Some(Err(Duration::from_millis(100)))
            }
        }
    }
}

/// How long a slot holds without renewal: a coordinator that dies frees its
/// slots this long after. Renewed every [`SWEEP`] × 10.
const SLOT_LEASE_MS: i64 = 30_000;

const MAKE_SLOTS: &str = "INSERT INTO flow_slots (key, slot) SELECT $1::text, g FROM generate_series(0, $2::int4 - 1) g
    ON CONFLICT DO NOTHING";

/// Takes a free slot (or one whose lease ran out), skipping those another
/// coordinator is taking right now.
const TAKE_SLOT: &str = "UPDATE flow_slots s SET holder = $2, coordinator = $3, until = $4
    FROM (SELECT key, slot FROM flow_slots
          WHERE key = $1 AND slot < $6 AND (holder IS NULL OR until < $5)
          ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED) f
    WHERE s.key = f.key AND s.slot = f.slot
    RETURNING s.slot";

const RELEASE: &str = "UPDATE flow_slots SET holder = NULL, coordinator = NULL, until = NULL
    WHERE key = $1 AND slot = $2 AND holder = $3";

const RENEW_SLOTS: &str = "UPDATE flow_slots SET until = $2 WHERE coordinator = $1 AND holder IS NOT NULL";

/// The kinds of this coordinator's tasks (`$1`) queued since before `$2` that
/// no live worker (seen since `$3`, not stopped) takes, with how many wait.
const UNSERVED: &str = "SELECT t.kind, count(*) FROM flow_tasks t
     WHERE t.coordinator = $1 AND t.state = 'queued' AND t.created_at < $2
       AND NOT EXISTS (
         SELECT 1 FROM flow_workers w
         WHERE w.stopped_at IS NULL AND w.seen_at >= $3
           AND (w.kinds IS NULL OR t.kind = ANY(string_to_array(w.kinds, ',')))
       )
     GROUP BY t.kind ORDER BY t.kind";

/// How long a task may wait in the queue before a coordinator says that no
/// live worker takes it.
const UNSERVED_AFTER_MS: i64 = 2_000;
/// A worker not seen for this long is not counted as live.
const WORKER_GONE_MS: i64 = 15_000;

/// A held slot: dropping it gives the slot back.
struct HeldSlot {
    ops: mpsc::UnboundedSender<Op>,
    key: String,
    slot: i32,
    holder: String,
}

impl Drop for HeldSlot {
    fn drop(&mut self) {
        let _ = self.ops.send(Op::Release(
            std::mem::take(&mut self.key),
            self.slot,
            std::mem::take(&mut self.holder),
        ));
    }
}

impl Queue {
    async fn take_slot(&self, slot: &Slot<'_>) -> Result<Result<SlotGuard, Duration>> {
        let key = format!(
            "{}\n{}\n{}\n{}",
            slot.workflow.unwrap_or(""),
            slot.name,
            slot.key,
            slot.max_concurrency
        );
        let cap = slot.max_concurrency.max(1) as i32;
        let known = self
            .inner
            .slot_keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&key);
        if !known {
            self.inner
                .quotas
                .execute(MAKE_SLOTS, &[&key, &cap])
                .await
                .map_err(storage)?;
            let mut keys = self.inner.slot_keys.lock().unwrap_or_else(PoisonError::into_inner);
            if keys.len() >= 10_000 {
                keys.clear();
            }
            keys.insert(key.clone());
        }
        let holder = uuid::Uuid::now_v7().to_string();
        let now = now_ms();
        let taken = self
            .inner
            .quotas
            .query_opt(
                TAKE_SLOT,
                &[
                    &key,
                    &holder,
                    &self.inner.coordinator,
                    &(now + SLOT_LEASE_MS),
                    &now,
                    &cap,
                ],
            )
            .await
            .map_err(storage)?;
        Ok(match taken {
            Some(row) => Ok(Box::new(HeldSlot {
                ops: self.inner.ops.clone(),
                key,
                slot: row.get(0),
                holder,
            }) as SlotGuard),
            None => Err(Duration::from_millis(20)),
        })
    }
}

/// One start under a quota, GCRA as governor does it: admitted when the
/// theoretical arrival time (`tat`) is at most `$4` (the burst's tolerance)
/// ahead of now (`$2`), and then `tat` moves on by one interval (`$3`). One
/// statement: the row lock orders coordinators. Times in microseconds of the
/// wall clock (coordinators' clocks must agree, as NTP keeps them).
const ADMIT: &str = "INSERT INTO flow_quotas AS q (key, tat) VALUES ($1::text, $2::int8 + $3::int8)
    ON CONFLICT (key) DO UPDATE SET tat = GREATEST(q.tat, $2::int8) + $3::int8
        WHERE GREATEST(q.tat, $2::int8) - $2::int8 <= $4::int8
    RETURNING tat";

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// A worker's outcome: `{"output": ...}` or `{"error": "...", "retryable": bool}`.
pub(crate) fn encode(result: &Result<Value, NodeError>, secrets: &Secrets) -> String {
    match result {
        Ok(output) => json!({ "output": secrets::mask(output, secrets) }).to_string(),
        Err(e) => {
            let message = secrets::mask(&Value::String(e.message().to_owned()), secrets);
            json!({ "error": message, "retryable": e.is_retryable() }).to_string()
        }
    }
}

fn decode(outcome: &Value, secrets: &Secrets) -> Result<Value, NodeError> {
    if let Some(output) = outcome.get("output") {
        return Ok(secrets::unmask(output, secrets));
    }
    let message = match outcome.get("error").map(|m| secrets::unmask(m, secrets)) {
        Some(Value::String(m)) => m,
        _ => format!("a worker's outcome could not be read: {outcome}"),
    };
    if outcome.get("retryable").and_then(Value::as_bool).unwrap_or(false) {
        Err(NodeError::new(message))
    } else {
        Err(NodeError::permanent(message))
    }
}

const INSERT: &str = "WITH t AS (
        INSERT INTO flow_tasks (id, run_id, node, item, attempt, kind, config, idempotency_key, timeout_ms,
                                coordinator, state, created_at)
        SELECT u.id, u.run_id, u.node, u.item, u.attempt, u.kind, u.config, u.key, u.timeout_ms, $10, 'queued', $11
        FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::int4[], $6::text[], $7::text[], $8::text[],
                    $9::int8[]) AS u(id, run_id, node, item, attempt, kind, config, key, timeout_ms)
        RETURNING kind
    )
    SELECT pg_notify('flow_task_new', k) FROM (SELECT DISTINCT kind AS k FROM t) d";

const CANCEL: &str = "WITH c AS (
        UPDATE flow_tasks SET state = 'cancelled', finished_at = $2
        WHERE id = ANY($1) AND state IN ('queued', 'claimed')
        RETURNING id, worker
    )
    SELECT pg_notify('flow_task_cancel', id) FROM c WHERE worker IS NOT NULL";

const ABANDON: &str = "WITH c AS (
        UPDATE flow_tasks SET state = 'cancelled', finished_at = $2
        WHERE run_id = $1 AND state IN ('queued', 'claimed')
        RETURNING id, worker
    )
    SELECT pg_notify('flow_task_cancel', id) FROM c WHERE worker IS NOT NULL";

/// Inserts and cancels tasks, a batch per statement.
async fn write_loop(client: tokio_postgres::Client, mut rx: mpsc::UnboundedReceiver<Op>, coordinator: String) {
    let insert = match client.prepare(INSERT).await {
        Ok(statement) => statement,
        Err(e) => {
            tracing::error!(error = %flow_journal::pg_message(&e), "the queue cannot prepare its statements");
            return;
        }
    };
    while let Some(first) = rx.recv().await {
        let mut rows = Vec::new();
        let mut acks = Vec::new();
        let mut cancels = Vec::new();
        let mut next = Some(first);
        while let Some(op) = next.take() {
            match op {
                Op::Insert(row, ack) => {
                    rows.push(row);
                    acks.push(ack);
                }
                Op::Cancel(id) => cancels.push(id),
                Op::Release(key, slot, holder) => {
                    if let Err(e) = client.execute(RELEASE, &[&key, &slot, &holder]).await {
                        tracing::warn!(error = %flow_journal::pg_message(&e), "giving a limit's slot back failed; its lease frees it");
                    }
                }
                Op::Abandon(run_id, ack) => {
                    let result = client
                        .execute(ABANDON, &[&run_id, &now_ms()])
                        .await
                        .map(|_| ())
                        .map_err(storage);
                    let _ = ack.send(result);
                }
            }
            if rows.len() + cancels.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !rows.is_empty() {
            let result = insert_rows(&client, &insert, &rows, &coordinator).await;
            for ack in acks {
                let _ = ack.send(result.clone());
            }
        }
        if !cancels.is_empty()
            && let Err(e) = client.execute(CANCEL, &[&cancels, &now_ms()]).await
        {
            tracing::warn!(error = %flow_journal::pg_message(&e), "cancelling queued tasks failed");
        }
    }
}

async fn insert_rows(
    client: &tokio_postgres::Client,
    insert: &tokio_postgres::Statement,
    rows: &[Row],
    coordinator: &str,
) -> Result<()> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let runs: Vec<&str> = rows.iter().map(|r| r.run_id.as_str()).collect();
    let nodes: Vec<&str> = rows.iter().map(|r| r.node.as_str()).collect();
    let items: Vec<Option<i64>> = rows.iter().map(|r| r.item).collect();
    let attempts: Vec<i32> = rows.iter().map(|r| r.attempt).collect();
    let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
    let configs: Vec<&str> = rows.iter().map(|r| r.config.as_str()).collect();
    let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    let timeouts: Vec<Option<i64>> = rows.iter().map(|r| r.timeout_ms).collect();
    client
        .query(
            insert,
            &[
                &ids,
                &runs,
                &nodes,
                &items,
                &attempts,
                &kinds,
                &configs,
                &keys,
                &timeouts,
                &coordinator,
                &now_ms(),
            ],
        )
        .await
        .map(|_| ())
        .map_err(storage)
}

/// Takes the outcomes of finished tasks (and removes their rows).
const TAKE: &str = "DELETE FROM flow_tasks WHERE id = ANY($1) AND state = 'done' RETURNING id, outcome";

/// Hands outcomes to the attempts waiting for them: on each notification, and
/// every [`SWEEP`] for all that still wait (a notification is lost when its
/// connection drops; then the sweep alone delivers, a second late).
async fn outcome_loop(
    client: tokio_postgres::Client,
    mut notes: mpsc::UnboundedReceiver<tokio_postgres::Notification>,
    inner: std::sync::Weak<Inner>,
) {
    let mut sweep = tokio::time::interval(SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut listening = true;
    let mut sweeps = 0u32;
    // The kinds this coordinator said no live worker takes (said once, until served).
    let mut unserved: Vec<String> = Vec::new();
    loop {
        let mut ids: Vec<String> = Vec::new();
        let swept = tokio::select! {
            note = notes.recv(), if listening => {
                match note {
                    Some(note) => {
                        ids.push(note.payload().to_owned());
                        while let Ok(more) = notes.try_recv() {
                            ids.push(more.payload().to_owned());
                        }
                    }
                    None => {
                        tracing::error!("the queue's notification connection ended; outcomes now come by the sweep");
                        listening = false;
                    }
                }
                false
            }
            _ = sweep.tick() => true,
        };
        let Some(inner) = inner.upgrade() else { return };
        if swept {
            sweeps += 1;
            let waits = !inner.waiting.lock().unwrap_or_else(PoisonError::into_inner).is_empty();
            if waits || !unserved.is_empty() {
                let now = now_ms();
                match client
                    .query(
                        UNSERVED,
                        &[&inner.coordinator, &(now - UNSERVED_AFTER_MS), &(now - WORKER_GONE_MS)],
                    )
                    .await
                {
                    Ok(rows) => {
                        let kinds: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
                        for (kind, queued) in &kinds {
                            if !unserved.contains(kind) {
                                tracing::warn!(
                                    kind = %kind,
                                    queued,
                                    "no live `flow worker` takes `{kind}` tasks: they wait in the queue until one that takes `{kind}` starts"
                                );
                            }
                        }
                        unserved = kinds.into_iter().map(|(k, _)| k).collect();
                        inner.unserved.send_if_modified(|now| {
                            let changed = *now != unserved;
                            if changed {
                                now.clone_from(&unserved);
                            }
                            changed
                        });
                    }
                    Err(e) => {
                        tracing::debug!(error = %flow_journal::pg_message(&e), "looking for unserved tasks failed")
                    }
                }
            }
            if sweeps % 10 == 0
                && let Err(e) = client
                    .execute(RENEW_SLOTS, &[&inner.coordinator, &(now_ms() + SLOT_LEASE_MS)])
                    .await
            {
                tracing::warn!(error = %flow_journal::pg_message(&e), "renewing limit slots failed");
            }
        }
        {
            let waiting = inner.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            if swept {
                ids = waiting.keys().cloned().collect();
            } else {
                ids.retain(|id| waiting.contains_key(id));
            }
        }
        if ids.is_empty() {
            continue;
        }
        match client.query(TAKE, &[&ids]).await {
            Ok(rows) => {
                for row in rows {
                    let id: String = row.get(0);
                    let text: Option<String> = row.get(1);
                    let outcome = text.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_else(
                        || json!({ "error": "a worker's outcome could not be read", "retryable": false }),
                    );
                    let waiter = inner.waiting.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(outcome);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %flow_journal::pg_message(&e), "reading outcomes failed; retrying"),
        }
    }
}
