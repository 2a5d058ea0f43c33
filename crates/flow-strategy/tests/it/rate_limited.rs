use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flow_strategy::governor::clock::{DefaultClock, FakeRelativeClock};
use flow_strategy::{AllSettled, Outcome, Parallel, RateLimited, Strategy, StrategyExt, TokioClock};
use tokio::time::Instant;

use crate::support::{Probe, ms};

fn limited(per_second: f64, burst: u32, clock: &FakeRelativeClock) -> RateLimited<AllSettled, FakeRelativeClock> {
    RateLimited::with_clock(AllSettled::new(), per_second, burst, clock.clone()).expect("valid quota")
}

#[test]
fn admissions_follow_the_quota() {
    let clock = FakeRelativeClock::default();
    let strategy = limited(2.0, 1, &clock);

    assert_eq!(strategy.admit(), Ok(()));
    assert_eq!(strategy.admit(), Err(ms(500)));
    clock.advance(ms(499));
    assert_eq!(strategy.admit(), Err(ms(1)));
    clock.advance(ms(1));
    assert_eq!(strategy.admit(), Ok(()));
    assert_eq!(strategy.admit(), Err(ms(500)));
}

#[test]
fn a_burst_is_admitted_at_once_then_refills_one_by_one() {
    let clock = FakeRelativeClock::default();
    let strategy = limited(10.0, 3, &clock);

    for _ in 0..3 {
        assert_eq!(strategy.admit(), Ok(()));
    }
    assert_eq!(strategy.admit(), Err(ms(100)));
    clock.advance(ms(100));
    assert_eq!(strategy.admit(), Ok(()));
    assert!(strategy.admit().is_err());
    // After a quiet spell the whole burst is back, and no more.
    clock.advance(Duration::from_secs(10));
    for _ in 0..3 {
        assert_eq!(strategy.admit(), Ok(()));
    }
    assert!(strategy.admit().is_err());
}

#[test]
fn fractional_rates_work() {
    let clock = FakeRelativeClock::default();
    let strategy = limited(0.5, 1, &clock);

    assert_eq!(strategy.admit(), Ok(()));
    assert_eq!(strategy.admit(), Err(Duration::from_secs(2)));
    clock.advance(Duration::from_millis(1_999));
    assert!(strategy.admit().is_err());
    clock.advance(ms(1));
    assert_eq!(strategy.admit(), Ok(()));
}

#[test]
fn policy_comes_from_the_inner_strategy() {
    let four = NonZeroUsize::new(4).expect("4 > 0");
    let settled = RateLimited::new(AllSettled::new().with_max_concurrency(four), 3.0).expect("valid");
    assert_eq!(settled.name(), "rate-limited");
    assert_eq!(settled.max_concurrency(), Some(four));
    assert!(!settled.fail_fast());
    assert_eq!(settled.per_second(), 3.0);
    assert_eq!(settled.burst(), NonZeroU32::MIN);
    assert_eq!(settled.inner(), &AllSettled::new().with_max_concurrency(four));

    let parallel = RateLimited::with_burst(Parallel::new(), 3.0, 5).expect("valid");
    assert!(parallel.fail_fast());
    assert_eq!(parallel.max_concurrency(), None);
    assert_eq!(parallel.burst().get(), 5);
    assert!(format!("{parallel:?}").contains("per_second: 3.0"));
}

/// An inner strategy that refuses every other admission.
#[derive(Debug, Default)]
struct EveryOther(AtomicUsize);

impl Strategy for EveryOther {
    fn name(&self) -> &str {
        "every-other"
    }
    fn max_concurrency(&self) -> Option<NonZeroUsize> {
        None
    }
    fn fail_fast(&self) -> bool {
        false
    }
    fn admit(&self) -> Result<(), Duration> {
        if self.0.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
            Ok(())
        } else {
            Err(ms(7))
        }
    }
}

#[test]
fn the_inner_strategy_is_asked_after_the_quota() {
    let clock = FakeRelativeClock::default();
    let strategy = RateLimited::with_clock(EveryOther::default(), 1.0, 10, clock).expect("valid");

    assert_eq!(strategy.admit(), Ok(()));
    assert_eq!(strategy.admit(), Err(ms(7)));
    assert_eq!(strategy.admit(), Ok(()));
    assert_eq!(strategy.inner().0.load(Ordering::SeqCst), 3);
}

#[test]
fn invalid_quotas_are_errors() {
    for (per_second, burst, message) in [
        (0.0, 1, "per_second: must be a finite number greater than 0, got 0"),
        (-1.0, 1, "per_second: must be a finite number greater than 0, got -1"),
        (
            f64::NAN,
            1,
            "per_second: must be a finite number greater than 0, got NaN",
        ),
        (
            f64::INFINITY,
            1,
            "per_second: must be a finite number greater than 0, got inf",
        ),
        (1.0, 0, "burst: must be at least 1"),
    ] {
        let error = RateLimited::with_burst(AllSettled::new(), per_second, burst).expect_err(message);
        assert_eq!(error.to_string(), message);
    }
}

/// End to end on tokio's paused clock: starts are spaced by the quota, and
/// the runner waits exactly as long as it is told.
#[tokio::test(start_paused = true)]
async fn starts_respect_rate_burst_and_max_concurrency() {
    let probe = Probe::new();
    let two = NonZeroUsize::new(2).expect("2 > 0");
    let strategy = RateLimited::with_clock(AllSettled::new().with_max_concurrency(two), 10.0, 3, TokioClock::new())
        .expect("valid quota");
    let started = Instant::now();

    let outcomes = strategy
        .run((0..8).map(|i| probe.branch(i, ms(150), Ok::<_, ()>(i))))
        .await;

    assert_eq!(outcomes, (0..8).map(Outcome::Ok).collect::<Vec<_>>());
    assert_eq!(probe.peak(), 2);
    let starts: Vec<u128> = probe
        .snapshot()
        .starts
        .iter()
        .map(|&(_, at)| (at - started).as_millis())
        .collect();
    // Two at once (the cap), two more when they finish at 150 ms and 300 ms
    // (the burst still has room), then the quota catches up: by 500 ms the
    // 8 starts are 3 (burst) + 5 refilled at one per 100 ms.
    assert_eq!(starts, [0, 0, 150, 150, 300, 300, 450, 500]);
    assert_eq!(probe.start_order(), (0..8).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn starts_are_spaced_by_the_rate() {
    let probe = Probe::new();
    // The default clock is tokio's.
    let strategy = RateLimited::with_burst(Parallel::new(), 4.0, 2).expect("valid quota");
    let started = Instant::now();

    let outcomes = strategy
        .run((0..6).map(|i| probe.branch(i, ms(1), Ok::<_, ()>(i))))
        .await;

    assert!(outcomes.iter().all(Outcome::is_ok));
    let starts: Vec<u128> = probe
        .snapshot()
        .starts
        .iter()
        .map(|&(_, at)| (at - started).as_millis())
        .collect();
    assert_eq!(starts, [0, 0, 250, 500, 750, 1000]);
}

/// With governor's own real clock, on a noisy machine: only lower bounds are
/// exact.
#[tokio::test]
async fn real_clock_spacing_has_a_floor() {
    let clock = DefaultClock::default();
    let strategy = RateLimited::with_clock(AllSettled::new(), 20.0, 1, clock).expect("valid quota");
    let started = std::time::Instant::now();

    let outcomes = strategy.run((0..4).map(|i| async move { Ok::<_, ()>(i) })).await;

    assert!(outcomes.iter().all(Outcome::is_ok));
    // 4 starts at 20/s with no burst: at 0, 50, 100, 150 ms.
    let elapsed = started.elapsed();
    assert!(elapsed >= ms(145), "took {elapsed:?}");
    assert!(elapsed < ms(5_000), "took {elapsed:?}");
}
