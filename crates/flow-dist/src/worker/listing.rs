//! What `flow workers list` shows: each worker, alive or gone, and what it runs.

use super::*;

/// A worker as `flow workers list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct WorkerRow {
    /// Its id.
    pub id: String,
    /// The machine it runs on.
    pub host: String,
    /// Its process id there.
    pub pid: i64,
    /// The kinds it takes (`None`: all it knows).
    pub kinds: Option<Vec<String>>,
    /// Attempts it runs at once, at most.
    pub concurrency: i32,
    /// When it started, ms since the Unix epoch.
    pub started_at_ms: i64,
    /// When it last renewed, ms since the Unix epoch.
    pub seen_at_ms: i64,
    /// Whether it renewed recently (else it is taken for gone).
    pub alive: bool,
    /// What it runs now: `run_id node[#item] attempt N`.
    pub running: Vec<String>,
}

/// The workers of the queue in `url` that have not stopped, newest first.
///
/// # Errors
///
/// When the database cannot be reached or read.
pub async fn list_workers(url: &str) -> Result<Vec<WorkerRow>> {
    let mut db = connect(url).await?;
    schema::migrate(&mut db).await?;
    let now = now_ms();
    let rows = db
        .query(
            "SELECT w.id, w.host, w.pid, w.kinds, w.concurrency, w.started_at, w.seen_at,
                    COALESCE(ARRAY(SELECT t.run_id || ' ' || t.node || COALESCE('#' || t.item, '') || ' attempt ' || t.attempt
                                   FROM flow_tasks t WHERE t.worker = w.id AND t.state = 'claimed' ORDER BY t.started_at),
                             '{}')
             FROM flow_workers w WHERE w.stopped_at IS NULL ORDER BY w.started_at DESC",
            &[],
        )
        .await
        .map_err(storage)?;
    Ok(rows
        .iter()
        .map(|r| {
            let seen: i64 = r.get(6);
            WorkerRow {
                id: r.get(0),
                host: r.get(1),
                pid: r.get(2),
                kinds: r
                    .get::<_, Option<String>>(3)
                    .map(|k| k.split(',').map(str::to_owned).collect()),
                concurrency: r.get(4),
                started_at_ms: r.get(5),
                seen_at_ms: seen,
                alive: now - seen <= GONE_AFTER_MS,
                running: r.get(7),
            }
        })
        .collect())
}
