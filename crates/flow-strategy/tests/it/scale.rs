use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use flow_strategy::{AllSettled, Outcome, Parallel, run};

const BRANCHES: usize = 100_000;

/// Quadratic bookkeeping would take minutes here; linear takes well under a
/// second even in a debug build.
#[tokio::test]
async fn a_hundred_thousand_ready_branches() {
    let started = Instant::now();
    let branches = (0..BRANCHES).map(|i| async move {
        tokio::task::yield_now().await;
        Ok::<_, ()>(i)
    });

    let outcomes = run(&Parallel::new(), branches).await;

    assert_eq!(outcomes.len(), BRANCHES);
    assert!(outcomes.iter().enumerate().all(|(i, o)| *o == Outcome::Ok(i)));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_hundred_thousand_branches_through_a_small_cap() {
    let started = Instant::now();
    let cap = NonZeroUsize::new(64).expect("64 > 0");
    let branches = (0..BRANCHES).map(|i| async move {
        tokio::task::yield_now().await;
        if i % 1_000 == 0 { Err(i) } else { Ok(i) }
    });

    let outcomes = run(&AllSettled::new().with_max_concurrency(cap), branches).await;

    assert_eq!(outcomes.len(), BRANCHES);
    assert_eq!(outcomes.iter().filter(|o| o.is_err()).count(), BRANCHES / 1_000);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}
