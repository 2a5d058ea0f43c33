//! The queue's tables, next to the journal's (same schema, `search_path`),
//! created and migrated by the journal's runner under an advisory lock.

use tokio_postgres::Client;

use crate::{Result, storage};

const MIGRATIONS: &[&str] = &[
    // 1: tasks and workers.
    "CREATE TABLE flow_tasks (
        id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        node TEXT NOT NULL,
        item BIGINT,
        attempt INT NOT NULL,
        kind TEXT NOT NULL,
        config TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        timeout_ms BIGINT,
        coordinator TEXT NOT NULL,
        state TEXT NOT NULL,
        worker TEXT,
        claims INT NOT NULL DEFAULT 0,
        claimed_until BIGINT,
        outcome TEXT,
        created_at BIGINT NOT NULL,
        started_at BIGINT,
        finished_at BIGINT
    );
    CREATE INDEX flow_tasks_open ON flow_tasks (created_at, id) WHERE state IN ('queued', 'claimed');
    CREATE INDEX flow_tasks_by_run ON flow_tasks (run_id);
    CREATE INDEX flow_tasks_by_worker ON flow_tasks (worker) WHERE state = 'claimed';
    CREATE TABLE flow_workers (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid BIGINT NOT NULL,
        kinds TEXT,
        concurrency INT NOT NULL,
        started_at BIGINT NOT NULL,
        seen_at BIGINT NOT NULL,
        running INT NOT NULL DEFAULT 0,
        stopped_at BIGINT
    );",
    // 2: the quotas of limits, shared by every coordinator (GCRA: the
    // theoretical arrival time of the next start, in microseconds).
    "CREATE TABLE flow_quotas (
        key TEXT PRIMARY KEY,
        tat BIGINT NOT NULL
    );",
    // 3: the concurrency slots of limits, shared by every coordinator: one row
    // per slot, held by an attempt of a coordinator until its lease ends.
    "CREATE TABLE flow_slots (
        key TEXT NOT NULL,
        slot INT NOT NULL,
        holder TEXT,
        coordinator TEXT,
        until BIGINT,
        PRIMARY KEY (key, slot)
    );",
];

/// Creates or migrates the queue's tables, through the journal's migration
/// runner (its own version table and advisory lock).
pub(crate) async fn migrate(client: &mut Client) -> Result<()> {
    flow_journal::ensure_schema(client)
        .await
        .map_err(crate::Error::Storage)?;
    let migrations: Vec<String> = MIGRATIONS.iter().map(|m| (*m).to_owned()).collect();
    flow_journal::run_migrations(client, "flow_dist_schema", 7418093276, &migrations)
        .await
        .map_err(storage)
}
