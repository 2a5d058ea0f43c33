//! `flow demo`: it runs end to end (its speed is judged in the benches, not here).

use crate::support::flow;

#[test]
fn demo_runs_every_strategy_against_its_own_server() {
    let out = flow(["demo", "--branches", "3", "--delay-ms", "20", "--runs", "1"]);
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    for strategy in ["sequential", "parallel", "all-settled", "rate-limited"] {
        assert!(out.stdout.contains(strategy), "no {strategy} row in:\n{}", out.stdout);
    }
    assert!(out.stdout.contains("speedup"), "{}", out.stdout);
}

#[test]
fn demo_refuses_nonsense_sizes() {
    let out = flow(["demo", "--branches", "0"]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("--branches"), "{}", out.stderr);
}
