//! A run's records as they are written, for live views (`flow serve`'s event
//! streams): the history from the journal, then each batch the writer commits.

use flow_core::Record;
use flow_engine::journal::Entry;
use tokio::sync::{broadcast, mpsc};

use crate::{Error, Result, Runtime};

/// Records a subscriber may fall behind by before its task waits for it.
const BUFFER: usize = 64;
/// Records read from the journal at a time.
const PAGE: usize = 256;
/// How long a subscriber may take nothing before it is dropped.
const STALL: std::time::Duration = std::time::Duration::from_secs(60);

impl Runtime {
    /// Run `run_id`'s records numbered above `after` (0: all): its history
    /// first, then live, as the journal's writer commits them (so a record a
    /// subscriber gets is durable). The channel closes after the run's end
    /// (its last `run_finished`: a retried run goes on after one), at once
    /// when `after` is past that end, and when the runtime stops.
    ///
    /// # Errors
    ///
    /// [`Error::RunNotFound`], [`Error::Journal`].
    pub async fn subscribe(&self, run_id: &str, after: u64) -> Result<mpsc::Receiver<(u64, Record)>> {
        // Subscribed before reading the history: nothing falls in between.
        let mut live = self.writer().subscribe();
        let row = self
            .journal()
            .row(run_id)
            .await?
            .ok_or_else(|| Error::RunNotFound(run_id.to_owned()))?;
        let (tx, rx) = mpsc::channel(BUFFER);
        let journal = self.journal().clone();
        let stopping = self.stopping().clone();
        let id = run_id.to_owned();
        tokio::spawn(async move {
            let mut sent = after;
            // Whether the newest record the subscriber has is the run's end
            // (before one is sent: whether the run had ended when asked).
            let mut at_end = row.status.is_finished();
            loop {
                // The history, a page at a time: a long run's is never held whole.
                loop {
                    let Ok(page) = journal.records_page(&id, sent, PAGE).await else {
                        return;
                    };
                    let full = page.len() == PAGE;
                    for (seq, record) in page {
                        at_end = matches!(record, Record::RunFinished { .. });
                        sent = seq;
                        if !deliver(&tx, seq, record).await {
                            return;
                        }
                    }
                    if !full {
                        break;
                    }
                }
                // The run's end is its last `run_finished`: a retried run goes on after one.
                if at_end {
                    return;
                }
                // Then live, until the run ends or this subscriber falls so far
                // behind that the writer's channel dropped batches for it: then
                // the journal has them.
                loop {
                    // A stopping runtime ends its streams: they must not hold it past its grace period.
                    let next = tokio::select! {
                        next = live.recv() => next,
                        () = stopping.cancelled() => return,
                    };
                    let batch = match next {
                        Ok(batch) => batch,
                        Err(broadcast::error::RecvError::Lagged(_)) => break,
                        Err(broadcast::error::RecvError::Closed) => return,
                    };
                    let mine: Vec<&Entry> = batch.iter().filter(|e| *e.run_id == *id && e.seq > sent).collect();
                    let last = mine.len();
                    for (i, entry) in mine.into_iter().enumerate() {
                        let end = matches!(entry.record, Record::RunFinished { .. }) && i + 1 == last;
                        sent = entry.seq;
                        if !deliver(&tx, entry.seq, entry.record.clone()).await || end {
                            return;
                        }
                    }
                }
            }
        });
        Ok(rx)
    }
}

/// Hands a record to the subscriber; false when it is gone or has taken
/// nothing for [`STALL`] (it is dropped, and what was kept for it freed).
async fn deliver(tx: &mpsc::Sender<(u64, Record)>, seq: u64, record: Record) -> bool {
    matches!(tokio::time::timeout(STALL, tx.send((seq, record))).await, Ok(Ok(())))
}
