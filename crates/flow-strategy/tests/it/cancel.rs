use std::num::NonZeroUsize;

use flow_strategy::{AllSettled, CancellationToken, Outcome, Sequential, run_until};
use tokio::time::Instant;

use crate::support::{Probe, ms};

#[tokio::test(start_paused = true)]
async fn cancelling_drops_running_branches_and_cancels_the_rest() {
    let probe = Probe::new();
    let token = CancellationToken::new();
    let three = NonZeroUsize::new(3).expect("3 > 0");
    // All-settled would otherwise let everything finish.
    let strategy = AllSettled::new().with_max_concurrency(three);
    let plan = [
        (10, Ok(0)),
        (10_000, Err("late")),
        (10_000, Ok(2)),
        (10_000, Ok(3)),
        (1, Ok(4)),
    ];
    let started = Instant::now();

    let (outcomes, ()) = tokio::join!(
        run_until(
            &strategy,
            plan.into_iter()
                .enumerate()
                .map(|(i, (d, r))| probe.branch(i, ms(d), r)),
            &token
        ),
        async {
            tokio::time::sleep(ms(100)).await;
            token.cancel();
        },
    );

    {
        use Outcome::*;
        assert_eq!(outcomes, [Ok(0), Cancelled, Cancelled, Cancelled, Cancelled]);
    }
    assert_eq!(started.elapsed(), ms(100));
    assert_eq!(probe.start_order(), [0, 1, 2, 3]);
    assert_eq!(probe.dropped(), [1, 2, 3]);
    assert_eq!(probe.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_token_starts_nothing() {
    let probe = Probe::new();
    let token = CancellationToken::new();
    token.cancel();

    let outcomes = run_until(
        &Sequential,
        (0..3).map(|i| probe.branch(i, ms(1), Ok::<_, ()>(i))),
        &token,
    )
    .await;

    assert_eq!(outcomes, [Outcome::Cancelled, Outcome::Cancelled, Outcome::Cancelled]);
    assert!(probe.start_order().is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_untouched_token_changes_nothing() {
    let token = CancellationToken::new();
    let outcomes = run_until(
        &AllSettled::new(),
        (0..3).map(|i| async move { Ok::<_, ()>(i) }),
        &token,
    )
    .await;
    assert_eq!(outcomes, [Outcome::Ok(0), Outcome::Ok(1), Outcome::Ok(2)]);
}
