//! The shared journal: PostgreSQL, for several processes and machines. Tables
//! live in the connection's schema (`search_path`), created and migrated here
//! under an advisory lock. A batch is one transaction and one round trip
//! (`UNNEST` of arrays).

use async_trait::async_trait;
use flow_core::{Record, RunStatus};
use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls, Row};

use std::sync::Arc;

use crate::sql::{self, Arg, Columns, Dialect, ROW_COLUMNS};
use crate::{
    Entry, Error, Journal, LEASE, Owner, Result, RunFilter, RunRow, StoredRun, child_end, counts, creates, decode,
    encode, now_ms, parent_of, refused,
};

/// A journal in PostgreSQL. Its connections are opened again when the server
/// closed them (a restart, `pg_terminate_backend`, a network cut): the next
/// call reconnects, and a write that failed with the connection is
/// [`Error::Unavailable`], to be tried again.
pub struct PgJournal {
    target: String,
    /// The URL, to connect again (never shown: it may hold a password).
    url: String,
    write: Mutex<WriteConn>,
    read: std::sync::RwLock<Arc<Client>>,
}

impl std::fmt::Debug for PgJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgJournal")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// The write connection and its statements, prepared once per connection.
struct WriteConn {
    client: Client,
    /// The batch insert.
    insert: tokio_postgres::Statement,
    /// The rows of the runs a batch finishes.
    finish: tokio_postgres::Statement,
}

impl WriteConn {
    async fn open(url: &str) -> std::result::Result<WriteConn, String> {
        let client = connect(url).await?;
        let insert = client.prepare(INSERT).await.map_err(|e| pg_message(&e))?;
        let finish = client.prepare(FINISH).await.map_err(|e| pg_message(&e))?;
        Ok(WriteConn { client, insert, finish })
    }
}

/// A failed call: [`Error::Unavailable`] when the connection is the cause (it
/// closed, the server is shutting it down, the network failed), which a
/// retry on a new connection may cure; else [`Error::Storage`].
fn storage(e: tokio_postgres::Error) -> Error {
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    let connection = e.is_closed()
        || io
        || e.as_db_error().is_some_and(|db| {
            let code = db.code().code();
            // The connection, the server's resources (a full disk, too many
            // connections), a statement over its timeout, a transaction that
            // lost a race: nothing wrong with the records; try again.
            code.starts_with("08")
                || code.starts_with("53")
                || matches!(code, "57P01" | "57P02" | "57P03" | "57014" | "40001" | "40P01")
        });
    if connection {
        Error::Unavailable(pg_message(&e))
    } else if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
        Error::Duplicate(pg_message(&e))
    } else {
        Error::Storage(pg_message(&e))
    }
}

/// The server's message when there is one (tokio-postgres's `Display` says
/// only "db error").
pub fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            text
        }
    }
}

/// The URL without its password, for messages: the user's (`user:***@`) and a
/// `password=` parameter's (`password=***`).
pub fn shown(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &base[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &base[..scheme + 3], &base[at..]),
                None => base.to_owned(),
            }
        }
        _ => base.to_owned(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => p.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// How long opening a PostgreSQL connection may take, TCP and the startup
/// handshake together, unless the URL's `connect_timeout` says otherwise: a
/// port where something else listens fails in time instead of hanging.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long one statement may run, unless the URL's `options` say otherwise
/// (`?options=-c%20statement_timeout%3D5000`).
pub const STATEMENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A connection to `url` and the connection's half (its messages, for the
/// caller to drive), opened within [`CONNECT_TIMEOUT`]. Errors are the
/// server's message, or why it could not be reached.
pub async fn open_connection(
    url: &str,
) -> std::result::Result<
    (
        Client,
        tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
    ),
    String,
> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| pg_message(&e))?;
    // No statement of ours takes long: one that hangs (a lock never released)
    // fails after STATEMENT_TIMEOUT and is tried again, unless the URL's
    // `options` set `statement_timeout` itself.
    let options = config.get_options().unwrap_or_default().to_owned();
    if !options.contains("statement_timeout") {
        let ms = STATEMENT_TIMEOUT.as_millis();
        config.options(format!("{options} -c statement_timeout={ms}").trim());
    }
    let limit = config.get_connect_timeout().copied().unwrap_or(CONNECT_TIMEOUT);
    match tokio::time::timeout(limit, config.connect(NoTls)).await {
        Ok(connected) => connected.map_err(|e| pg_message(&e)),
        Err(_) => Err(format!(
            "no PostgreSQL answered within {} s (is it PostgreSQL that listens there?)",
            limit.as_secs_f64()
        )),
    }
}

/// A connection to `url` whose messages a task of the current runtime reads
/// (notifications are not delivered: see `tokio_postgres::Connection`),
/// opened within [`CONNECT_TIMEOUT`].
pub async fn connect(url: &str) -> std::result::Result<Client, String> {
    let (client, connection) = open_connection(url).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "journal connection to PostgreSQL ended");
        }
    });
    Ok(client)
}

impl PgJournal {
    /// Connects to `url` (two connections: one for the writer, one for reads)
    /// and migrates the schema. Must be called inside a Tokio runtime, which
    /// then drives the connections.
    pub async fn connect(url: &str) -> Result<PgJournal> {
        let target = shown(url);
        let fail = |reason: String| Error::Open {
            target: target.clone(),
            reason,
        };
        let mut setup = connect(url).await.map_err(fail)?;
        ensure_schema(&setup).await.map_err(fail)?;
        migrate(&mut setup).await.map_err(|e| fail(pg_message(&e)))?;
        drop(setup);
        let write = WriteConn::open(url).await.map_err(fail)?;
        let read = connect(url).await.map_err(fail)?;
        Ok(PgJournal {
            target,
            url: url.to_owned(),
            write: Mutex::new(write),
            read: std::sync::RwLock::new(Arc::new(read)),
        })
    }

    /// The write connection, opened again if the server closed it.
    async fn writer(&self) -> Result<tokio::sync::MutexGuard<'_, WriteConn>> {
        let mut conn = self.write.lock().await;
        if conn.client.is_closed() {
            *conn = WriteConn::open(&self.url).await.map_err(Error::Unavailable)?;
            tracing::info!(journal = %self.target, "the journal's write connection was opened again");
        }
        Ok(conn)
    }

    /// The read connection, opened again if the server closed it.
    async fn reader(&self) -> Result<Arc<Client>> {
        let current = self
            .read
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if !current.is_closed() {
            return Ok(current);
        }
        self.reopen_reader().await
    }

    async fn reopen_reader(&self) -> Result<Arc<Client>> {
        let fresh = Arc::new(connect(&self.url).await.map_err(Error::Unavailable)?);
        *self.read.write().unwrap_or_else(std::sync::PoisonError::into_inner) = fresh.clone();
        tracing::info!(journal = %self.target, "the journal's read connection was opened again");
        Ok(fresh)
    }

    /// A read; when its connection turns out lost (the server closed it and
    /// the client has not noticed yet), once more on a new one.
    async fn read_query(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<Vec<Row>> {
        match self.reader().await?.query(sql, params).await.map_err(storage) {
            Err(Error::Unavailable(_)) => self.reopen_reader().await?.query(sql, params).await.map_err(storage),
            other => other,
        }
    }

    /// A write statement on the write connection: how many rows it changed.
    async fn execute(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<u64> {
        let conn = self.writer().await?;
        conn.client.execute(sql, params).await.map_err(storage)
    }

    /// As [`PgJournal::read_query`], for a query of at most one row (by key).
    async fn read_opt(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<Option<Row>> {
        Ok(self.read_query(sql, params).await?.into_iter().next())
    }
}

/// Makes sure the connection has a schema to create flow's tables in. A URL
/// whose `search_path` (`?options=-c%20search_path%3Dflow`) names a schema that
/// does not exist yet gets it created (`CREATE SCHEMA IF NOT EXISTS`); when
/// that is not allowed, the error says which schema to create.
pub async fn ensure_schema(client: &Client) -> std::result::Result<(), String> {
    let current: Option<String> = client
        .query_one("SELECT current_schema()", &[])
        .await
        .map_err(|e| pg_message(&e))?
        .get(0);
    if current.is_some() {
        return Ok(());
    }
    let path: String = client
        .query_one("SHOW search_path", &[])
        .await
        .map_err(|e| pg_message(&e))?
        .get(0);
    let Some(schema) = first_schema(&path) else {
        return Err(format!(
            "no schema to create flow's tables in: the search_path `{path}` names none; \
             name one (?options=-c%20search_path%3Dflow) or create one"
        ));
    };
    let quoted = format!("\"{}\"", schema.replace('"', "\"\""));
    client
        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {quoted}"))
        .await
        .map_err(|e| {
            format!(
                "the schema `{schema}` of the search_path does not exist and cannot be created ({}); \
                 create it (CREATE SCHEMA {quoted}) or name another",
                pg_message(&e)
            )
        })
}

/// The first schema a `search_path` names, other than `"$user"`, unquoted.
fn first_schema(path: &str) -> Option<String> {
    path.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "\"$user\"" && *s != "$user")
        .map(|s| match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            Some(inner) => inner.replace("\"\"", "\""),
            None => s.to_lowercase(),
        })
        .next()
}

/// Creates schema `schema` (if missing) in the database `url` names, and
/// returns `url` with that schema as its `search_path`: a journal opened with
/// it keeps its tables there. Tests give each case its own schema this way, so
/// they run side by side on one database.
pub async fn in_schema(url: &str, schema: &str) -> Result<String> {
    if schema.is_empty() || !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(Error::Open {
            target: shown(url),
            reason: format!("schema name `{schema}`: use letters, digits and `_` only"),
        });
    }
    let client = connect(url).await.map_err(|reason| Error::Open {
        target: shown(url),
        reason,
    })?;
    client
        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
        .await
        .map_err(storage)?;
    let sep = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{sep}options=-c%20search_path%3D{schema}"))
}

async fn migrate(client: &mut Client) -> std::result::Result<(), tokio_postgres::Error> {
    run_migrations(client, "flow_schema", 7418093275, &sql::migrations(Dialect::Postgres)).await
}

/// Applies the `migrations` the database has not seen, in one transaction,
/// one migrating process at a time (the advisory lock `lock`): table
/// `version_table` counts those applied. The journal's tables and the queue's
/// (flow-dist) migrate through it, each with its own table and lock.
///
/// # Errors
///
/// The first statement that fails; nothing is applied then.
pub async fn run_migrations(
    client: &mut Client,
    version_table: &str,
    lock: i64,
    migrations: &[String],
) -> std::result::Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock]).await?;
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {version_table} (version INT NOT NULL)"
    ))
    .await?;
    let at: i32 = tx
        .query_opt(&format!("SELECT version FROM {version_table}"), &[])
        .await?
        .map_or(0, |r| r.get(0));
    if at == 0 {
        tx.execute(&format!("INSERT INTO {version_table} (version) VALUES (0)"), &[])
            .await?;
    }
    for (i, sql) in migrations.iter().enumerate().skip(at as usize) {
        tx.batch_execute(sql).await?;
        tx.execute(&format!("UPDATE {version_table} SET version = $1"), &[&(i as i32 + 1)])
            .await?;
    }
    tx.commit().await
}

/// A batch of records: one statement, whole or not at all. Only the records of
/// runs still held by the writing owner (`$7`) are written: the rows are locked
/// (`FOR SHARE`) for the statement's transaction, so a takeover (`claim`, an
/// `UPDATE` of the owner) waits for a write in flight and a write after the
/// takeover writes nothing. That fences off a process that lost its runs, and
/// the statement a killed client left running in its server backend. Returns
/// the runs that were held (or created).
///
/// The runs the batch creates (`$8`, with their workflows `$9`) are inserted
/// by the same statement, held by the writer (`$10`..`$12`) until `$13`, and
/// their idempotency keys (`$14`, NULL for none) bound to them: a run whose
/// key another run holds is not created (nor its records written).
const INSERT: &str = "WITH keyed AS (
         INSERT INTO flow_keys (key, run_id, created_at)
         SELECT k, c, $4 FROM UNNEST($8::text[], $14::text[]) AS n(c, k) WHERE k IS NOT NULL
         ON CONFLICT (key) DO NOTHING
         RETURNING run_id
     ), created AS (
         INSERT INTO flow_runs (run_id, workflow, status, started_at, owner, owner_host, owner_pid, owner_started, lease_until)
         SELECT c, w, 'running', $4, $7, $10, $11, $12, $13 FROM UNNEST($8::text[], $9::text[], $14::text[]) AS n(c, w, k)
         WHERE k IS NULL OR c IN (SELECT run_id FROM keyed)
         RETURNING run_id
     ), held AS (
         SELECT run_id FROM flow_runs WHERE run_id = ANY($6::text[]) AND owner = $7 FOR SHARE
     ), written AS (
         INSERT INTO flow_records (run_id, seq, kind, written_at, data)
         SELECT r, s, k, $4, d FROM UNNEST($1::text[], $2::int8[], $3::text[], $5::text[]) AS t(r, s, k, d)
         WHERE r IN (SELECT run_id FROM held) OR r IN (SELECT run_id FROM created)
     )
     SELECT run_id FROM held UNION ALL SELECT run_id FROM created";

/// The rows of the runs a batch finishes (those `$6` still holds), in one
/// statement after the batch's [`INSERT`]: finished, their counts, their lease
/// released.
const FINISH: &str = "UPDATE flow_runs f SET status = u.st, finished_at = $3, duration_ms = u.du, counts = u.co,
         owner = NULL, owner_host = NULL, owner_pid = NULL, owner_started = NULL, lease_until = NULL
     FROM UNNEST($1::text[], $2::text[], $4::float8[], $5::text[]) AS u(r, st, du, co)
     WHERE f.run_id = u.r AND f.owner = $6";

fn row(r: &Row) -> Result<RunRow> {
    let get = |e: tokio_postgres::Error| Error::Storage(pg_message(&e));
    Columns {
        run_id: r.try_get(0).map_err(get)?,
        workflow: r.try_get(1).map_err(get)?,
        status: r.try_get(2).map_err(get)?,
        started_at: r.try_get(3).map_err(get)?,
        finished_at: r.try_get(4).map_err(get)?,
        duration_ms: r.try_get(5).map_err(get)?,
        owner: r.try_get(6).map_err(get)?,
        owner_host: r.try_get(7).map_err(get)?,
        owner_pid: r.try_get(8).map_err(get)?,
        owner_started: r.try_get(9).map_err(get)?,
        lease_until: r.try_get(10).map_err(get)?,
        counts: r.try_get(11).map_err(get)?,
        parent: r.try_get(12).map_err(get)?,
    }
    .into_row()
}

/// Whether PostgreSQL can hold `text` (its `text` type refuses NUL bytes). A
/// run id or a filter that cannot be stored names no run: it is answered as
/// such, not sent to the server as an error.
fn storable(text: &str) -> bool {
    !text.contains('\0')
}

#[async_trait]
impl Journal for PgJournal {
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
        let mut conn = self.writer().await?;
        let tx = conn.client.transaction().await.map_err(storage)?;
        let now = now_ms();
        let (token, host, pid, started) = sql::owner_args(owner);
        tx.execute(
            sql::insert_run(Dialect::Postgres),
            &[&run_id, &workflow, &now, &token, &host, &pid, &started, &lease_until_ms],
        )
        .await
        .map_err(storage)?;
        tx.execute(
            sql::insert_first(Dialect::Postgres),
            &[&run_id, &first.kind(), &now, &data],
        )
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)
    }

    async fn append(&self, owner: &Owner, entries: &[Entry]) -> Result<Vec<Arc<str>>> {
        let mut created = Vec::new();
        let mut workflows = Vec::new();
        let mut keys: Vec<Option<&str>> = Vec::new();
        let mut run_ids = Vec::with_capacity(entries.len());
        let mut seqs = Vec::with_capacity(entries.len());
        let mut kinds = Vec::with_capacity(entries.len());
        let mut data = Vec::with_capacity(entries.len());
        let mut runs: Vec<&Arc<str>> = Vec::new();
        let mut finished = Vec::new();
        let mut parents = Vec::new();
        let mut ends = Vec::new();
        for entry in entries {
            run_ids.push(&*entry.run_id);
            seqs.push(entry.seq as i64);
            kinds.push(entry.record.kind());
            data.push(encode(&entry.record)?);
            if runs.last() != Some(&&entry.run_id) {
                runs.push(&entry.run_id);
            }
            if let Some((workflow, key)) = creates(entry) {
                created.push(&*entry.run_id);
                workflows.push(workflow);
                keys.push(key);
                if let Some(parent) = parent_of(entry) {
                    parents.push((&*entry.run_id, parent));
                }
            }
            if let Some(summary) = counts(&entry.record) {
                finished.push((&*entry.run_id, summary));
            }
            if let Some(end) = child_end(entry) {
                ends.push((&*entry.run_id, end));
            }
        }
        runs.sort_unstable();
        runs.dedup();
        let distinct: Vec<&str> = runs.iter().map(|r| &***r).collect();
        let now = now_ms();
        let mut conn = self.writer().await?;
        let WriteConn { client, insert, finish } = &mut *conn;
        let (pid, started) = (owner.pid as i64, owner.started as i64);
        let lease_until = now + LEASE.as_millis() as i64;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 14] = [
            &run_ids,
            &seqs,
            &kinds,
            &now,
            &data,
            &distinct,
            &owner.token,
            &created,
            &workflows,
            &owner.host,
            &pid,
            &started,
            &lease_until,
            &keys,
        ];
        let held = if finished.is_empty() && parents.is_empty() {
            // One statement is atomic by itself: no BEGIN and COMMIT round trips.
            client.query(&*insert, &params).await.map_err(storage)?
        } else {
            let tx = client.transaction().await.map_err(storage)?;
            let held = tx.query(&*insert, &params).await.map_err(storage)?;
            let mut ids = Vec::with_capacity(finished.len());
            let mut statuses = Vec::with_capacity(finished.len());
            let mut durations = Vec::with_capacity(finished.len());
            let mut counted = Vec::with_capacity(finished.len());
            for (run_id, (status, duration, counts)) in finished {
                ids.push(run_id);
                statuses.push(status);
                durations.push(duration);
                counted.push(counts.to_string());
            }
            if !ids.is_empty() {
                tx.execute(&*finish, &[&ids, &statuses, &now, &durations, &counted, &owner.token])
                    .await
                    .map_err(storage)?;
            }
            // Child runs: their parent (a run whose key another run held was
            // not created, and is not updated).
            for (run_id, parent) in &parents {
                tx.execute(&*Dialect::Postgres.sql(crate::sql::SET_PARENT), &[run_id, parent])
                    .await
                    .map_err(storage)?;
            }
            // A child's end tells its parent in the same commit. (A run whose
            // records the journal refused wrote no end, and tells nobody.)
            for (child, (parent, name, payload)) in &ends {
                if !held.iter().any(|r| r.get::<_, &str>(0) == *child) {
                    continue;
                }
                tx.query_one(sql::send_signal(Dialect::Postgres), &[parent, name, payload, &now])
                    .await
                    .map_err(storage)?;
                tx.execute(sql::ring(Dialect::Postgres), &[parent, &now])
                    .await
                    .map_err(storage)?;
            }
            tx.commit().await.map_err(storage)?;
            held
        };
        Ok(refused(runs, held.iter().map(|r| r.get::<_, &str>(0))))
    }

    async fn load(&self, run_id: &str) -> Result<Option<StoredRun>> {
        if !storable(run_id) {
            return Ok(None);
        }
        // One statement, one snapshot: the row and the records agree (two
        // queries could see a run's end between them), as SQLite's one read
        // transaction gives.
        let rows = self
            .read_query(
                &format!(
                    "WITH run AS (SELECT {ROW_COLUMNS} FROM flow_runs WHERE run_id = $1)
                     SELECT run.*, rec.seq, rec.data FROM run
                     LEFT JOIN flow_records rec ON rec.run_id = run.run_id
                     ORDER BY rec.seq"
                ),
                &[&run_id],
            )
            .await?;
        let Some(first) = rows.first() else { return Ok(None) };
        let columns = ROW_COLUMNS.split(',').count();
        let mut records = Vec::with_capacity(rows.len());
        for r in &rows {
            let Some(seq) = r.get::<_, Option<i64>>(columns) else {
                continue;
            };
            let seq = seq as u64;
            let text: &str = r.get(columns + 1);
            records.push((seq, decode(run_id, seq, text)?));
        }
        Ok(Some(StoredRun {
            row: row(first)?,
            records,
        }))
    }

    async fn records_after(&self, run_id: &str, after: u64) -> Result<Vec<(u64, Record)>> {
        self.records_page(run_id, after, usize::MAX).await
    }

    async fn send_signal(&self, run_id: &str, name: &str, payload: &serde_json::Value) -> Result<u64> {
        if !storable(run_id) || !storable(name) {
            return Err(Error::Storage("a run id or signal name with a NUL byte".to_owned()));
        }
        let text = payload.to_string();
        let now = crate::now_ms();
        let mut conn = self.writer().await?;
        let tx = conn.client.transaction().await.map_err(storage)?;
        let row = tx
            .query_one(sql::send_signal(Dialect::Postgres), &[&run_id, &name, &text, &now])
            .await
            .map_err(storage)?;
        tx.execute(sql::ring(Dialect::Postgres), &[&run_id, &now])
            .await
            .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    async fn park(&self, run_id: &str, owner: &Owner, wake_at_ms: Option<i64>) -> Result<bool> {
        if !storable(run_id) {
            return Ok(false);
        }
        let changed = self
            .execute(sql::park(Dialect::Postgres), &[&run_id, &owner.token, &wake_at_ms])
            .await?;
        Ok(changed == 1)
    }

    async fn make_due(&self, run_id: &str) -> Result<()> {
        if !storable(run_id) {
            return Ok(());
        }
        self.execute(sql::ring(Dialect::Postgres), &[&run_id, &crate::now_ms()])
            .await
            .map(|_| ())
    }

    async fn wake(&self, run_id: &str, owner: &Owner, lease_until_ms: i64) -> Result<bool> {
        if !storable(run_id) {
            return Ok(false);
        }
        let (token, host, pid, started) = sql::owner_args(owner);
        let changed = self
            .execute(
                sql::wake(Dialect::Postgres),
                &[&run_id, &token, &host, &pid, &started, &lease_until_ms],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<String>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.read_query(sql::due(Dialect::Postgres), &[&now_ms, &limit]).await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn count(&self, status: RunStatus) -> Result<u64> {
        let rows = self
            .read_query(sql::count(Dialect::Postgres), &[&status.as_str()])
            .await?;
        Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0).max(0) as u64))
    }

    async fn next_wake(&self) -> Result<Option<i64>> {
        let row = self.read_opt(sql::NEXT_WAKE, &[]).await?;
        Ok(row.and_then(|r| r.get::<_, Option<i64>>(0)))
    }

    async fn next_signal(&self, run_id: &str, name: &str, after: u64) -> Result<Option<(u64, serde_json::Value)>> {
        if !storable(run_id) || !storable(name) {
            return Ok(None);
        }
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let row = self
            .read_opt(sql::next_signal(Dialect::Postgres), &[&run_id, &name, &after])
            .await?;
        row.map(|r| crate::decode_signal(r.get::<_, i64>(0) as u64, r.get(1)))
            .transpose()
    }

    async fn row(&self, run_id: &str) -> Result<Option<RunRow>> {
        if !storable(run_id) {
            return Ok(None);
        }
        let rows = self.read_query(sql::run_row(Dialect::Postgres), &[&run_id]).await?;
        rows.first().map(row).transpose()
    }

    async fn records_page(&self, run_id: &str, after: u64, limit: usize) -> Result<Vec<(u64, Record)>> {
        if !storable(run_id) {
            return Ok(Vec::new());
        }
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .read_query(sql::records_after(Dialect::Postgres), &[&run_id, &after, &limit])
            .await?;
        let mut records = Vec::with_capacity(rows.len());
        for r in &rows {
            let seq = r.get::<_, i64>(0) as u64;
            let text: &str = r.get(1);
            records.push((seq, decode(run_id, seq, text)?));
        }
        Ok(records)
    }

    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunRow>> {
        let texts = filter.workflow.iter().chain(filter.before.iter().map(|(_, id)| id));
        if texts.into_iter().any(|t| !storable(t)) {
            return Ok(Vec::new());
        }
        let (sql, args) = sql::list(Dialect::Postgres, filter);
        let args: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> = args
            .into_iter()
            .map(|a| -> Box<dyn tokio_postgres::types::ToSql + Sync + Send> {
                match a {
                    Arg::Text(t) => Box::new(t),
                    Arg::Int(i) => Box::new(i),
                }
            })
            .collect();
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = args
            .iter()
            .map(|a| &**a as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let rows = self.read_query(&sql, &params).await?;
        rows.iter().map(row).collect()
    }

    async fn resolve(&self, prefix: &str, limit: usize) -> Result<Vec<String>> {
        if !storable(prefix) {
            return Ok(Vec::new());
        }
        let rows = self
            .read_query(
                "SELECT run_id FROM flow_runs WHERE starts_with(run_id, $1)
                 ORDER BY run_id = $1 DESC, run_id COLLATE \"C\" LIMIT $2",
                &[&prefix, &(limit as i64)],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
    }

    async fn claim(&self, run_id: &str, owner: &Owner, expected: Option<&str>, lease_until_ms: i64) -> Result<bool> {
        if !storable(run_id) {
            return Ok(false);
        }
        let (token, host, pid, started) = sql::owner_args(owner);
        let changed = self
            .execute(
                sql::claim(Dialect::Postgres),
                &[&run_id, &token, &host, &pid, &started, &lease_until_ms, &expected],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn renew(&self, owner_token: &str, lease_until_ms: i64) -> Result<()> {
        self.execute(sql::renew(Dialect::Postgres), &[&owner_token, &lease_until_ms])
            .await?;
        Ok(())
    }

    async fn first_record(&self, run_id: &str) -> Result<Option<Record>> {
        if !storable(run_id) {
            return Ok(None);
        }
        let row = self.read_opt(sql::first_record(Dialect::Postgres), &[&run_id]).await?;
        row.map(|r| decode(run_id, 1, r.get::<_, &str>(0))).transpose()
    }

    async fn bound(&self, key: &str) -> Result<Option<String>> {
        if !storable(key) {
            return Ok(None);
        }
        let row = self.read_opt(sql::bound(Dialect::Postgres), &[&key]).await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn remember(&self, key: &str, run_id: &str) -> Result<Option<String>> {
        let conn = self.writer().await?;
        // Insert, or read back the row another caller inserted: one statement.
        let row = conn
            .client
            .query_one(
                "WITH inserted AS (
                     INSERT INTO flow_keys (key, run_id, created_at) VALUES ($1, $2, $3)
                     ON CONFLICT (key) DO NOTHING RETURNING run_id
                 )
                 SELECT (SELECT run_id FROM inserted) IS NOT NULL,
                        COALESCE((SELECT run_id FROM inserted), (SELECT run_id FROM flow_keys WHERE key = $1))",
                &[&key, &run_id, &now_ms()],
            )
            .await
            .map_err(storage)?;
        let inserted: bool = row.get(0);
        if inserted {
            return Ok(None);
        }
        if let Some(bound) = row.get::<_, Option<String>>(1) {
            return Ok(Some(bound));
        }
        // The other caller committed after this statement's snapshot was taken.
        let row = conn
            .client
            .query_one("SELECT run_id FROM flow_keys WHERE key = $1", &[&key])
            .await
            .map_err(storage)?;
        Ok(Some(row.get(0)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            super::shown("postgres://flow:secret@db:5432/runs"),
            "postgres://flow:***@db:5432/runs"
        );
        assert_eq!(
            super::shown("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(
            super::shown("postgres://u@db/runs?sslmode=disable&password=hunter2&options=-c%20x"),
            "postgres://u@db/runs?sslmode=disable&password=***&options=-c%20x"
        );
        assert_eq!(
            super::shown("postgres://u:pw@db/runs?Password=x"),
            "postgres://u:***@db/runs?Password=***"
        );
    }
}
