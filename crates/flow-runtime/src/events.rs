//! A run's records as they are written, for live views (`flow serve`'s event
//! streams): the history from the journal, then each batch the writer commits.

use flow_core::Record;
use flow_engine::journal::Entry;
use tokio::sync::{broadcast, mpsc};

use crate::{Error, Result, Runtime};

/// Records a subscriber may fall behind by before the run's task waits for it.
const BUFFER: usize = 256;

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
        let stored = self
            .journal()
            .load(run_id)
            .await?
            .ok_or_else(|| Error::RunNotFound(run_id.to_owned()))?;
        let (tx, rx) = mpsc::channel(BUFFER);
        let journal = self.journal().clone();
        let stopping = self.stopping().clone();
        let id = run_id.to_owned();
        tokio::spawn(async move {
            let mut sent = after;
            let mut history = stored.records;
            loop {
                let last = history.len();
                for (i, (seq, record)) in history.drain(..).enumerate() {
                    // The run's end is its last `run_finished`: a retried run goes on after one.
                    let end = matches!(record, Record::RunFinished { .. }) && i + 1 == last;
                    if seq <= sent {
                        // The subscriber saw the end already: nothing more comes.
                        if end {
                            return;
                        }
                        continue;
                    }
                    sent = seq;
                    if tx.send((seq, record)).await.is_err() || end {
                        return;
                    }
                }
                // A stopping runtime ends its streams: they must not hold it past its grace period.
                let next = tokio::select! {
                    next = live.recv() => next,
                    () = stopping.cancelled() => return,
                };
                match next {
                    Ok(batch) => history.extend(
                        batch
                            .iter()
                            .filter(|e: &&Entry| *e.run_id == *id && e.seq > sent)
                            .map(|e| (e.seq, e.record.clone())),
                    ),
                    Err(broadcast::error::RecvError::Lagged(_)) => match journal.load(&id).await {
                        Ok(Some(s)) => history = s.records,
                        _ => return,
                    },
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(rx)
    }
}
