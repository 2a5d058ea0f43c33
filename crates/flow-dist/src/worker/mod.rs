//! The worker's side (`flow worker`): claim tasks, run them, write outcomes.
//! This module holds the claim loop and the outcome writer; `cache.rs` the
//! runs a worker knows (their workflow and settled nodes), `attempt.rs` the
//! running of one task, `listing.rs` what `flow workers list` shows.

mod attempt;
mod cache;
mod listing;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use flow_core::{ContextWriter, Record, Settled, Workflow};
use flow_engine::Engine;
use tokio::task::{AbortHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::secrets::{self, Secrets};
use crate::{Error, Result, connect, listening, now_ms, schema, storage};

use attempt::execute;
use cache::refresh;
pub use listing::{WorkerRow, list_workers};

/// Most tasks claimed by one statement.
const CLAIM_BATCH: usize = 64;
/// Runs whose workflow and context a worker keeps; past this, it starts afresh.
const CACHED_RUNS: usize = 256;
/// A worker not seen for this long is shown as gone.
const GONE_AFTER_MS: i64 = 15_000;

/// How a worker works.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerConfig {
    /// Attempts run at once.
    pub concurrency: usize,
    /// Only tasks of these kinds (`None`: every kind this worker's engine knows).
    pub kinds: Option<Vec<String>>,
    /// How long a claim holds without renewal: a worker that dies holds its
    /// tasks this long. Claims are renewed every third of it.
    pub claim_ttl: Duration,
    /// How often an idle worker looks for work without a notification (claims
    /// that expired, a notification lost).
    pub poll: Duration,
    /// After a stop, how long attempts under way may go on; then they are
    /// dropped and put back in the queue.
    pub grace: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 16,
            kinds: None,
            claim_ttl: Duration::from_secs(10),
            poll: Duration::from_secs(1),
            grace: Duration::from_secs(30),
        }
    }
}

impl WorkerConfig {
    /// The default config with `concurrency` attempts at once.
    pub fn new(concurrency: usize) -> Self {
        WorkerConfig {
            concurrency: concurrency.max(1),
            ..WorkerConfig::default()
        }
    }

    /// Only tasks of `kinds`.
    pub fn kinds(mut self, kinds: Option<Vec<String>>) -> Self {
        self.kinds = kinds;
        self
    }

    /// Claims hold `ttl` without renewal.
    pub fn claim_ttl(mut self, ttl: Duration) -> Self {
        self.claim_ttl = ttl.max(Duration::from_millis(300));
        self
    }

    /// After a stop, attempts under way may go on this long.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }
}

/// A worker: claims tasks from the queue in `url`'s database and runs them
/// with `engine`'s node kinds.
#[derive(Debug)]
pub struct Worker {
    engine: Engine,
    url: String,
    config: WorkerConfig,
    id: String,
}

/// A task as claimed.
struct Claimed {
    id: String,
    run_id: String,
    node: String,
    item: Option<usize>,
    attempt: u32,
    kind: String,
    config: String,
    timeout: Option<Duration>,
}

/// One run as a worker knows it: its workflow and what has settled.
struct KnownRun {
    workflow: Arc<Workflow>,
    context: ContextWriter,
    secrets: Secrets,
    /// The last record read.
    seq: u64,
}

/// What every attempt of a worker shares.
struct Shared {
    engine: Engine,
    /// The queue connection, opened again when PostgreSQL closed it.
    db: std::sync::RwLock<Arc<tokio_postgres::Client>>,
    /// The runs' records, read through the journal's API (never its tables).
    journal: Arc<dyn flow_journal::Journal>,
    outcomes: tokio::sync::mpsc::UnboundedSender<Outcome>,
    id: String,
    runs: Mutex<HashMap<String, Arc<Mutex<KnownRun>>>>,
}

const CLAIM: &str = "WITH c AS (
        SELECT id FROM flow_tasks
        WHERE (state = 'queued' OR (state = 'claimed' AND claimed_until < $3))
          AND ($4::text[] IS NULL OR kind = ANY($4))
        ORDER BY created_at, id
        LIMIT $2
        FOR UPDATE SKIP LOCKED
    )
    UPDATE flow_tasks t SET state = 'claimed', worker = $1, claimed_until = $5, claims = t.claims + 1, started_at = $3
    FROM c WHERE t.id = c.id
    RETURNING t.id, t.run_id, t.node, t.item, t.attempt, t.kind, t.config, t.timeout_ms";

/// Outcomes, a batch per statement (one commit for many), each with its
/// notification. Only tasks still claimed by this worker take one: a task
/// cancelled or claimed again meanwhile is not this worker's any more.
const DONE: &str = "WITH d AS (
        UPDATE flow_tasks t SET state = 'done', outcome = v.outcome, finished_at = $3
        FROM UNNEST($1::text[], $2::text[]) AS v(id, outcome)
        WHERE t.id = v.id AND t.worker = $4 AND t.state = 'claimed'
        RETURNING t.id
    )
    SELECT pg_notify('flow_task_done', id) FROM d";

/// Most outcomes written by one statement.
const DONE_BATCH: usize = 512;

type Outcome = (String, String, tokio::sync::oneshot::Sender<()>);

impl Shared {
    /// The queue connection now.
    fn db(&self) -> Arc<tokio_postgres::Client> {
        self.db.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// Writes outcomes in batches: all that wait go in one statement (prepared
/// again on each new connection).
async fn outcome_loop(shared: Arc<Shared>, mut rx: tokio::sync::mpsc::UnboundedReceiver<Outcome>) {
    let mut prepared: Option<(Arc<tokio_postgres::Client>, tokio_postgres::Statement)> = None;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < DONE_BATCH {
            match rx.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let ids: Vec<&str> = batch.iter().map(|(id, _, _)| id.as_str()).collect();
        let outcomes: Vec<&str> = batch.iter().map(|(_, o, _)| o.as_str()).collect();
        let db = shared.db();
        if prepared.as_ref().is_none_or(|(on, _)| !Arc::ptr_eq(on, &db)) {
            prepared = db.prepare(DONE).await.ok().map(|done| (db.clone(), done));
        }
        let written = match &prepared {
            Some((db, done)) => db
                .query(done, &[&ids, &outcomes, &now_ms(), &shared.id])
                .await
                .map(drop)
                .map_err(|e| flow_journal::pg_message(&e)),
            None => Err("the connection is lost".to_owned()),
        };
        if let Err(e) = written {
            tracing::warn!(error = %e, tasks = batch.len(), "writing outcomes failed; the tasks will be claimed again");
        }
        for (_, _, ack) in batch {
            let _ = ack.send(());
        }
    }
}

impl Worker {
    /// A worker for the queue in `url` (the journal's PostgreSQL database).
    pub fn new(engine: Engine, url: impl Into<String>, config: WorkerConfig) -> Worker {
        Worker {
            engine,
            url: url.into(),
            config,
            id: uuid::Uuid::now_v7().to_string(),
        }
    }

    /// The worker's id, as `flow workers list` shows it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Works until `stop` is cancelled, then lets attempts under way finish
    /// (for at most the config's grace) and leaves.
    ///
    /// # Errors
    ///
    /// When the database cannot be reached or prepared at the start; later
    /// failures are logged and retried.
    pub async fn run(self, stop: CancellationToken) -> Result<()> {
        let Worker {
            engine,
            url,
            config,
            id,
        } = self;
        let mut db = connect(&url).await?;
        schema::migrate(&mut db).await?;
        let journal = flow_journal::open(&url, flow_journal::SyncLevel::Normal)
            .await
            .map_err(|e| Error::Open {
                target: flow_journal::shown_url(&url),
                reason: e.to_string(),
            })?;
        let (mut _listener, mut notes) = listening(&url, &["flow_task_new", "flow_task_cancel"]).await?;
        let claim = db.prepare(CLAIM).await.map_err(storage)?;
        let kinds_text = config.kinds.as_ref().map(|k| k.join(","));
        db.execute(
            "INSERT INTO flow_workers (id, host, pid, kinds, concurrency, started_at, seen_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
            &[
                &id,
                &flow_journal::this_host(),
                &(std::process::id() as i64),
                &kinds_text,
                &(config.concurrency as i32),
                &now_ms(),
            ],
        )
        .await
        .map_err(storage)?;
        tracing::info!(worker = %id, concurrency = config.concurrency, kinds = ?config.kinds, "worker started");
        let (outcomes, pending) = tokio::sync::mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            engine,
            db: std::sync::RwLock::new(Arc::new(db)),
            journal,
            outcomes,
            id: id.clone(),
            runs: Mutex::new(HashMap::new()),
        });
        tokio::spawn(outcome_loop(shared.clone(), pending));
        let mut claim = (shared.db(), claim);
        // Since when PostgreSQL cannot be reached; past the claim TTL the worker
        // gives up (exits with an error, for its supervisor to start it again).
        let mut down_since: Option<tokio::time::Instant> = None;
        let ttl_ms = config.claim_ttl.as_millis() as i64;
        let mut running: HashMap<String, AbortHandle> = HashMap::new();
        let mut set: JoinSet<String> = JoinSet::new();
        let mut renew = tokio::time::interval((config.claim_ttl / 3).min(Duration::from_secs(5)));
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut poll = tokio::time::interval(config.poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut listening = true;
        let mut want = true;
        let mut stopping: Option<tokio::time::Instant> = None;
        loop {
            // Claims in batches: once half the room is free (or all is idle),
            // not a task at a time as they finish.
            if shared.db().is_closed() {
                match reconnect(&shared, &url).await {
                    Ok((db, statement, listener)) => {
                        tracing::info!(worker = %shared.id, "the queue connection was opened again");
                        claim = (db, statement);
                        (_listener, notes) = listener;
                        listening = true;
                        down_since = None;
                        want = true;
                    }
                    Err(e) => {
                        let since = *down_since.get_or_insert_with(tokio::time::Instant::now);
                        if since.elapsed() > config.claim_ttl {
                            return Err(Error::Storage(format!(
                                "PostgreSQL could not be reached for longer than the claim TTL ({} s): {e}",
                                config.claim_ttl.as_secs_f64()
                            )));
                        }
                        tracing::warn!(error = %e, "the queue connection is lost; trying again");
                    }
                }
            }
            let low_water = running.len() <= config.concurrency / 2;
            if want && stopping.is_none() && low_water && down_since.is_none() {
                let room = (config.concurrency - running.len()).min(CLAIM_BATCH);
                let now = now_ms();
                let rows = claim
                    .0
                    .query(
                        &claim.1,
                        &[&shared.id, &(room as i64), &now, &config.kinds, &(now + ttl_ms)],
                    )
                    .await;
                want = false;
                match rows {
                    Ok(rows) => {
                        want = rows.len() == room;
                        let claimed: Vec<Claimed> = rows.iter().map(claimed).collect();
                        refresh(&shared, &claimed).await;
                        for task in claimed {
                            let id = task.id.clone();
                            let handle = set.spawn(execute(shared.clone(), task));
                            running.insert(id, handle);
                        }
                    }
                    Err(e) => tracing::warn!(error = %flow_journal::pg_message(&e), "claiming tasks failed; retrying"),
                }
            }
            if let Some(deadline) = stopping {
                if set.is_empty() {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    set.abort_all();
                    while set.join_next().await.is_some() {}
                    break;
                }
            }
            tokio::select! {
                () = stop.cancelled(), if stopping.is_none() => {
                    tracing::info!(worker = %shared.id, running = running.len(), "stopping: no new tasks");
                    stopping = Some(tokio::time::Instant::now() + config.grace);
                }
                note = notes.recv(), if listening => match note {
                    Some(note) if note.channel() == "flow_task_cancel" => {
                        if let Some(handle) = running.remove(note.payload()) {
                            handle.abort();
                            tracing::info!(task = note.payload(), "task cancelled by its coordinator; dropped");
                        }
                    }
                    Some(_) => want = true,
                    None => {
                        tracing::warn!("the worker's notification connection ended; polling only");
                        listening = false;
                    }
                },
                joined = set.join_next(), if !set.is_empty() => {
                    if let Some(Ok(id)) = joined {
                        running.remove(&id);
                    }
                    while let Some(joined) = set.try_join_next() {
                        if let Ok(id) = joined {
                            running.remove(&id);
                        }
                    }
                    want = true;
                }
                _ = poll.tick() => want = true,
                _ = renew.tick() => {
                    let now = now_ms();
                    if let Err(e) = shared.db().execute(
                        "UPDATE flow_tasks SET claimed_until = $2 WHERE worker = $1 AND state = 'claimed'",
                        &[&shared.id, &(now + ttl_ms)],
                    ).await {
                        tracing::warn!(error = %flow_journal::pg_message(&e), "renewing claims failed");
                    }
                    let _ = shared.db().execute(
                        "UPDATE flow_workers SET seen_at = $2, running = $3 WHERE id = $1",
                        &[&shared.id, &now, &(running.len() as i32)],
                    ).await;
                }
            }
        }
        // Whatever is still claimed goes back to the queue, for another worker.
        let _ = shared
            .db()
            .execute(
                "UPDATE flow_tasks SET state = 'queued', worker = NULL, claimed_until = NULL
                 WHERE worker = $1 AND state = 'claimed'",
                &[&shared.id],
            )
            .await;
        let _ = shared
            .db()
            .execute(
                "UPDATE flow_workers SET stopped_at = $2, running = 0 WHERE id = $1",
                &[&shared.id, &now_ms()],
            )
            .await;
        tracing::info!(worker = %shared.id, "worker stopped");
        Ok(())
    }
}

type Notes = tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::Notification>;

/// Opens the queue's connections again: the claim connection (swapped into
/// `shared`, its claim statement prepared) and the notification listener.
async fn reconnect(
    shared: &Shared,
    url: &str,
) -> Result<(
    Arc<tokio_postgres::Client>,
    tokio_postgres::Statement,
    (tokio_postgres::Client, Notes),
)> {
    let db = Arc::new(connect(url).await?);
    let statement = db.prepare(CLAIM).await.map_err(storage)?;
    let listener = listening(url, &["flow_task_new", "flow_task_cancel"]).await?;
    *shared.db.write().unwrap_or_else(PoisonError::into_inner) = db.clone();
    Ok((db, statement, listener))
}

fn claimed(row: &tokio_postgres::Row) -> Claimed {
    Claimed {
        id: row.get(0),
        run_id: row.get(1),
        node: row.get(2),
        item: row.get::<_, Option<i64>>(3).map(|i| i.max(0) as usize),
        attempt: row.get::<_, i32>(4).max(1) as u32,
        kind: row.get(5),
        config: row.get(6),
        timeout: row
            .get::<_, Option<i64>>(7)
            .map(|ms| Duration::from_millis(ms.max(0) as u64)),
    }
}
