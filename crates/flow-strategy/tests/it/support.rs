//! A probe that records when each branch starts, finishes or is dropped, and
//! how many were in flight at once.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[derive(Debug, Default, Clone)]
pub struct Probe {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    log: Mutex<Log>,
}

/// What happened, in order, with tokio's clock reading.
#[derive(Debug, Default, Clone)]
pub struct Log {
    pub starts: Vec<(usize, Instant)>,
    pub finishes: Vec<(usize, Instant)>,
    pub drops: Vec<(usize, Instant)>,
}

impl Probe {
    pub fn new() -> Self {
        Self::default()
    }

    /// A branch that sleeps for `duration` (on tokio's clock), then returns `result`.
    pub fn branch<T, E>(
        &self,
        index: usize,
        duration: Duration,
        result: Result<T, E>,
    ) -> impl Future<Output = Result<T, E>> + use<T, E> {
        let probe = self.clone();
        async move {
            let mut guard = probe.enter(index);
            tokio::time::sleep(duration).await;
            guard.finished = true;
            result
        }
    }

    fn enter(&self, index: usize) -> Guard {
        let now = self.shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.shared.peak.fetch_max(now, Ordering::SeqCst);
        self.log().starts.push((index, Instant::now()));
        Guard {
            probe: self.clone(),
            index,
            finished: false,
        }
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.shared.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most branches ever in flight at once.
    pub fn peak(&self) -> usize {
        self.shared.peak.load(Ordering::SeqCst)
    }

    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    pub fn snapshot(&self) -> Log {
        self.log().clone()
    }

    pub fn start_order(&self) -> Vec<usize> {
        self.log().starts.iter().map(|&(i, _)| i).collect()
    }

    pub fn dropped(&self) -> Vec<usize> {
        let mut dropped: Vec<usize> = self.log().drops.iter().map(|&(i, _)| i).collect();
        dropped.sort_unstable();
        dropped
    }
}

/// Marks a branch in flight for as long as it lives.
struct Guard {
    probe: Probe,
    index: usize,
    finished: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.probe.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        let entry = (self.index, Instant::now());
        let mut log = self.probe.log();
        if self.finished {
            log.finishes.push(entry);
        } else {
            log.drops.push(entry);
        }
    }
}
