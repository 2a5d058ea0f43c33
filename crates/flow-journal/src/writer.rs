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
    /// Why the journal cannot be written now, while it cannot.
    health: Health,
}

/// Why the journal cannot be written now (`None`: it can).
type Health = Arc<Mutex<Option<String>>>;

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
        let health = Health::default();
        let (j, o, c, h) = (journal.clone(), owner.clone(), committed.clone(), health.clone());
        std::thread::Builder::new()
            .name("flow-journal".into())
            .spawn(move || runtime.block_on(write_loop(j, o, rx, c, h)))
            .map_err(|e| Error::Stopped(e.to_string()))?;
        Ok(Writer {
            tx,
            committed,
            journal,
            owner,
            health,
        })
    }

    /// Why the journal cannot be written now (its connection is lost, its
    /// disk full: batches wait and are tried again; or the writer stopped),
    /// `None` while it can. For health checks.
    pub fn unavailable(&self) -> Option<String> {
        self.health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
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
    health: Health,
) {
    let renew_every = LEASE / 3;
    let mut failed: Option<Error> = None;
    // Runs another process took over: their records are dropped from now on.
    let mut lost: Vec<Arc<str>> = Vec::new();
    // Of the lost runs, those whose records the journal refused, and why
    // (the others were taken over, or their key is another run's).
    let mut refusals: std::collections::HashMap<Arc<str>, String> = std::collections::HashMap::new();
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
            None => match append_until_through(&*journal, &owner, &entries, &health).await {
                // A batch the journal refuses for what it holds (not for its
                // connection): written again run by run, so that one run's bad
                // record fails that run alone, not every run of the process.
                Err(e @ (Error::Storage(_) | Error::Duplicate(_) | Error::Corrupt { .. })) => {
                    isolate(&*journal, &owner, &entries, &health, &e, &mut refusals).await
                }
                other => other,
            },
        };
        let result = match result {
            Ok(refused) => {
                for run_id in refused {
                    tracing::warn!(run_id = %run_id, "a run's records were refused (another process took it over, another run holds its idempotency key, or the journal refuses them)");
                    entries.retain(|e| e.run_id != run_id);
                    lost.push(run_id);
                }
                Ok(())
            }
            Err(e) => {
                if failed.is_none() {
                    tracing::error!(error = %e, "journal write failed; later writes are refused");
                    *health.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some(format!("journal writer stopped: {e}"));
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
                (Ok(()), Some(run)) if lost.contains(&run) => Err(match refusals.get(&run) {
                    Some(reason) => Error::Refused {
                        run_id: run.to_string(),
                        reason: reason.clone(),
                    },
                    None => Error::Lost {
                        run_id: run.to_string(),
                    },
                }),
                (result, _) => result.clone(),
            };
            let _ = ack.send(answer);
        }
    }
}

/// Writes a refused batch again run by run: the runs the journal refuses
/// alone are returned as refused (their waiters hear of it), the others are
/// written. When every run is refused, the journal itself is failing: the
/// health says so until a batch goes through.
async fn isolate(
    journal: &dyn Journal,
    owner: &Owner,
    entries: &[Entry],
    health: &Health,
    error: &Error,
    refusals: &mut std::collections::HashMap<Arc<str>, String>,
) -> Result<Vec<Arc<str>>> {
    let mut runs: Vec<Arc<str>> = entries.iter().map(|e| e.run_id.clone()).collect();
    runs.sort_unstable();
    runs.dedup();
    let mut refused = Vec::new();
    let mut written = 0;
    for run in &runs {
        let part: Vec<Entry> = entries.iter().filter(|e| e.run_id == *run).cloned().collect();
        match append_until_through(journal, owner, &part, health).await {
            Ok(lost) => {
                written += 1;
                refused.extend(lost);
            }
            Err(e) => {
                tracing::error!(run_id = %run, error = %e, "the journal refuses this run's records: the run cannot go on");
                refusals.insert(run.clone(), e.to_string());
                refused.push(run.clone());
            }
        }
    }
    let mut state = health.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    *state = (written == 0).then(|| error.to_string());
    Ok(refused)
}

/// Appends a batch, trying it again while the journal is
/// [`Error::Unavailable`] (a lost connection, a full disk): the runs that wait
/// for it wait on, then go on. A batch is one transaction: a try that failed
/// with its connection either wrote all or nothing, so a try again that meets
/// [`Error::Duplicate`] finds the batch written. `health` says why meanwhile.
async fn append_until_through(
    journal: &dyn Journal,
    owner: &Owner,
    entries: &[Entry],
    health: &Health,
) -> Result<Vec<Arc<str>>> {
    const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(2);
    let mut backoff = std::time::Duration::from_millis(50);
    let mut waited = false;
    loop {
        match journal.append(owner, entries).await {
            Err(Error::Unavailable(reason)) => {
                if !waited {
                    tracing::warn!(reason = %reason, records = entries.len(), "the journal is unavailable: the batch waits and is tried again");
                }
                waited = true;
                *health.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reason);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            other => {
                if other.is_ok() {
                    *health.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                }
                if waited {
                    tracing::info!("the journal is available again");
                    *health.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                    if let Err(Error::Duplicate(reason)) = &other {
                        tracing::info!(reason = %reason, "the batch had been written by the try that lost its connection");
                        return Ok(Vec::new());
                    }
                }
                return other;
            }
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
