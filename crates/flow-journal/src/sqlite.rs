//! The embedded journal: one SQLite file in WAL mode. Writes go through one
//! connection (the [`crate::Writer`] thread's batches), reads through another,
//! so listing runs never waits for a batch.
//!
//! SQLite calls block, so none runs on an async runtime's worker threads:
//! `append` runs where the Writer calls it (its own thread), every other call
//! on tokio's blocking pool (`spawn_blocking`), so an axum handler that looks a
//! run up never stalls the tasks that share its thread.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use flow_core::{Record, RunStatus};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::sql::{self, Arg, Columns, Dialect, ROW_COLUMNS};
use crate::{
    Entry, Error, Journal, LEASE, Owner, Result, RunFilter, RunRow, StoredRun, SyncLevel, child_end, counts, creates,
    decode, encode, now_ms, parent_of, refused,
};

/// A journal in one SQLite file (created if missing), WAL mode.
#[derive(Debug)]
pub struct SqliteJournal {
    target: String,
    conns: Arc<Conns>,
}

/// The two connections, shared with the blocking tasks that use them.
#[derive(Debug)]
struct Conns {
    write: Mutex<Connection>,
    read: Mutex<Connection>,
}

/// A failed call: [`Error::Unavailable`] for what passes (a full disk, a lock
/// held too long), which the writer tries again; else [`Error::Storage`].
fn storage(e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        // What is wrong with the file or its disk, not with a run's records:
        // every run waits (and `/healthz` says why) until it is fixed. A
        // write past the file size limit or on a full disk is an I/O error
        // (`EFBIG`, `ENOSPC`) as often as `SQLITE_FULL`.
        Some(
            ErrorCode::DiskFull
            | ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure
            | ErrorCode::DatabaseCorrupt
            | ErrorCode::NotADatabase
            | ErrorCode::CannotOpen,
        ) => Error::Unavailable(e.to_string()),
        Some(ErrorCode::ConstraintViolation) => Error::Duplicate(e.to_string()),
        _ => Error::Storage(e.to_string()),
    }
}

impl SqliteJournal {
    /// Opens (or creates) the journal at `path` and migrates its schema.
    pub fn open(path: impl AsRef<Path>, sync: SyncLevel) -> Result<SqliteJournal> {
        let path: PathBuf = path.as_ref().to_owned();
        let target = path.display().to_string();
        let fail = |reason: String| Error::Open {
            target: target.clone(),
            reason,
        };
        if path.is_dir() {
            return Err(fail("is a directory, not a SQLite file".into()));
        }
        let write = connect(&path, sync).map_err(|e| fail(explain(&e)))?;
        migrate(&write).map_err(|e| fail(explain(&e)))?;
        let read = connect(&path, sync).map_err(|e| fail(explain(&e)))?;
        Ok(SqliteJournal {
            target,
            conns: Arc::new(Conns {
                write: Mutex::new(write),
                read: Mutex::new(read),
            }),
        })
    }

    /// Runs `f` on the read connection, off the async worker threads.
    async fn reading<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.on(|conns| &conns.read, f).await
    }

    /// Runs `f` on the write connection, off the async worker threads.
    async fn writing<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.on(|conns| &conns.write, f).await
    }

    /// Runs `f` on the connection `pick` chooses, off the async worker threads.
    async fn on<T: Send + 'static>(
        &self,
        pick: fn(&Conns) -> &Mutex<Connection>,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conns = self.conns.clone();
        off_runtime(move || f(&mut pick(&conns).lock().unwrap_or_else(PoisonError::into_inner))).await
    }
}

/// Runs blocking `f` on tokio's blocking pool when called within a runtime,
/// else right here.
async fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Storage(format!("a journal call did not finish: {e}")))?
}

fn explain(e: &rusqlite::Error) -> String {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => "not a SQLite file".into(),
        Some(rusqlite::ErrorCode::CannotOpen) => format!("cannot open the file ({e})"),
        Some(rusqlite::ErrorCode::ReadOnly) => format!("the file is read-only ({e})"),
        _ => e.to_string(),
    }
}

fn connect(path: &Path, sync: SyncLevel) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "could not switch to WAL mode (got `{mode}`)"
        )));
    }
    let level = match sync {
        SyncLevel::Full => "FULL",
        SyncLevel::Normal => "NORMAL",
    };
    conn.execute_batch(&format!("PRAGMA synchronous = {level}; PRAGMA foreign_keys = OFF;"))?;
    Ok(conn)
}

/// Applies the migrations the file has not seen (`PRAGMA user_version` counts
/// them), each in its own immediate transaction, so two processes opening a new
/// file at once do not both apply one.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    for (i, sql) in sql::migrations(Dialect::Sqlite).iter().enumerate() {
        let version = i as i64 + 1;
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = (|| {
            let at: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if at < version {
                conn.execute_batch(sql)?;
                conn.execute_batch(&format!("PRAGMA user_version = {version}"))?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => conn.execute_batch("COMMIT")?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
    }
    Ok(())
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    let columns = Columns {
        run_id: r.get(0)?,
        workflow: r.get(1)?,
        status: r.get(2)?,
        started_at: r.get(3)?,
        finished_at: r.get(4)?,
        duration_ms: r.get(5)?,
        owner: r.get(6)?,
        owner_host: r.get(7)?,
        owner_pid: r.get(8)?,
        owner_started: r.get(9)?,
        lease_until: r.get(10)?,
        counts: r.get(11)?,
        parent: r.get(12)?,
    };
    columns
        .into_row()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, e.to_string().into()))
}

/// A new run's row, held by `owner` until `lease_until`.
fn insert_run(
    tx: &rusqlite::Transaction<'_>,
    run_id: &str,
    workflow: &str,
    now: i64,
    owner: &Owner,
    lease_until: i64,
) -> Result<()> {
    let (token, host, pid, started) = sql::owner_args(owner);
    tx.prepare_cached(sql::insert_run(Dialect::Sqlite))
        .and_then(|mut insert| insert.execute(params![run_id, workflow, now, token, host, pid, started, lease_until]))
        .map(|_| ())
        .map_err(storage)
}

#[async_trait]
impl Journal for SqliteJournal {
    fn target(&self) -> &str {
        &self.target
    }

    async fn create(
        &self,
        run_id: &str,
        workflow: &str,
        first: &Record,
        owner: &Owner,
        lease_until_ms: i64,
    ) -> Result<()> {
        let data = encode(first)?;
        let kind = first.kind();
        let (run_id, workflow, owner) = (run_id.to_owned(), workflow.to_owned(), owner.clone());
        self.writing(move |conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(storage)?;
            let now = now_ms();
            insert_run(&tx, &run_id, &workflow, now, &owner, lease_until_ms)?;
            tx.execute(sql::insert_first(Dialect::Sqlite), params![run_id, kind, now, data])
                .map_err(storage)?;
            tx.commit().map_err(storage)
        })
        .await
    }

    async fn append(&self, owner: &Owner, entries: &[Entry]) -> Result<Vec<Arc<str>>> {
        // Encoded before the transaction: the write lock is held for the writes only.
        let encoded = entries.iter().map(|e| encode(&e.record)).collect::<Result<Vec<_>>>()?;
        let mut runs: Vec<&Arc<str>> = Vec::new();
        for entry in entries {
            if runs.last() != Some(&&entry.run_id) {
                runs.push(&entry.run_id);
            }
        }
        runs.sort_unstable();
        runs.dedup();
        // Right here: the Writer calls this on its own thread, not a runtime's worker.
        let mut conn = self.conns.write.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(storage)?;
        let now = now_ms();
        let mut created = Vec::new();
        for entry in entries {
            if let Some((workflow, key)) = creates(entry) {
                if let Some(key) = key {
                    // Bound in this commit, or the run is not created (another run has the key).
                    let bound = tx
                        .prepare_cached(sql::bind_key(Dialect::Sqlite))
                        .and_then(|mut bind| bind.execute(params![key, &*entry.run_id, now]))
                        .map_err(storage)?;
                    if bound == 0 {
                        continue;
                    }
                }
                insert_run(&tx, &entry.run_id, workflow, now, owner, now + LEASE.as_millis() as i64)?;
                if let Some(parent) = parent_of(entry) {
                    tx.prepare_cached(&Dialect::Sqlite.sql(sql::SET_PARENT))
                        .and_then(|mut set| set.execute(params![&*entry.run_id, parent]))
                        .map_err(storage)?;
                }
                created.push(&*entry.run_id);
            }
        }
        let held = {
            // The write lock orders this with any takeover: a run is written
            // only while `owner` holds it.
            let mut holds = tx
                .prepare_cached("SELECT 1 FROM flow_runs WHERE run_id = ?1 AND owner = ?2")
                .map_err(storage)?;
            let mut held = Vec::with_capacity(runs.len());
            for run in &runs {
                if created.contains(&&***run) || holds.exists(params![&***run, owner.token]).map_err(storage)? {
                    held.push(&***run);
                }
            }
            held
        };
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO flow_records (run_id, seq, kind, written_at, data) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(storage)?;
            let mut finish = tx
                .prepare_cached(
                    "UPDATE flow_runs SET status = ?2, finished_at = ?3, duration_ms = ?4, counts = ?5,
                     owner = NULL, owner_host = NULL, owner_pid = NULL, owner_started = NULL, lease_until = NULL
                     WHERE run_id = ?1",
                )
                .map_err(storage)?;
            let all_held = held.len() == runs.len();
            for (entry, data) in entries.iter().zip(&encoded) {
                if !all_held && !held.contains(&&*entry.run_id) {
                    continue;
                }
                insert
                    .execute(params![
                        &*entry.run_id,
                        entry.seq as i64,
                        entry.record.kind(),
                        now,
                        data
                    ])
                    .map_err(storage)?;
                if let Some((status, duration, counts)) = counts(&entry.record) {
                    finish
                        .execute(params![&*entry.run_id, status, now, duration, counts.to_string()])
                        .map_err(storage)?;
                    if let Some((parent, name, payload)) = child_end(entry) {
                        tx.prepare_cached(sql::send_signal(Dialect::Sqlite))
                            .and_then(|mut stmt| {
                                stmt.query_row(params![parent, name, payload, now], |r| r.get::<_, i64>(0))
                            })
                            .map_err(storage)?;
                        tx.execute(sql::ring(Dialect::Sqlite), params![parent, now])
                            .map_err(storage)?;
                    }
                }
            }
        }
        tx.commit().map_err(storage)?;
        Ok(refused(runs, held.into_iter()))
    }

    async fn load(&self, run_id: &str) -> Result<Option<StoredRun>> {
        let run_id = run_id.to_owned();
        self.reading(move |conn| {
            // One read transaction: the row and the records agree.
            let tx = conn.transaction().map_err(storage)?;
            let found = tx
                .query_row(
                    &format!("SELECT {ROW_COLUMNS} FROM flow_runs WHERE run_id = ?1"),
                    [&run_id],
                    row,
                )
                .optional()
                .map_err(storage)?;
            let Some(found) = found else { return Ok(None) };
            let records = records(&tx, &run_id, 0, usize::MAX)?;
            Ok(Some(StoredRun { row: found, records }))
        })
        .await
    }

    async fn records_after(&self, run_id: &str, after: u64) -> Result<Vec<(u64, Record)>> {
        let run_id = run_id.to_owned();
        self.reading(move |conn| records(conn, &run_id, after, usize::MAX))
            .await
    }

    async fn records_page(&self, run_id: &str, after: u64, limit: usize) -> Result<Vec<(u64, Record)>> {
        let run_id = run_id.to_owned();
        self.reading(move |conn| records(conn, &run_id, after, limit)).await
    }

    async fn send_signal(&self, run_id: &str, name: &str, payload: &serde_json::Value) -> Result<u64> {
        let (run_id, name, payload) = (run_id.to_owned(), name.to_owned(), payload.to_string());
        self.writing(move |conn| {
            let tx = conn.transaction().map_err(storage)?;
            let now = crate::now_ms();
            let id = tx
                .prepare_cached(sql::send_signal(Dialect::Sqlite))
                .and_then(|mut stmt| stmt.query_row(params![run_id, name, payload, now], |r| r.get::<_, i64>(0)))
                .map_err(storage)?;
            tx.execute(sql::ring(Dialect::Sqlite), params![run_id, now])
                .map_err(storage)?;
            tx.commit().map_err(storage)?;
            Ok(id as u64)
        })
        .await
    }

    async fn park(&self, run_id: &str, owner: &Owner, wake_at_ms: Option<i64>) -> Result<bool> {
        let (run_id, token) = (run_id.to_owned(), owner.token.clone());
        self.writing(move |conn| {
            conn.execute(sql::park(Dialect::Sqlite), params![run_id, token, wake_at_ms])
                .map(|n| n == 1)
                .map_err(storage)
        })
        .await
    }

    async fn make_due(&self, run_id: &str) -> Result<()> {
        let run_id = run_id.to_owned();
        self.writing(move |conn| {
            conn.execute(sql::ring(Dialect::Sqlite), params![run_id, crate::now_ms()])
                .map(|_| ())
                .map_err(storage)
        })
        .await
    }

    async fn wake(&self, run_id: &str, owner: &Owner, lease_until_ms: i64) -> Result<bool> {
        let (run_id, owner) = (run_id.to_owned(), owner.clone());
        self.writing(move |conn| {
            let (token, host, pid, started) = sql::owner_args(&owner);
            conn.execute(
                sql::wake(Dialect::Sqlite),
                params![run_id, token, host, pid, started, lease_until_ms],
            )
            .map(|n| n == 1)
            .map_err(storage)
        })
        .await
    }

    async fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<String>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.reading(move |conn| {
            let mut stmt = conn.prepare_cached(sql::due(Dialect::Sqlite)).map_err(storage)?;
            let rows = stmt
                .query_map(params![now_ms, limit], |r| r.get::<_, String>(0))
                .map_err(storage)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(storage)
        })
        .await
    }

    async fn count(&self, status: RunStatus) -> Result<u64> {
        self.reading(move |conn| {
            conn.query_row(sql::count(Dialect::Sqlite), [status.as_str()], |r| r.get::<_, i64>(0))
                .map(|n| n.max(0) as u64)
                .map_err(storage)
        })
        .await
    }

    async fn next_wake(&self) -> Result<Option<i64>> {
        self.reading(|conn| {
            conn.query_row(sql::NEXT_WAKE, [], |r| r.get::<_, Option<i64>>(0))
                .map_err(storage)
        })
        .await
    }

    async fn next_signal(&self, run_id: &str, name: &str, after: u64) -> Result<Option<(u64, serde_json::Value)>> {
        let (run_id, name) = (run_id.to_owned(), name.to_owned());
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let found = self
            .reading(move |conn| {
                conn.prepare_cached(sql::next_signal(Dialect::Sqlite))
                    .and_then(|mut stmt| {
                        stmt.query_row(params![run_id, name, after], |r| {
                            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))
                        })
                        .optional()
                    })
                    .map_err(storage)
            })
            .await?;
        found.map(|(id, text)| crate::decode_signal(id, &text)).transpose()
    }

    async fn row(&self, run_id: &str) -> Result<Option<RunRow>> {
        let run_id = run_id.to_owned();
        self.reading(move |conn| {
            conn.prepare_cached(sql::run_row(Dialect::Sqlite))
                .and_then(|mut stmt| stmt.query_row([&run_id], row).optional())
                .map_err(storage)
        })
        .await
    }

    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunRow>> {
        let (sql, args) = sql::list(Dialect::Sqlite, filter);
        let args: Vec<rusqlite::types::Value> = args
            .into_iter()
            .map(|a| match a {
                Arg::Text(t) => t.into(),
                Arg::Int(i) => i.into(),
            })
            .collect();
        self.reading(move |conn| {
            let mut stmt = conn.prepare(&sql).map_err(storage)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), row).map_err(storage)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(storage)
        })
        .await
    }

    async fn resolve(&self, prefix: &str, limit: usize) -> Result<Vec<String>> {
        let prefix = prefix.to_owned();
        self.reading(move |conn| {
            // SQLite compares text by bytes: a range over the primary key's index.
            let mut stmt = conn
                .prepare(
                    "SELECT run_id FROM flow_runs WHERE run_id >= ?1 AND substr(run_id, 1, length(?1)) = ?1
                     ORDER BY run_id = ?1 DESC, run_id LIMIT ?2",
                )
                .map_err(storage)?;
            let ids = stmt
                .query_map(params![prefix, limit as i64], |r| r.get::<_, String>(0))
                .map_err(storage)?;
            ids.collect::<rusqlite::Result<Vec<_>>>().map_err(storage)
        })
        .await
    }

    async fn claim(&self, run_id: &str, owner: &Owner, expected: Option<&str>, lease_until_ms: i64) -> Result<bool> {
        let (run_id, owner, expected) = (run_id.to_owned(), owner.clone(), expected.map(str::to_owned));
        self.writing(move |conn| {
            let (token, host, pid, started) = sql::owner_args(&owner);
            let changed = conn
                .execute(
                    sql::claim(Dialect::Sqlite),
                    params![run_id, token, host, pid, started, lease_until_ms, expected],
                )
                .map_err(storage)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn renew(&self, owner_token: &str, lease_until_ms: i64) -> Result<()> {
        let owner_token = owner_token.to_owned();
        self.writing(move |conn| {
            conn.execute(sql::renew(Dialect::Sqlite), params![owner_token, lease_until_ms])
                .map_err(storage)?;
            Ok(())
        })
        .await
    }

    async fn first_record(&self, run_id: &str) -> Result<Option<Record>> {
        let run_id = run_id.to_owned();
        self.reading(move |conn| {
            let data = conn
                .prepare_cached(sql::first_record(Dialect::Sqlite))
                .and_then(|mut stmt| stmt.query_row([&run_id], |r| r.get::<_, String>(0)).optional())
                .map_err(storage)?;
            data.map(|d| decode(&run_id, 1, &d)).transpose()
        })
        .await
    }

    async fn bound(&self, key: &str) -> Result<Option<String>> {
        let key = key.to_owned();
        self.reading(move |conn| {
            conn.prepare_cached(sql::bound(Dialect::Sqlite))
                .and_then(|mut stmt| stmt.query_row([&key], |r| r.get::<_, String>(0)).optional())
                .map_err(storage)
        })
        .await
    }

    async fn remember(&self, key: &str, run_id: &str) -> Result<Option<String>> {
        let (key, run_id) = (key.to_owned(), run_id.to_owned());
        self.writing(move |conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(storage)?;
            let before: Option<String> = tx
                .query_row("SELECT run_id FROM flow_keys WHERE key = ?1", [&key], |r| r.get(0))
                .optional()
                .map_err(storage)?;
            if before.is_none() {
                tx.execute(
                    "INSERT INTO flow_keys (key, run_id, created_at) VALUES (?1, ?2, ?3)",
                    params![key, run_id, now_ms()],
                )
                .map_err(storage)?;
            }
            tx.commit().map_err(storage)?;
            Ok(before)
        })
        .await
    }
}

/// At most `limit` of run `run_id`'s records after sequence number `after`, in order.
fn records(conn: &Connection, run_id: &str, after: u64, limit: usize) -> Result<Vec<(u64, Record)>> {
    let mut stmt = conn
        .prepare_cached(sql::records_after(Dialect::Sqlite))
        .map_err(storage)?;
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt
        .query_map(params![run_id, after, limit], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))
        })
        .map_err(storage)?;
    let mut records = Vec::new();
    for r in rows {
        let (seq, data) = r.map_err(storage)?;
        records.push((seq, decode(run_id, seq, &data)?));
    }
    Ok(records)
}
