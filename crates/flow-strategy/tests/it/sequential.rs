use flow_strategy::{Outcome, Sequential, Strategy, run};

use crate::support::{Probe, ms};

#[tokio::test(start_paused = true)]
async fn never_overlaps_and_runs_in_input_order() {
    let probe = Probe::new();
    // Later branches are quicker, so any overlap would reorder finishes.
    let branches = (0..6).map(|i| probe.branch(i, ms(10 * (6 - i as u64)), Ok::<_, ()>(i)));

    let outcomes = run(&Sequential, branches).await;

    assert_eq!(outcomes, (0..6).map(Outcome::Ok).collect::<Vec<_>>());
    assert_eq!(probe.peak(), 1);
    assert_eq!(probe.start_order(), [0, 1, 2, 3, 4, 5]);
    let finishes: Vec<usize> = probe.snapshot().finishes.iter().map(|&(i, _)| i).collect();
    assert_eq!(finishes, [0, 1, 2, 3, 4, 5]);
}

#[tokio::test(start_paused = true)]
async fn first_failure_cancels_the_rest() {
    let probe = Probe::new();
    let results = [Ok(0), Ok(1), Err("two"), Ok(3), Err("four")];
    let branches = results
        .into_iter()
        .enumerate()
        .map(|(i, result)| probe.branch(i, ms(5), result));

    let outcomes = run(&Sequential, branches).await;

    {
        use Outcome::*;
        assert_eq!(outcomes, [Ok(0), Ok(1), Err("two"), Cancelled, Cancelled]);
    }
    assert_eq!(probe.start_order(), [0, 1, 2]);
}

#[test]
fn policy() {
    assert_eq!(Sequential.name(), "sequential");
    assert_eq!(Sequential.max_concurrency().map(|n| n.get()), Some(1));
    assert!(Sequential.fail_fast());
    assert_eq!(Sequential.admit(), Ok(()));
}

#[tokio::test]
async fn empty_input_gives_no_outcomes() {
    let outcomes = run(&Sequential, Vec::<std::future::Ready<Result<(), ()>>>::new()).await;
    assert!(outcomes.is_empty());
}
