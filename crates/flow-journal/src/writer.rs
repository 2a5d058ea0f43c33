//! Group commit: one thread writes what every run appends, a batch per
//! transaction, and wakes those who wait for durability.

use std::sync::{Arc, Mutex};

use flow_core::Record;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::{Entry, Error, Journal, LEASE, Owner, Result, now_ms};

/// Most records written in one transaction.
const MAX_BATCH: usize = 8192;
/// How long a batch nobody waits for may wait for one somebody will: a node's
/// settle is followed, microseconds later, by its downstream's start, which
/// waits; both then share one commit.
const LINGER: std::time::Duration = std::time::Duration::from_millis(1);

/// Where a waiter for durability hears the outcome.
type Ack = oneshot::Sender<Result<()>>;

// Appends are nearly all the traffic: boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Append(Entry, Option<Ack>),
    /// Everything before is durable; with a run, that run's records were written.
    Flush(Option<Arc<str>>, Ack),
}

/// The journal's single writer: a dedicated thread that batches appends from
/// every run of the process into transactions, and renews the leases of the
/// runs this process holds. Cheap to clone; the thread ends when the last
/// clone is dropped.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::UnboundedSender<Msg>,
    committed: broadcast::Sender<Arc<[Entry]>>,
    journal: Arc<dyn Journal>,
    owner: Arc<Owner>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("journal", &self.journal.target())
            .field("owner", &self.owner.token)
            .finish()
    }
}

impl Writer {
    /// Starts the writer thread for `journal`; runs are held as `owner`.
    pub fn start(journal: Arc<dyn Journal>, owner: Owner) -> Result<Writer> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (committed, _) = broadcast::channel(1024);
        let owner = Arc::new(owner);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Stopped(e.to_string()))?;
        let (j, o, c) = (journal.clone(), owner.clone(), committed.clone());
        std::thread::Builder::new()
            .name("flow-journal".into())
            .spawn(move || runtime.block_on(write_loop(j, o, rx, c)))
            .map_err(|e| Error::Stopped(e.to_string()))?;
        Ok(Writer {
            tx,
            committed,
            journal,
            owner,
        })
    }

    /// Every batch this writer commits, as it commits it (for live views of
    /// runs: `flow serve`'s event streams). Batches are only kept for
    /// subscribers; a subscriber that falls more than 1024 batches behind gets
    /// `Lagged` and should read the journal again.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<[Entry]>> {
        self.committed.subscribe()
    }

    /// The journal written to.
    pub fn journal(&self) -> &Arc<dyn Journal> {
        &self.journal
    }

    /// The owner runs are held as.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// A handle for run `run_id`, whose next record gets sequence `next_seq`.
    pub fn run(&self, run_id: Arc<str>, next_seq: u64) -> RunLog {
        RunLog {
            inner: Arc::new(RunLogInner {
                writer: self.clone(),
                run_id,
                seq: Mutex::new(next_seq),
            }),
        }
    }

    /// Waits until everything appended before is durable.
    pub async fn flush(&self) -> Result<()> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Msg::Flush(None, ack))
            .map_err(|_| Error::Stopped("the writer thread ended".into()))?;
        done.await
            .map_err(|_| Error::Stopped("the writer thread ended".into()))?
    }
}

async fn write_loop(
    journal: Arc<dyn Journal>,
    owner: Arc<Owner>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    committed: broadcast::Sender<Arc<[Entry]>>,
) {
    let renew_every = LEASE / 3;
    let mut failed: Option<Error> = None;
    // Runs another process took over: their records are dropped from now on.
    let mut lost: Vec<Arc<str>> = Vec::new();
    let mut entries = Vec::new();
    let mut acks: Vec<(Option<Arc<str>>, Ack)> = Vec::new();
    let mut next_renewal = tokio::time::Instant::now() + renew_every;
    loop {
        let first = tokio::select! {
            m = rx.recv() => m,
            _ = tokio::time::sleep_until(next_renewal) => {
                if failed.is_none()
                    && let Err(e) = journal.renew(&owner.token, now_ms() + LEASE.as_millis() as i64).await {
                    tracing::warn!(error = %e, "renewing run leases failed");
                }
                next_renewal = tokio::time::Instant::now() + renew_every;
                continue;
            }
        };
        let Some(first) = first else { break };
        let mut next = Some(first);
        loop {
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Append(entry, ack) => {
                        if let Some(ack) = ack {
                            acks.push((Some(entry.run_id.clone()), ack));
                        }
                        if lost.is_empty() || !lost.contains(&entry.run_id) {
                            entries.push(entry);
                        }
                    }
                    Msg::Flush(run, ack) => acks.push((run, ack)),
                }
                if entries.len() < MAX_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            if !acks.is_empty() || entries.len() >= MAX_BATCH {
                break;
            }
            match tokio::time::timeout(LINGER, rx.recv()).await {
                Ok(Some(msg)) => next = Some(msg),
                Ok(None) | Err(_) => break,
            }
        }
        let result = match &failed {
            Some(e) => Err(e.clone()),
            None if entries.is_empty() => Ok(Vec::new()),
            None => journal.append(&owner, &entries).await,
        };
        let result = match result {
            Ok(refused) => {
                for run_id in refused {
                    tracing::warn!(run_id = %run_id, "a run's records were refused (another process took it over, or another run holds its idempotency key)");
                    entries.retain(|e| e.run_id != run_id);
                    lost.push(run_id);
                }
                Ok(())
            }
            Err(e) => {
                if failed.is_none() {
                    tracing::error!(error = %e, "journal write failed; later writes are refused");
                }
                let stopped = match e {
                    Error::Stopped(_) => e,
                    other => Error::Stopped(other.to_string()),
                };
                failed = Some(stopped.clone());
                Err(stopped)
            }
        };
        if result.is_ok() && committed.receiver_count() > 0 && !entries.is_empty() {
            let batch: Arc<[Entry]> = entries.drain(..).collect();
            let _ = committed.send(batch);
        }
        entries.clear();
        for (run, ack) in acks.drain(..) {
            let answer = match (&result, run) {
                (Ok(()), Some(run)) if lost.contains(&run) => Err(Error::Lost {
                    run_id: run.to_string(),
                }),
                (result, _) => result.clone(),
            };
            let _ = ack.send(answer);
        }
    }
}

/// One run's handle on the [`Writer`]: appends get the run's sequence numbers
/// in order. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RunLog {
    inner: Arc<RunLogInner>,
}

#[derive(Debug)]
struct RunLogInner {
    writer: Writer,
    run_id: Arc<str>,
    seq: Mutex<u64>,
}

impl RunLog {
    /// The run's id.
    pub fn run_id(&self) -> &Arc<str> {
        &self.inner.run_id
    }

    /// The writer.
    pub fn writer(&self) -> &Writer {
        &self.inner.writer
    }

    fn send(&self, record: Record, ack: Option<Ack>) -> Result<()> {
        // Numbered and queued under one lock, so sequence order is queue order.
        let mut seq = self.inner.seq.lock().unwrap_or_else(|p| p.into_inner());
        let entry = Entry {
            run_id: self.inner.run_id.clone(),
            seq: *seq,
            record,
        };
        self.inner
            .writer
            .tx
            .send(Msg::Append(entry, ack))
            .map_err(|_| Error::Stopped("the writer thread ended".into()))?;
        *seq += 1;
        Ok(())
    }

    /// Queues a record; it becomes durable with the next batch. Whatever is
    /// appended later and waited for is durable only after this one.
    pub fn append(&self, record: Record) {
        // A failed send means the writer stopped: the next durable append says so.
        let _ = self.send(record, None);
    }

    /// Appends a record and waits until it (and everything before it) is durable.
    pub async fn append_durable(&self, record: Record) -> Result<()> {
        let (ack, done) = oneshot::channel();
        self.send(record, Some(ack))?;
        done.await
            .map_err(|_| Error::Stopped("the writer thread ended".into()))?
    }

    /// Waits until everything appended so far is durable.
    ///
    /// # Errors
    ///
    /// [`Error::Lost`] when another process took the run over, so that not
    /// everything was written.
    pub async fn flush(&self) -> Result<()> {
        let (ack, done) = oneshot::channel();
        self.inner
            .writer
            .tx
            .send(Msg::Flush(Some(self.inner.run_id.clone()), ack))
            .map_err(|_| Error::Stopped("the writer thread ended".into()))?;
        done.await
            .map_err(|_| Error::Stopped("the writer thread ended".into()))?
    }
}
