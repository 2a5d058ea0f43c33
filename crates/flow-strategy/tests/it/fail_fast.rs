use std::num::NonZeroUsize;
use std::time::Instant as StdInstant;

use flow_strategy::{Outcome, Parallel, StrategyExt};
use tokio::time::Instant;

use crate::support::{Probe, ms};

/// Branch 1 fails at 50 ms while 0 (10 s) and 3 (10 s, started when 2
/// finished at 10 ms) are running and 4, 5 wait for a slot.
#[tokio::test(start_paused = true)]
async fn first_failure_drops_running_branches_at_once() {
    let probe = Probe::new();
    let plan = [
        (10_000, Ok(0)),
        (50, Err("boom")),
        (10, Ok(2)),
        (10_000, Ok(3)),
        (1, Ok(4)),
        (1, Ok(5)),
    ];
    let started = Instant::now();
    let three = NonZeroUsize::new(3).expect("3 > 0");

    let outcomes = Parallel::new()
        .with_max_concurrency(three)
        .run(
            plan.into_iter()
                .enumerate()
                .map(|(i, (d, r))| probe.branch(i, ms(d), r)),
        )
        .await;

    {
        use Outcome::*;
        assert_eq!(
            outcomes,
            [Cancelled, Err("boom"), Ok(2), Cancelled, Cancelled, Cancelled]
        );
    }
    assert_eq!(started.elapsed(), ms(50));
    assert_eq!(probe.start_order(), [0, 1, 2, 3]);
    assert_eq!(probe.dropped(), [0, 3]);
    assert!(probe.snapshot().drops.iter().all(|&(_, at)| at - started == ms(50)));
    assert_eq!(probe.in_flight(), 0);
}

/// The same on the real clock: the 10 s sibling must go long before it ends.
#[tokio::test]
async fn long_sibling_is_dropped_early_in_real_time() {
    let probe = Probe::new();
    let started = StdInstant::now();

    let outcomes = Parallel::new()
        .run([
            probe.branch(0, ms(10_000), Ok(())),
            probe.branch(1, ms(20), Err("boom")),
        ])
        .await;

    assert_eq!(outcomes, [Outcome::Cancelled, Outcome::Err("boom")]);
    assert_eq!(probe.dropped(), [0]);
    assert!(started.elapsed() < ms(5_000), "took {:?}", started.elapsed());
}
