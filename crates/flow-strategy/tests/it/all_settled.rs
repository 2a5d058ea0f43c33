use std::num::NonZeroUsize;

use flow_strategy::{AllSettled, Outcome, run};
use tokio::time::Instant;

use crate::support::{Probe, ms};

#[tokio::test(start_paused = true)]
async fn a_failure_does_not_stop_the_others() {
    let probe = Probe::new();
    let plan = [
        (10_000, Ok(0)),
        (50, Err("boom")),
        (10, Ok(2)),
        (10_000, Ok(3)),
        (1, Err("bang")),
        (1, Ok(5)),
    ];
    let started = Instant::now();
    let three = NonZeroUsize::new(3).expect("3 > 0");

    let outcomes = run(
        &AllSettled::new().with_max_concurrency(three),
        plan.into_iter()
            .enumerate()
            .map(|(i, (d, r))| probe.branch(i, ms(d), r)),
    )
    .await;

    {
        use Outcome::*;
        assert_eq!(outcomes, [Ok(0), Err("boom"), Ok(2), Ok(3), Err("bang"), Ok(5)]);
    }
    assert!(probe.dropped().is_empty());
    assert_eq!(probe.snapshot().finishes.len(), 6);
    assert_eq!(started.elapsed(), ms(10_010));
}

#[tokio::test]
async fn every_branch_failing_is_reported() {
    let outcomes = run(&AllSettled::new(), (0..4).map(|i| async move { Err::<(), _>(i) })).await;
    assert_eq!(outcomes, (0..4).map(Outcome::Err).collect::<Vec<_>>());
}
