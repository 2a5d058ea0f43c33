//! Retries with exponential backoff, jitter, timeouts, panics: for every kind.

use flow_engine::{RunOptions, RunStatus};

use crate::support::{node, run, run_with, statuses};

/// The waits between consecutive attempts of `id`, in ms.
fn gaps(report: &flow_engine::Report, id: &str) -> Vec<f64> {
    node(report, id)
        .attempts_detail
        .windows(2)
        .map(|w| w[1].started_ms - w[0].finished_ms)
        .collect()
}

#[tokio::test]
async fn retries_until_success() {
    let body = "nodes:
  - { id: flaky, kind: probe, config: { fail_attempts: 2 }, retry: { max_attempts: 5, backoff_ms: 5 } }";
    let (report, probe) = run_with(body, RunOptions::new()).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    let flaky = node(&report, "flaky");
    assert_eq!((flaky.attempts, probe.runs("flaky")), (3, 3));
    assert_eq!(flaky.output["attempt"], 3);
    assert_eq!(flaky.error, None);
    let errors: Vec<Option<&str>> = flaky.attempts_detail.iter().map(|a| a.error.as_deref()).collect();
    assert_eq!(
        errors,
        [
            Some("flaky failed on attempt 1"),
            Some("flaky failed on attempt 2"),
            None
        ]
    );
}

#[tokio::test]
async fn exhausted_retries_fail_the_node_with_the_last_error() {
    let body = "nodes:
  - { id: down, kind: fail, config: { message: 'still down' }, retry: { max_attempts: 3, backoff_ms: 20, factor: 2 } }";
    let report = run(body).await;
    let down = node(&report, "down");
    assert_eq!((down.attempts, down.error.as_deref()), (3, Some("still down")));
    let gaps = gaps(&report, "down");
    assert!(gaps[0] >= 19.0 && gaps[1] >= 39.0, "waits grow exponentially: {gaps:?}");
    let (first, last) = (&down.attempts_detail[0], &down.attempts_detail[2]);
    assert_eq!(
        (down.started_ms, down.finished_ms),
        (Some(first.started_ms), Some(last.finished_ms))
    );
}

#[tokio::test]
async fn waits_are_capped_by_max_backoff() {
    let body = "nodes:
  - { id: down, kind: fail, retry: { max_attempts: 3, backoff_ms: 20, factor: 100, max_backoff_ms: 30 } }";
    let report = run(body).await;
    let gaps = gaps(&report, "down");
    assert!(gaps[0] >= 19.0 && gaps[1] >= 29.0, "{gaps:?}");
    assert!(gaps[1] < 1000.0, "capped at 30 ms, not 2000 ms: {gaps:?}");
}

#[tokio::test]
async fn jitter_waits_between_half_and_all_of_the_backoff() {
    let body = "nodes:
  - { id: down, kind: fail, retry: { max_attempts: 6, backoff_ms: 40, factor: 1, jitter: true } }";
    let report = run(body).await;
    let gaps = gaps(&report, "down");
    assert_eq!(gaps.len(), 5);
    assert!(gaps.iter().all(|g| *g >= 19.0), "at least half of 40 ms: {gaps:?}");
    assert!(gaps.iter().sum::<f64>() < 5.0 * 40.0 + 1000.0, "{gaps:?}");
}

#[tokio::test]
async fn a_permanent_error_is_not_retried() {
    let body = "nodes:
  - { id: bad, kind: probe, config: { fail: true, permanent: true }, retry: { max_attempts: 4, backoff_ms: 1 } }
  - { id: render, kind: transform, config: { output: '{{ input.nope.deeper }}' }, retry: { max_attempts: 4, backoff_ms: 1 } }";
    let report = crate::support::run_with(
        body,
        RunOptions::new().strategy(crate::support::strategy(
            flow_engine::strategy::StrategyKind::AllSettled,
        )),
    )
    .await
    .0;
    assert_eq!(node(&report, "bad").attempts, 1);
    assert_eq!(
        node(&report, "render").attempts,
        1,
        "a config that cannot render is not retried"
    );
}

#[tokio::test]
async fn a_timed_out_attempt_is_a_failed_attempt() {
    let body = "nodes:
  - { id: slow, kind: delay, config: { ms: 5000 }, timeout_ms: 50 }
  - { id: slow-probe, kind: probe, config: { ms: 5000 }, timeout_ms: 30, retry: { max_attempts: 2, backoff_ms: 10 } }
  - { id: quick, kind: probe, config: { ms: 5 }, timeout_ms: 2000 }";
    let (report, probe) = run_with(
        body,
        RunOptions::new().strategy(crate::support::strategy(
            flow_engine::strategy::StrategyKind::AllSettled,
        )),
    )
    .await;
    assert!(report.duration_ms < 3000.0, "{}", report.duration_ms);
    assert_eq!(statuses(&report), "slow=failed slow-probe=failed quick=succeeded");
    let slow = node(&report, "slow");
    assert_eq!(slow.error.as_deref(), Some("timed out after 50 ms (timeout_ms)"));
    let slow_probe = node(&report, "slow-probe");
    assert_eq!(
        (slow_probe.attempts, probe.runs("slow-probe")),
        (2, 2),
        "a timeout is retried"
    );
    assert!(
        slow_probe
            .attempts_detail
            .iter()
            .all(|a| a.error.as_deref() == Some("timed out after 30 ms (timeout_ms)"))
    );
    let log = probe.snapshot();
    assert!(
        log.attempts.iter().all(|(_, _, end)| end.is_some()),
        "timed-out attempts were dropped"
    );
}

#[tokio::test]
async fn a_panicking_kind_fails_its_node_not_the_engine() {
    let body = "nodes:
  - { id: boom, kind: probe, config: { panic: true } }
  - { id: boom-later, kind: probe, config: { ms: 5, panic: true }, continue_on_error: true }
  - { id: after, kind: noop }
edges: [{ from: boom-later, to: after }]";
    let report = crate::support::run_with(
        body,
        RunOptions::new().strategy(crate::support::strategy(
            flow_engine::strategy::StrategyKind::AllSettled,
        )),
    )
    .await
    .0;
    assert_eq!(statuses(&report), "boom=failed boom-later=failed after=succeeded");
    let error = node(&report, "boom").error.clone().unwrap_or_default();
    assert!(
        error.contains("panicked") && error.contains("probe boom panics on purpose"),
        "{error}"
    );
}
