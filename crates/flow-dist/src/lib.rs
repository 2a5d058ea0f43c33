//! Workers on several machines for **flow**: node attempts go through a queue
//! in PostgreSQL, the database the journal already uses.
//!
//! - [`Queue`] is the coordinator's side, a [`flow_engine::Dispatcher`]: every
//!   attempt the driver starts becomes a row of `flow_tasks` (inserted in
//!   batches, with a `NOTIFY` that wakes idle workers), and the attempt's
//!   outcome comes back when a worker writes it (`NOTIFY` again, and a sweep
//!   each second for a notification lost with its connection). Dropping the
//!   attempt (cancellation, fail-fast, timeout) marks the row cancelled and
//!   tells the worker running it, which drops it within a second.
//! - [`Worker`] is the other side (`flow worker`): it claims tasks in batches
//!   (`FOR UPDATE SKIP LOCKED`), renews its claims while it works, runs each
//!   with the same node kinds as a local run, and writes the outcome. A worker
//!   that dies stops renewing: its tasks are claimed again when their claims
//!   expire and run again with the same idempotency key.
//!
//! Everything that decides stays with the coordinator: the state machine,
//! rendering, retries, timeouts, trigger rules, the strategy and the limits,
//! and the journal. A worker runs attempts and nothing else.
//!
//! Secrets never enter the queue: a secret's value in a rendered config (or
//! in an output) is replaced by a marker naming it, and the other side puts
//! its own value back (workers read secrets from their own environment, as
//! the coordinator does).

#![warn(missing_docs)]

mod queue;
mod schema;
mod secrets;
mod worker;

pub use queue::Queue;
pub use worker::{Worker, WorkerConfig, WorkerRow, list_workers};

/// What went wrong with the queue.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database could not be reached or prepared.
    #[error("queue {target}: {reason}")]
    Open {
        /// The URL (without password).
        target: String,
        /// Why.
        reason: String,
    },
    /// A read or write failed.
    #[error("queue: {0}")]
    Storage(String),
}

/// A queue result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn storage(e: tokio_postgres::Error) -> Error {
    Error::Storage(flow_journal::pg_message(&e))
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    flow_journal::now_ms()
}

/// A connection whose notifications (`LISTEN`) arrive on the returned channel.
async fn listening(
    url: &str,
    channels: &[&str],
) -> Result<(
    tokio_postgres::Client,
    tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::Notification>,
)> {
    use futures::StreamExt;
    let (client, mut connection) = flow_journal::pg_open_connection(url)
        .await
        .map_err(|reason| Error::Open {
            target: flow_journal::shown_url(url),
            reason,
        })?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    if tx.send(n).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "queue connection to PostgreSQL ended");
                    break;
                }
            }
        }
    });
    let listen: String = channels.iter().map(|c| format!("LISTEN {c};")).collect();
    client.batch_execute(&listen).await.map_err(storage)?;
    Ok((client, rx))
}

/// A plain connection (its messages read by a task of the current runtime).
async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    flow_journal::pg_connect(url).await.map_err(|reason| Error::Open {
        target: flow_journal::shown_url(url),
        reason,
    })
}
