//! The SQL both backends share, written once over a small [`Dialect`]: the
//! schema's migrations, the run row's columns and their mapping to a
//! [`RunRow`], the list filter, creating a run's row, claim and renew. Each
//! backend binds the parameters with its own driver; PostgreSQL keeps its
//! one-statement batch (`UNNEST`) and its key upsert as its own.

use std::sync::OnceLock;

use crate::{Error, Owner, Result, RunFilter, RunRow};

/// A statement of both dialects, spelled once per process (some run per
/// created run, on the writer's thread).
type Cells = [OnceLock<String>; 2];

fn spelled(cells: &'static Cells, dialect: Dialect, template: &str) -> &'static str {
    cells[dialect as usize].get_or_init(|| dialect.sql(template))
}

/// How the two databases spell what differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(all(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The `n`th (1-based) placeholder.
    fn param(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    }

    /// Fills a statement written with `{int}`, `{real}`, `{serial}` (column types),
    /// `{keyed}` (a table that needs no row id, where that can be said), `{is}`
    /// (a comparison that holds for two NULLs) and `{1}`, `{2}`... (placeholders).
    pub(crate) fn sql(self, template: &str) -> String {
        let (int, real, keyed, is) = match self {
            Dialect::Sqlite => ("INTEGER", "REAL", " WITHOUT ROWID", "IS"),
            Dialect::Postgres => ("BIGINT", "DOUBLE PRECISION", "", "IS NOT DISTINCT FROM"),
        };
        let serial = match self {
            Dialect::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
            Dialect::Postgres => "BIGSERIAL PRIMARY KEY",
        };
        let mut sql = template
            .replace("{serial}", serial)
            .replace("{int}", int)
            .replace("{real}", real)
            .replace("{keyed}", keyed)
            .replace("{is}", is);
        for n in (1..=9).rev() {
            sql = sql.replace(&format!("{{{n}}}"), &self.param(n));
        }
        sql
    }
}

/// The journal's schema, one migration at a time; the backend counts which it
/// has applied.
const MIGRATIONS: &[&str] = &[
    // 1: runs and their records.
    "CREATE TABLE flow_runs (
        run_id TEXT PRIMARY KEY,
        workflow TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at {int} NOT NULL,
        finished_at {int},
        duration_ms {real},
        owner TEXT,
        owner_host TEXT,
        owner_pid {int},
        owner_started {int},
        lease_until {int},
        counts TEXT
    );
    CREATE INDEX flow_runs_by_start ON flow_runs (started_at DESC, run_id DESC);
    CREATE INDEX flow_runs_by_workflow ON flow_runs (workflow, started_at DESC);
    CREATE INDEX flow_runs_by_status ON flow_runs (status);
    CREATE TABLE flow_records (
        run_id TEXT NOT NULL,
        seq {int} NOT NULL,
        kind TEXT NOT NULL,
        written_at {int} NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    );",
    // 2: idempotency keys of submissions (`flow serve`).
    "CREATE TABLE flow_keys (
        key TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        created_at {int} NOT NULL
    ){keyed};",
    // 3: signals sent to runs (any process may send one; the run's owner takes
    // them, oldest first, each recorded in the run's own records).
    "CREATE TABLE flow_signals (
        id {serial},
        run_id TEXT NOT NULL,
        name TEXT NOT NULL,
        payload TEXT NOT NULL,
        sent_at {int} NOT NULL
    );
    CREATE INDEX flow_signals_by_run ON flow_signals (run_id, name, id);",
    // 4: parked runs (status `waiting`): when their earliest wait is due.
    "ALTER TABLE flow_runs ADD COLUMN wake_at {int};
    CREATE INDEX flow_runs_by_wake ON flow_runs (status, wake_at);",
    // 5: child runs: the run that started them (JSON: run_id, node, item).
    "ALTER TABLE flow_runs ADD COLUMN parent TEXT;",
];

/// Sets a created run's parent (a child run's row).
pub(crate) const SET_PARENT: &str = "UPDATE flow_runs SET parent = {2} WHERE run_id = {1}";

/// The migrations, in `dialect`.
pub(crate) fn migrations(dialect: Dialect) -> Vec<String> {
    MIGRATIONS.iter().map(|m| dialect.sql(m)).collect()
}

/// A run row's columns, in the order [`Columns`] reads them.
pub(crate) const ROW_COLUMNS: &str = "run_id, workflow, status, started_at, finished_at, duration_ms, owner, owner_host, owner_pid, owner_started, lease_until, counts, parent";

/// A run row's columns as read, before they mean anything.
pub(crate) struct Columns {
    pub run_id: String,
    pub workflow: String,
    pub status: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub duration_ms: Option<f64>,
    pub owner: Option<String>,
    pub owner_host: Option<String>,
    pub owner_pid: Option<i64>,
    pub owner_started: Option<i64>,
    pub lease_until: Option<i64>,
    pub counts: Option<String>,
    pub parent: Option<String>,
}

impl Columns {
    /// The row they make.
    pub(crate) fn into_row(self) -> Result<RunRow> {
        let status = self
            .status
            .parse()
            .map_err(|e: String| Error::Storage(format!("run {}: {e}", self.run_id)))?;
        let (host, pid, started) = (self.owner_host, self.owner_pid, self.owner_started);
        Ok(RunRow {
            run_id: self.run_id,
            workflow: self.workflow,
            status,
            started_at_ms: self.started_at,
            finished_at_ms: self.finished_at,
            duration_ms: self.duration_ms,
            owner: self.owner.map(|token| Owner {
                token,
                host: host.unwrap_or_default(),
                pid: pid.unwrap_or(0) as u32,
                started: started.unwrap_or(0) as u64,
            }),
            lease_until_ms: self.lease_until,
            counts: self.counts.and_then(|c| serde_json::from_str(&c).ok()),
            parent: self.parent.and_then(|p| serde_json::from_str(&p).ok()),
        })
    }
}

/// A parameter of a built query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
}

/// The list query for `filter`, newest first, with its parameters.
pub(crate) fn list(dialect: Dialect, filter: &RunFilter) -> (String, Vec<Arg>) {
    let mut sql = format!("SELECT {ROW_COLUMNS} FROM flow_runs WHERE 1 = 1");
    let mut args = Vec::new();
    if let Some(w) = &filter.workflow {
        args.push(Arg::Text(w.clone()));
        sql.push_str(&format!(" AND workflow = {}", dialect.param(args.len())));
    }
    if let Some(s) = filter.stored_status() {
        args.push(Arg::Text(s.as_str().to_owned()));
        sql.push_str(&format!(" AND status = {}", dialect.param(args.len())));
    }
    if filter.top_level {
        sql.push_str(" AND parent IS NULL");
    }
    if let Some((at, id)) = &filter.before {
        args.push(Arg::Int(*at));
        args.push(Arg::Text(id.clone()));
        let (a, b) = (dialect.param(args.len() - 1), dialect.param(args.len()));
        sql.push_str(&format!(
            " AND (started_at < {a} OR (started_at = {a} AND run_id < {b}))"
        ));
    }
    sql.push_str(" ORDER BY started_at DESC, run_id DESC");
    if filter.limit > 0 {
        sql.push_str(&format!(" LIMIT {}", filter.limit));
    }
    (sql, args)
}

/// A new run's row, held until its lease ends: run id, workflow, start, then
/// the owner's token, host, pid and start, and the lease.
pub(crate) fn insert_run(dialect: Dialect) -> &'static str {
    static CELLS: Cells = [OnceLock::new(), OnceLock::new()];
    spelled(&CELLS, dialect,
        "INSERT INTO flow_runs (run_id, workflow, status, started_at, owner, owner_host, owner_pid, owner_started, lease_until)
         VALUES ({1}, {2}, 'running', {3}, {4}, {5}, {6}, {7}, {8})",
    )
}

/// Binds an idempotency key to a run unless it is bound: key, run id, time.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) fn bind_key(dialect: Dialect) -> &'static str {
    static CELLS: Cells = [OnceLock::new(), OnceLock::new()];
    spelled(
        &CELLS,
        dialect,
        "INSERT INTO flow_keys (key, run_id, created_at) VALUES ({1}, {2}, {3}) ON CONFLICT (key) DO NOTHING",
    )
}

/// The run a key is bound to: key.
pub(crate) fn bound(dialect: Dialect) -> &'static str {
    static CELLS: Cells = [OnceLock::new(), OnceLock::new()];
    spelled(&CELLS, dialect, "SELECT run_id FROM flow_keys WHERE key = {1}")
}

/// A run's first record's data: run id.
pub(crate) fn first_record(dialect: Dialect) -> &'static str {
    static CELLS: Cells = [OnceLock::new(), OnceLock::new()];
    spelled(
        &CELLS,
        dialect,
        "SELECT data FROM flow_records WHERE run_id = {1} AND seq = 1",
    )
}

/// A run's first record: run id, kind, time, data.
pub(crate) fn insert_first(dialect: Dialect) -> &'static str {
    static CELLS: Cells = [OnceLock::new(), OnceLock::new()];
    spelled(
        &CELLS,
        dialect,
        "INSERT INTO flow_records (run_id, seq, kind, written_at, data) VALUES ({1}, 1, {2}, {3}, {4})",
    )
}

/// Takes a run for a new owner if its owner is still the one read before
/// (`{7}`, NULL for none): run id, the owner's token, host, pid and start, the
/// lease, the expected owner.
pub(crate) fn claim(dialect: Dialect) -> &'static str {
    static CELLS: Cells = [OnceLock::new(), OnceLock::new()];
    spelled(
        &CELLS,
        dialect,
        "UPDATE flow_runs SET owner = {2}, owner_host = {3}, owner_pid = {4}, owner_started = {5}, lease_until = {6},
         status = 'running', finished_at = NULL, duration_ms = NULL, counts = NULL
         WHERE run_id = {1} AND owner {is} {7}",
    )
}

/// Extends the lease of every running run an owner holds: token, lease.
pub(crate) fn renew(dialect: Dialect) -> &'static str {
    static CELLS: Cells = [OnceLock::new(), OnceLock::new()];
    spelled(
        &CELLS,
        dialect,
        "UPDATE flow_runs SET lease_until = {2} WHERE owner = {1} AND status = 'running'",
    )
}

/// At most so many of a run's records after a sequence number: run id,
/// after, limit.
pub(crate) fn records_after(dialect: Dialect) -> &'static str {
    static CELLS: Cells = [OnceLock::new(), OnceLock::new()];
    spelled(
        &CELLS,
        dialect,
        "SELECT seq, data FROM flow_records WHERE run_id = {1} AND seq > {2} ORDER BY seq LIMIT {3}",
    )
}

/// Sends a signal: run id, name, payload (JSON text), sent at; returns its id.
pub(crate) fn send_signal(dialect: Dialect) -> &'static str {
    static CELLS: Cells = [OnceLock::new(), OnceLock::new()];
    spelled(
        &CELLS,
        dialect,
        "INSERT INTO flow_signals (run_id, name, payload, sent_at) VALUES ({1}, {2}, {3}, {4}) RETURNING id",
    )
}

/// The oldest signal of a name sent to a run after a number: run id, name, after.
pub(crate) fn next_signal(dialect: Dialect) -> &'static str {
    static CELLS: Cells = [OnceLock::new(), OnceLock::new()];
    spelled(
        &CELLS,
        dialect,
        "SELECT id, payload FROM flow_signals WHERE run_id = {1} AND name = {2} AND id > {3} ORDER BY id LIMIT 1",
    )
}

/// Parks a run its owner holds: run id, owner token, wake at.
pub(crate) fn park(dialect: Dialect) -> &'static str {
    static CELLS: Cells = [OnceLock::new(), OnceLock::new()];
    spelled(
        &CELLS,
        dialect,
        "UPDATE flow_runs SET status = 'waiting', wake_at = {3},
         owner = NULL, owner_host = NULL, owner_pid = NULL, owner_started = NULL, lease_until = NULL
         WHERE run_id = {1} AND owner = {2} AND status = 'running'",
    )
}

/// Takes a parked run: run id, then the owner as [`owner_args`] gives it
/// (`{2}` to `{5}`), lease.
pub(crate) fn wake(dialect: Dialect) -> &'static str {
    static CELLS: Cells = [OnceLock::new(), OnceLock::new()];
    spelled(
        &CELLS,
        dialect,
        "UPDATE flow_runs SET owner = {2}, owner_host = {3}, owner_pid = {4}, owner_started = {5}, lease_until = {6},
         status = 'running', wake_at = NULL
         WHERE run_id = {1} AND status = 'waiting'",
    )
}

/// Parked runs due: now, limit.
pub(crate) fn due(dialect: Dialect) -> &'static str {
    static CELLS: Cells = [OnceLock::new(), OnceLock::new()];
    spelled(
        &CELLS,
        dialect,
        "SELECT run_id FROM flow_runs WHERE status = 'waiting' AND wake_at <= {1} ORDER BY wake_at LIMIT {2}",
    )
}

/// How many runs have a status: status.
pub(crate) fn count(dialect: Dialect) -> &'static str {
    static CELLS: Cells = [OnceLock::new(), OnceLock::new()];
    spelled(&CELLS, dialect, "SELECT count(*) FROM flow_runs WHERE status = {1}")
}

/// The earliest instant a parked run is due.
pub(crate) const NEXT_WAKE: &str = "SELECT MIN(wake_at) FROM flow_runs WHERE status = 'waiting'";

/// A parked run that a signal was sent to is due now: run id, now.
pub(crate) fn ring(dialect: Dialect) -> &'static str {
    static CELLS: Cells = [OnceLock::new(), OnceLock::new()];
    spelled(
        &CELLS,
        dialect,
        "UPDATE flow_runs SET wake_at = {2} WHERE run_id = {1} AND status = 'waiting'",
    )
}

/// A run's row: run id.
pub(crate) fn run_row(dialect: Dialect) -> &'static str {
    static CELLS: Cells = [OnceLock::new(), OnceLock::new()];
    spelled(
        &CELLS,
        dialect,
        &format!("SELECT {ROW_COLUMNS} FROM flow_runs WHERE run_id = {{1}}"),
    )
}

/// An owner's parameters, as [`insert_run`] and [`claim`] take them (from `{4}`
/// and `{2}`): token, host, pid, start.
pub(crate) fn owner_args(owner: &Owner) -> (&str, &str, i64, i64) {
    (&owner.token, &owner.host, i64::from(owner.pid), owner.started as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_spelled_per_dialect() {
        assert!(claim(Dialect::Sqlite).ends_with("WHERE run_id = ?1 AND owner IS ?7"));
        assert!(claim(Dialect::Postgres).ends_with("WHERE run_id = $1 AND owner IS NOT DISTINCT FROM $7"));
        let pg = migrations(Dialect::Postgres).join("\n");
        assert!(pg.contains("started_at BIGINT NOT NULL") && pg.contains("duration_ms DOUBLE PRECISION"));
        let lite = migrations(Dialect::Sqlite).join("\n");
        assert!(lite.contains("started_at INTEGER NOT NULL") && lite.contains("duration_ms REAL"));
        assert!(!pg.contains('{') && !lite.contains('{'));
    }

    #[test]
    fn the_list_filter_binds_its_values() {
        let filter = RunFilter {
            workflow: Some("w".into()),
            status: Some(flow_core::RunStatus::Interrupted),
            limit: 5,
            before: Some((10, "r".into())),
            top_level: false,
        };
        let (sql, args) = list(Dialect::Postgres, &filter);
        assert!(
            sql.contains("workflow = $1 AND status = $2 AND (started_at < $3 OR (started_at = $3 AND run_id < $4))")
        );
        assert!(sql.ends_with("LIMIT 5"));
        assert_eq!(
            args,
            [
                Arg::Text("w".into()),
                Arg::Text("running".into()),
                Arg::Int(10),
                Arg::Text("r".into())
            ]
        );
    }
}
