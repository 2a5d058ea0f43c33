use std::num::NonZeroUsize;
use std::time::Instant as StdInstant;

use flow_strategy::{AllSettled, Outcome, Parallel, Strategy, run};
use tokio::time::Instant;

use crate::support::{Probe, ms};

fn cap(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).expect("cap is at least 1")
}

#[tokio::test(start_paused = true)]
async fn branches_overlap() {
    let probe = Probe::new();
    let started = Instant::now();

    let outcomes = run(
        &Parallel::new(),
        (0..5).map(|i| probe.branch(i, ms(200), Ok::<_, ()>(i))),
    )
    .await;

    assert_eq!(outcomes, (0..5).map(Outcome::Ok).collect::<Vec<_>>());
    assert_eq!(probe.peak(), 5);
    assert_eq!(started.elapsed(), ms(200));
}

/// The same on the real clock, with a wide margin: 5 × 200 ms in sequence
/// would take 1 s.
#[tokio::test]
async fn branches_overlap_in_real_time() {
    let started = StdInstant::now();
    let branches = (0..5).map(|i| async move {
        tokio::time::sleep(ms(200)).await;
        Ok::<_, ()>(i)
    });

    let outcomes = run(&Parallel::new(), branches).await;

    assert!(outcomes.iter().all(Outcome::is_ok));
    assert!(started.elapsed() < ms(900), "took {:?}", started.elapsed());
}

#[tokio::test(start_paused = true)]
async fn max_concurrency_is_never_exceeded() {
    for limit in [1, 2, 3, 7, 50] {
        for (name, outcomes, probe) in [
            capped(Parallel::new().with_max_concurrency(cap(limit))).await,
            capped(AllSettled::new().with_max_concurrency(cap(limit))).await,
        ] {
            assert_eq!(outcomes.len(), 20, "{name} with {limit}");
            assert!(outcomes.iter().all(Outcome::is_ok), "{name} with {limit}");
            assert_eq!(probe.peak(), limit.min(20), "{name} with {limit}");
            assert_eq!(probe.start_order(), (0..20).collect::<Vec<_>>(), "{name} with {limit}");
        }
    }
}

async fn capped(strategy: impl Strategy) -> (String, Vec<Outcome<usize, ()>>, Probe) {
    let probe = Probe::new();
    let branches = (0..20).map(|i| probe.branch(i, ms(1 + (i as u64 * 7) % 13), Ok(i)));
    let outcomes = run(&strategy, branches).await;
    (strategy.name().to_owned(), outcomes, probe)
}

#[test]
fn policies() {
    let parallel = Parallel::new();
    assert_eq!(
        (parallel.name(), parallel.max_concurrency(), parallel.fail_fast()),
        ("parallel", None, true)
    );
    let parallel = Parallel::new().with_max_concurrency(cap(4));
    assert_eq!(parallel.max_concurrency(), Some(cap(4)));
    assert_eq!(
        parallel,
        Parallel {
            max_concurrency: Some(cap(4))
        }
    );

    let settled = AllSettled::new();
    assert_eq!(
        (settled.name(), settled.max_concurrency(), settled.fail_fast()),
        ("all-settled", None, false)
    );
    assert_eq!(
        AllSettled::new().with_max_concurrency(cap(2)).max_concurrency(),
        Some(cap(2))
    );
}

#[tokio::test]
async fn branches_may_borrow_from_the_caller() {
    let words = ["a".to_string(), "bb".to_string(), "ccc".to_string()];
    let outcomes = run(
        &Parallel::new(),
        words.iter().map(|w| async move { Ok::<_, ()>(w.len()) }),
    )
    .await;
    assert_eq!(outcomes, [Outcome::Ok(1), Outcome::Ok(2), Outcome::Ok(3)]);
}
