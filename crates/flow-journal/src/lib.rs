//! Durable runs for **flow**: every run's records (see [`flow_core::Record`]) in
//! a journal that outlives the process.
//!
//! - [`Journal`] is the storage seam: append a batch of records atomically, load
//!   a run, list runs, take and renew a run's lease. Two implementations:
//!   [`SqliteJournal`] (one file, the embedded default) and [`PgJournal`]
//!   (PostgreSQL, shared by several processes and machines). Each creates and
//!   migrates its own schema.
//! - [`Writer`] is the group commit: one dedicated thread takes every record the
//!   engine produces, writes all that are waiting in one transaction, and then
//!   wakes everyone who waited for them. A 10,000-node fan-out pays a handful of
//!   fsyncs, not 10,000.
//! - [`RunLog`] is one run's handle on the writer: records get the run's next
//!   sequence number in the order they are appended.
//!
//! This crate knows the records of `flow-core`, not the engine: the engine
//! decides what to write and when to wait.

#![warn(missing_docs)]

mod owner;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
mod writer;

use std::sync::Arc;

use async_trait::async_trait;
use flow_core::{Record, RunStatus};

pub use owner::{Owner, this_host};
#[cfg(feature = "postgres")]
pub use postgres::{
    CONNECT_TIMEOUT, PgJournal, connect as pg_connect, ensure_schema, in_schema, open_connection as pg_open_connection,
    pg_message, run_migrations, shown as shown_url,
};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteJournal;
pub use writer::{RunLog, Writer};

/// How long a run's lease lasts unless renewed: an owner gone this long is
/// taken for dead, wherever it ran.
pub const LEASE: std::time::Duration = std::time::Duration::from_secs(15);

/// What went wrong with a journal.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The target could not be opened or prepared (unwritable, not a database,
    /// refused).
    #[error("journal {target}: {reason}")]
    Open {
        /// The path or URL (without password).
        target: String,
        /// Why.
        reason: String,
    },
    /// A read or write failed.
    #[error("journal: {0}")]
    Storage(String),
    /// The journal cannot be reached or written for now (its connection was
    /// lost, its disk is full): nothing was written, and the same write may
    /// be tried again. The writer does so, with a backoff, until it goes
    /// through.
    #[error("journal unavailable: {0}")]
    Unavailable(String),
    /// A record or a run that is there already: the batch wrote nothing. (A
    /// batch tried again after [`Error::Unavailable`] meets this when its
    /// first try did commit.)
    #[error("journal: {0}")]
    Duplicate(String),
    /// A stored record could not be read back.
    #[error("journal: run {run_id}, record {seq}: {reason}")]
    Corrupt {
        /// The run.
        run_id: String,
        /// The record's sequence number.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// Run `run_id` is held by another process now (it took the run over when
    /// this one seemed gone): this process's records of it are not written.
    #[error("journal: run {run_id} was taken over by another process; this one no longer writes it")]
    Lost {
        /// The run.
        run_id: String,
    },
    /// The journal refused this run's records (a record it cannot store):
    /// the run cannot go on; the other runs do.
    #[error("journal: run {run_id}'s records were refused: {reason}")]
    Refused {
        /// The run.
        run_id: String,
        /// The journal's error.
        reason: String,
    },
    /// The writer has stopped (its thread ended or an earlier write failed).
    #[error("journal writer stopped: {0}")]
    Stopped(String),
}

/// A journal's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How hard SQLite makes each commit durable (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SyncLevel {
    /// fsync at every commit: a commit survives a power cut (the default).
    #[default]
    Full,
    /// fsync at checkpoints only (WAL): a commit survives the process's death,
    /// the last ones may be lost in a power cut. Faster.
    Normal,
}

impl std::str::FromStr for SyncLevel {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "full" => Ok(SyncLevel::Full),
            "normal" => Ok(SyncLevel::Normal),
            other => Err(format!("unknown sync level `{other}` (expected `full` or `normal`)")),
        }
    }
}

/// A record with its place: the run and its 1-based sequence number.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The run.
    pub run_id: Arc<str>,
    /// Its sequence number within the run: 1, 2, 3... with no gap.
    pub seq: u64,
    /// The record.
    pub record: Record,
}

/// A run's row: what lists show without reading its records.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    /// The run's id.
    pub run_id: String,
    /// The workflow's name.
    pub workflow: String,
    /// As stored: `Running` until the run finishes, then `Succeeded`, `Failed`
    /// or `Cancelled`. See [`RunRow::status_now`] for `Interrupted`.
    pub status: RunStatus,
    /// Wall-clock start, ms since the Unix epoch.
    pub started_at_ms: i64,
    /// Wall-clock end, when finished.
    pub finished_at_ms: Option<i64>,
    /// The run's duration, when finished.
    pub duration_ms: Option<f64>,
    /// The process that holds the run, while it runs.
    pub owner: Option<Owner>,
    /// Until when the owner's lease holds, ms since the Unix epoch.
    pub lease_until_ms: Option<i64>,
    /// Nodes by status (`{"succeeded": 3, ...}`), when finished.
    pub counts: Option<serde_json::Value>,
    /// For a child run: the run (and its `workflow` node) that started it.
    pub parent: Option<flow_core::Parent>,
}

impl RunRow {
    /// The status as a reader should see it now: a `running` run whose owner is
    /// gone (its lease expired, or, on this machine, its process no longer
    /// exists) is `interrupted`.
    pub fn status_now(&self, now_ms: i64) -> RunStatus {
        if self.status != RunStatus::Running {
            return self.status;
        }
        match (&self.owner, self.lease_until_ms) {
            (Some(owner), Some(until)) if until >= now_ms && !owner.is_gone() => RunStatus::Running,
            _ => RunStatus::Interrupted,
        }
    }
}

/// Which runs [`Journal::list`] returns, newest first.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only this workflow's runs.
    pub workflow: Option<String>,
    /// Only runs stored with this status (`Running` covers `Interrupted`).
    pub status: Option<RunStatus>,
    /// At most this many (0: no limit).
    pub limit: usize,
    /// Only runs older than this one (its start and id), for paging.
    pub before: Option<(i64, String)>,
    /// Only runs nobody started (child runs left out).
    pub top_level: bool,
}

impl RunFilter {
    /// The status to ask the table for: `Interrupted` is stored as `Running`
    /// (the owner's liveness tells them apart, [`RunRow::status_now`]).
    pub fn stored_status(&self) -> Option<RunStatus> {
        self.status.map(|s| match s {
            RunStatus::Interrupted => RunStatus::Running,
            other => other,
        })
    }
}

/// A run as stored: its row and its records in order.
#[derive(Debug, Clone)]
pub struct StoredRun {
    /// The row.
    pub row: RunRow,
    /// Every record with its sequence number, in order.
    pub records: Vec<(u64, Record)>,
}

/// Where runs are kept. Implementations make [`Journal::append`] atomic: a batch
/// is written whole or not at all.
#[async_trait]
pub trait Journal: Send + Sync + std::fmt::Debug + 'static {
    /// The path or URL, for messages (never with a password).
    fn target(&self) -> &str;

    /// Records a new run: its row, owned by `owner` until `lease_until_ms`, and
    /// its first record (`run_started`, sequence 1).
    async fn create(
        &self,
        run_id: &str,
        workflow: &str,
        first: &Record,
        owner: &Owner,
        lease_until_ms: i64,
    ) -> Result<()>;

    /// Appends records, in one transaction, for the runs `owner` holds: the
    /// records of a run it does not hold (any more: another process took it
    /// over) are not written, and those runs are returned. A takeover and a
    /// write in flight are ordered: what a write wrote before the takeover,
    /// the new owner reads; after it, nothing is written.
    ///
    /// A `run_started` record with sequence 1 creates its run, held by
    /// `owner` for [`LEASE`] (as [`Journal::create`] does, in the same
    /// transaction as the rest: a server's new runs share one commit), and
    /// binds its `idempotency_key` to it; when the key is bound already, the
    /// run is not created and is returned as not held. A `run_finished`
    /// record marks its run's row finished and releases its lease.
    async fn append(&self, owner: &Owner, entries: &[Entry]) -> Result<Vec<Arc<str>>>;

    /// A run's row and records, `None` when there is no such run.
    async fn load(&self, run_id: &str) -> Result<Option<StoredRun>>;

    /// A run's records after sequence number `after` (0: all of them), in
    /// order: what a reader that has seen `after` catches up with. Empty when
    /// there is no such run.
    async fn records_after(&self, run_id: &str, after: u64) -> Result<Vec<(u64, Record)>>;

    /// At most `limit` of a run's records after sequence number `after`, in
    /// order: one page of [`Journal::records_after`], for a reader that must
    /// not hold a long run's history at once.
    async fn records_page(&self, run_id: &str, after: u64, limit: usize) -> Result<Vec<(u64, Record)>> {
        let mut records = self.records_after(run_id, after).await?;
        records.truncate(limit);
        Ok(records)
    }

    /// Records signal `name` with `payload` for run `run_id` (any process may:
    /// the run's owner takes it when one of its nodes waits for it; a parked
    /// run is due at once, to take it). Returns
    /// its number: signals are taken oldest first. The caller checks that the
    /// run exists and has not finished.
    async fn send_signal(&self, run_id: &str, name: &str, payload: &serde_json::Value) -> Result<u64> {
        let _ = (run_id, name, payload);
        Err(Error::Storage(format!(
            "the journal {} keeps no signals",
            self.target()
        )))
    }

    /// The oldest signal `name` sent to run `run_id` numbered above `after`:
    /// its number and payload.
    async fn next_signal(&self, run_id: &str, name: &str, after: u64) -> Result<Option<(u64, serde_json::Value)>> {
        let _ = (run_id, name, after);
        Ok(None)
    }

    /// Parks run `run_id`, which `owner` holds: its status becomes `waiting`,
    /// due at `wake_at_ms` (or only when a signal comes), and no process holds
    /// it. Returns whether it was parked (`owner` still held it). The run's
    /// records must be durable first.
    async fn park(&self, run_id: &str, owner: &Owner, wake_at_ms: Option<i64>) -> Result<bool> {
        let _ = (run_id, owner, wake_at_ms);
        Err(Error::Storage(format!(
            "the journal {} cannot park runs",
            self.target()
        )))
    }

    /// Takes parked run `run_id` for `owner` (running again, its lease until
    /// `lease_until_ms`); of two processes that race, one gets it. Returns
    /// whether this one did.
    async fn wake(&self, run_id: &str, owner: &Owner, lease_until_ms: i64) -> Result<bool> {
        let _ = (run_id, owner, lease_until_ms);
        Ok(false)
    }

    /// Makes parked run `run_id` due now (a signal came for it).
    async fn make_due(&self, run_id: &str) -> Result<()> {
        let _ = run_id;
        Ok(())
    }

    /// Parked runs due at `now_ms` (their timer came, or a signal was sent to
    /// them), earliest first, at most `limit`.
    async fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<String>> {
        let _ = (now_ms, limit);
        Ok(Vec::new())
    }

    /// The earliest instant a parked run is due, if any run is parked with a timer.
    async fn next_wake(&self) -> Result<Option<i64>> {
        Ok(None)
    }

    /// How many runs are stored with `status` (`Running` counts `interrupted`
    /// ones too).
    async fn count(&self, status: RunStatus) -> Result<u64> {
        let filter = RunFilter {
            status: Some(status),
            ..RunFilter::default()
        };
        Ok(self.list(&filter).await?.len() as u64)
    }

    /// A run's row, without its records; `None` when there is no such run.
    async fn row(&self, run_id: &str) -> Result<Option<RunRow>> {
        Ok(self.load(run_id).await?.map(|stored| stored.row))
    }

    /// Runs, newest first.
    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunRow>>;

    /// The ids of runs that start with `prefix` (as git takes a short hash),
    /// at most `limit`, in order; the id itself when a run has exactly that id.
    async fn resolve(&self, prefix: &str, limit: usize) -> Result<Vec<String>>;

    /// Takes run `run_id` for `owner` if its owner is still `expected` (the
    /// token read before; `None` for no owner) and marks it running. Returns
    /// whether it was taken: of two processes that race, one wins.
    async fn claim(&self, run_id: &str, owner: &Owner, expected: Option<&str>, lease_until_ms: i64) -> Result<bool>;

    /// Extends the lease of every running run `owner_token` holds.
    async fn renew(&self, owner_token: &str, lease_until_ms: i64) -> Result<()>;

    /// Binds the idempotency key `key` (of a submission) to `run_id`, unless it
    /// is bound already: returns the run it was bound to before, `None` when
    /// this call bound it. Of two callers with one key, one binds it. (A key
    /// bound this way is committed before its run: prefer a `run_started`
    /// record's `idempotency_key`, bound in the commit that creates the run.)
    async fn remember(&self, key: &str, run_id: &str) -> Result<Option<String>>;

    /// The run idempotency key `key` is bound to, if any.
    async fn bound(&self, key: &str) -> Result<Option<String>>;

    /// A run's first record (its `run_started`), `None` when there is no
    /// such run: what it started with, without reading the rest.
    async fn first_record(&self, run_id: &str) -> Result<Option<Record>>;
}

/// Opens the journal `target` names: a `postgres://` (or `postgresql://`) URL,
/// or else a file path for SQLite (created if missing). The schema is created or
/// migrated. Errors say why the target cannot be used.
pub async fn open(target: &str, sync: SyncLevel) -> Result<Arc<dyn Journal>> {
    if is_postgres(target) {
        #[cfg(feature = "postgres")]
        return Ok(Arc::new(PgJournal::connect(target).await?));
        #[cfg(not(feature = "postgres"))]
        return Err(Error::Open {
            target: target.split('@').next_back().unwrap_or_default().to_owned(),
            reason: "this build has no PostgreSQL journal (flow-journal's `postgres` feature)".to_owned(),
        });
    }
    #[cfg(feature = "sqlite")]
    return Ok(Arc::new(SqliteJournal::open(target, sync)?));
    #[cfg(not(feature = "sqlite"))]
    {
        let _ = sync;
        Err(Error::Open {
            target: target.to_owned(),
            reason: "this build has no SQLite journal (flow-journal's `sqlite` feature)".to_owned(),
        })
    }
}

/// Whether `target` names a PostgreSQL journal (a `postgres://` or
/// `postgresql://` URL) rather than a SQLite file.
pub fn is_postgres(target: &str) -> bool {
    target.starts_with("postgres://") || target.starts_with("postgresql://")
}

/// The PostgreSQL that tests use: `FLOW_TEST_PG_URL`, by default
/// `postgres://postgres@127.0.0.1:5432/test`.
pub fn test_pg_url() -> String {
    std::env::var("FLOW_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub use flow_core::rfc3339;

/// The workflow of the run `entry` creates (a `run_started` record numbered
/// 1) and the idempotency key bound to it in the same commit, if any.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn creates(entry: &Entry) -> Option<(&str, Option<&str>)> {
    match &entry.record {
        Record::RunStarted {
            workflow,
            idempotency_key,
            ..
        } if entry.seq == 1 => Some((workflow, idempotency_key.as_deref())),
        _ => None,
    }
}

/// For a child run's first record: its parent, as the row keeps it (JSON).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn parent_of(entry: &Entry) -> Option<String> {
    match &entry.record {
        Record::RunStarted {
            parent: Some(parent), ..
        } if entry.seq == 1 => serde_json::to_string(parent).ok(),
        _ => None,
    }
}

/// The runs of a batch (`runs`, sorted) that are not among those `held`.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn refused<'a>(runs: Vec<&Arc<str>>, held: impl Iterator<Item = &'a str>) -> Vec<Arc<str>> {
    let mut held: Vec<&str> = held.collect();
    if held.len() == runs.len() {
        return Vec::new();
    }
    held.sort_unstable();
    runs.into_iter()
        .filter(|r| held.binary_search(&&***r).is_err())
        .cloned()
        .collect()
}

/// For a child run's `run_finished`: the signal that tells its parent, as
/// (parent run, name, payload). Written in the same commit as the end, so a
/// parent never misses its child's end (a crash between the two would lose it).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn child_end(entry: &Entry) -> Option<(String, String, String)> {
    let Record::RunFinished { status, report, .. } = &entry.record else {
        return None;
    };
    let parent = report.parent.as_ref()?;
    let payload = serde_json::json!({ "run_id": &*entry.run_id, "status": status });
    Some((parent.run_id.clone(), parent.end_signal(), payload.to_string()))
}

/// Folds records into the row's summary counts (`{"succeeded": n, ...}`).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn counts(record: &Record) -> Option<(String, f64, serde_json::Value)> {
    let Record::RunFinished {
        status,
        duration_ms,
        report,
    } = record
    else {
        return None;
    };
    let mut counts = serde_json::Map::new();
    for (_, node) in report.nodes.iter() {
        let slot = counts.entry(node.status.as_str()).or_insert(serde_json::Value::from(0));
        *slot = serde_json::Value::from(slot.as_u64().unwrap_or(0) + 1);
    }
    Some((
        status.as_str().to_owned(),
        *duration_ms,
        serde_json::Value::Object(counts),
    ))
}

/// A stored signal's payload, with its number.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn decode_signal(id: u64, text: &str) -> Result<(u64, serde_json::Value)> {
    serde_json::from_str(text)
        .map(|payload| (id, payload))
        .map_err(|e| Error::Storage(format!("signal {id}: {e}")))
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn decode(run_id: &str, seq: u64, data: &str) -> Result<Record> {
    // Without serde_json's limit of 128 levels: a record nests its values
    // (an input, an output) a few levels deeper than they were, and what
    // `encode` wrote must read back, or the run could never be read again.
    let mut de = serde_json::Deserializer::from_str(data);
    de.disable_recursion_limit();
    <Record as serde::Deserialize>::deserialize(&mut de)
        .and_then(|record| de.end().map(|()| record))
        .map_err(|e| Error::Corrupt {
            run_id: run_id.to_owned(),
            seq,
            reason: e.to_string(),
        })
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn encode(record: &Record) -> Result<String> {
    serde_json::to_string(record).map_err(|e| Error::Storage(format!("encoding a {} record: {e}", record.kind())))
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_is_utc_with_milliseconds() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::rfc3339(1_796_131_923_456), "2026-12-01T13:32:03.456Z");
        assert_eq!(super::rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
