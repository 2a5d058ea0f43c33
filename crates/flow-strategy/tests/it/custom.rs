//! A strategy written outside the crate: fixed spacing between starts.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flow_strategy::{Outcome, Strategy, StrategyExt};
use tokio::time::Instant;

use crate::support::{Probe, ms};

#[derive(Debug)]
struct Spaced {
    gap: Duration,
    next: Mutex<Option<Instant>>,
    asked: AtomicUsize,
}

impl Spaced {
    fn new(gap: Duration) -> Self {
        Spaced {
            gap,
            next: Mutex::new(None),
            asked: AtomicUsize::new(0),
        }
    }
}

impl Strategy for Spaced {
    fn name(&self) -> &str {
        "spaced"
    }

    fn max_concurrency(&self) -> Option<NonZeroUsize> {
        None
    }

    fn fail_fast(&self) -> bool {
        false
    }

    fn admit(&self) -> Result<(), Duration> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match *next {
            Some(at) if now < at => Err(at - now),
            _ => {
                *next = Some(now + self.gap);
                Ok(())
            }
        }
    }
}

/// The runner asks again only when told to, however often branches finish
/// in between, and keeps driving the branches in flight while it waits.
#[tokio::test(start_paused = true)]
async fn admission_waits_are_honoured_exactly() {
    let probe = Probe::new();
    let strategy = Spaced::new(ms(100));
    let started = Instant::now();
    let durations = [30, 5, 250, 1];

    let outcomes = strategy
        .run(
            durations
                .iter()
                .enumerate()
                .map(|(i, &d)| probe.branch(i, ms(d), Ok::<_, ()>(i))),
        )
        .await;

    assert_eq!(outcomes, (0..4).map(Outcome::Ok).collect::<Vec<_>>());
    let log = probe.snapshot();
    let starts: Vec<u128> = log.starts.iter().map(|&(_, at)| (at - started).as_millis()).collect();
    assert_eq!(starts, [0, 100, 200, 300]);
    // Three refusals (one per waiting start) and four admissions.
    assert_eq!(strategy.asked.load(Ordering::SeqCst), 7);
    // Branch 2 (started at 200 ms, 250 ms long) ran on while branch 3 waited.
    assert_eq!(started.elapsed(), ms(450));
    assert_eq!(probe.peak(), 2);
}
