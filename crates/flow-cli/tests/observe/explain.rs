//! `flow explain` and the plan behind it (`flow_core::Plan`).

use flow_engine::core::{AttemptTime, Format, Limit, Limits, Pace, Plan, Workflow};
use flow_engine::{Engine, StrategySpec};

use crate::{example, file, flow, stderr, stdout, tempdir};

/// a (10) -> b (50) -> d (5); a -> c (20) -> d; a -> e (unknown, timeout 100 x 2 attempts); f (30) alone.
const DAG: &str = r#"
name: known-dag
nodes:
  - { id: a, kind: delay, config: { ms: 10 } }
  - { id: b, kind: delay, config: { ms: 50 } }
  - { id: c, kind: delay, config: { ms: 20 } }
  - { id: d, kind: delay, config: { ms: 5 } }
  - id: e
    kind: delay
    config: { ms: "{{ input.wait }}" }
    timeout_ms: 100
    retry: { max_attempts: 2, backoff_ms: 7 }
  - { id: f, kind: delay, config: { ms: 30 } }
edges:
  - { from: a, to: b }
  - { from: a, to: c }
  - { from: b, to: d }
  - { from: c, to: d }
  - { from: a, to: e }
"#;

fn workflow(yaml: &str) -> Workflow {
    let engine = flow_engine::Engine::new();
    Workflow::from_str(yaml, Format::Yaml, engine.registry(), &Limits::default()).expect("a valid workflow")
}

fn plan(workflow: &Workflow) -> Plan {
    let specs = &workflow.spec().nodes;
    Plan::new(workflow, |i, _| {
        match specs[i].config.get("ms").and_then(serde_json::Value::as_u64) {
            Some(ms) => AttemptTime::Succeeds(ms as f64),
            None => AttemptTime::Unknown,
        }
    })
}

/// How the engine's strategy of `spec` paces starts: what `flow explain` bounds with.
fn pace(spec: StrategySpec) -> Pace {
    let strategy = Engine::new().build_strategy(&spec).expect("a valid strategy");
    flow_engine::pace(&*strategy)
}

#[test]
fn levels_and_critical_path_of_a_known_dag() {
    let wf = workflow(DAG);
    let plan = plan(&wf);
    let ids = |list: &[usize]| list.iter().map(|&i| wf.nodes()[i].id()).collect::<Vec<_>>();
    let levels: Vec<Vec<&str>> = plan.levels().iter().map(|l| ids(l)).collect();
    assert_eq!(levels, [vec!["a", "f"], vec!["b", "c", "e"], vec!["d"]]);
    assert_eq!(plan.widest_level(), Some(1));
    assert_eq!(ids(plan.critical_path()), ["a", "b", "d"]);
    assert_eq!(plan.critical_ms(), 65.0);
    assert_eq!(plan.work_ms(), 115.0);
    assert_eq!(plan.unknown().map(|i| wf.nodes()[i].id()).collect::<Vec<_>>(), ["e"]);
    // `e`: two attempts that may each run into the 100 ms timeout, 7 ms apart.
    let e = plan.estimates()[4];
    assert_eq!((e.min_ms, e.max_ms, e.known), (0.0, Some(207.0), false));
}

#[test]
fn bounds_under_each_strategy() {
    let wf = workflow(DAG);
    let plan = plan(&wf);
    let bounds = |s: StrategySpec| {
        let b = plan.bounds(pace(s));
        (b.lower_ms, b.limit, b.upper_ms)
    };
    // Sequential: one at a time, the sum; at most the sum of the worst cases.
    assert_eq!(
        bounds(StrategySpec::new("sequential")),
        (115.0, Limit::Work, Some(322.0))
    );
    // Parallel: the critical path; at most the worst-case critical path (a -> e).
    assert_eq!(
        bounds(StrategySpec::new("parallel")),
        (65.0, Limit::CriticalPath, Some(217.0))
    );
    // A cap of 1 is one at a time, as sequential.
    let capped = StrategySpec::new("all-settled").with("max_concurrency", 1);
    assert_eq!(bounds(capped), (115.0, Limit::Work, Some(322.0)));
    // A cap of 2: the critical path is longer than total / 2; Graham's bound
    // (322 / 2 + 217 / 2) above it.
    let capped = StrategySpec::new("all-settled").with("max_concurrency", 2);
    assert_eq!(bounds(capped), (65.0, Limit::CriticalPath, Some(269.5)));
    // 6 nodes at 2 per second with a burst of 2: the last start waits 2 s.
    let rate = StrategySpec::new("rate-limited")
        .with("per_second", 2.0)
        .with("burst", 2);
    assert_eq!(bounds(rate), (2000.0, Limit::Rate, None));
}

#[test]
fn retries_of_a_failing_node_and_timeouts_count() {
    let wf = workflow(
        r#"
name: waits
nodes:
  - id: flaky
    kind: fail
    retry: { max_attempts: 3, backoff_ms: 20, factor: 2.0 }
  - { id: slow, kind: delay, config: { ms: 1000 }, timeout_ms: 50 }
"#,
    );
    let plan = Plan::new(&wf, |i, _| match i {
        0 => AttemptTime::Fails(0.0),
        _ => AttemptTime::Succeeds(1000.0),
    });
    assert_eq!(plan.estimates()[0].min_ms, 60.0);
    assert_eq!(plan.estimates()[1].min_ms, 50.0);
    assert!(plan.estimates().iter().all(|e| e.is_exact()));
}

#[test]
fn explain_prints_the_plan() {
    let dir = tempdir();
    let path = file(dir.path(), "dag.yaml", DAG);
    let run = flow(
        dir.path(),
        &["explain", &path.to_string_lossy(), "--per-second", "2", "--burst", "2"],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    insta::assert_snapshot!(stdout(&run));
}

#[test]
fn explain_of_an_example() {
    let dir = tempdir();
    let run = flow(dir.path(), &["explain", &example("all-settled.yaml").to_string_lossy()]);
    assert!(run.status.success(), "{}", stderr(&run));
    insta::assert_snapshot!(stdout(&run));
}

#[test]
fn explain_refuses_bad_flags() {
    let dir = tempdir();
    let path = example("diamond.yaml");
    for (flag, value) in [("--max-concurrency", "0"), ("--per-second", "0"), ("--burst", "0")] {
        let run = flow(dir.path(), &["explain", &path.to_string_lossy(), flag, value]);
        assert_eq!(run.status.code(), Some(2), "{flag} {value}");
        assert!(stderr(&run).contains(flag), "{}", stderr(&run));
    }
}

/// `wait` takes what the input says (unknown to the file), `after` ~0 ms, and
/// `never` is skipped in every run (so it is never measured).
const MEASURED: &str = r#"
name: measured
nodes:
  - { id: wait, kind: delay, config: { ms: "{{ input.ms }}" } }
  - { id: after, kind: noop }
  - { id: never, kind: noop }
edges:
  - { from: wait, to: after }
  - { from: wait, to: never, when: "false" }
"#;

#[test]
fn explain_with_a_journal_measures_past_runs() {
    let dir = tempdir();
    let wf = file(dir.path(), "measured.yaml", MEASURED);
    let wf = wf.to_str().expect("a UTF-8 path");
    let other = file(
        dir.path(),
        "other.yaml",
        "name: other\nnodes: [{ id: wait, kind: delay, config: { ms: 1 } }]\n",
    );
    for (file, input) in [(wf, r#"{"ms": 40}"#), (wf, r#"{"ms": 40}"#), (wf, r#"{"ms": 40}"#)] {
        let out = flow(
            dir.path(),
            &["run", file, "--journal", "j.db", "--input", input, "--quiet"],
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let out = flow(
        dir.path(),
        &["run", other.to_str().expect("UTF-8"), "--journal", "j.db", "--quiet"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // Without the journal, `wait` is unknown; with it, measured in the 3 runs
    // of this workflow (the other workflow's run does not count).
    let plain = stdout(&flow(dir.path(), &["explain", wf]));
    assert!(plain.contains("unknown durations, counted as 0 ms"), "{plain}");
    let out = flow(dir.path(), &["explain", wf, "--journal", "j.db"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("durations, measured in 3 finished runs of `measured` in the journal"),
        "{text}"
    );
    let line = |id: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("a line for {id} in {text}"))
            .to_owned()
    };
    assert!(line("wait").contains("(ran in 3 runs)"), "{text}");
    assert!(line("after").contains("(ran in 3 runs)"), "{text}");
    assert!(
        line("never").ends_with("~0 ms"),
        "never ran, so the file's estimate: {text}"
    );
    assert!(!text.contains("unknown durations"), "{text}");
    // The parallel row's "at least" is the measured critical path: at least the 40 ms wait.
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("parallel"))
        .expect("a parallel row");
    let least: f64 = row
        .split_whitespace()
        .nth(3)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a number in {row}"));
    assert!(least >= 40.0, "{row}");

    // --last 1 measures one run; a journal that is not there is exit 2.
    let one = stdout(&flow(dir.path(), &["explain", wf, "--journal", "j.db", "--last", "1"]));
    assert!(one.contains("measured in 1 finished run of"), "{one}");
    let missing = flow(dir.path(), &["explain", wf, "--journal", "nope.db"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("there is no journal at nope.db"),
        "{}",
        stderr(&missing)
    );
    // A journal with no run of the workflow: the file's estimates, said so.
    let fresh = file(
        dir.path(),
        "fresh.yaml",
        "name: fresh\nnodes: [{ id: a, kind: noop }]\n",
    );
    let none = stdout(&flow(
        dir.path(),
        &["explain", fresh.to_str().expect("UTF-8"), "--journal", "j.db"],
    ));
    assert!(
        none.contains("as far as the file tells (the journal holds no finished run of `fresh`)"),
        "{none}"
    );
}

#[test]
fn a_measured_estimate_counts_p50_as_least_and_p95_as_most() {
    let wf = workflow(DAG);
    // Every node measured at 10 ms typical, 30 ms slow.
    let plan = Plan::from_estimates(&wf, |_, _| flow_engine::core::Estimate::measured(10.0, 30.0));
    assert_eq!(plan.critical_ms(), 30.0, "a -> b -> d at 10 ms each");
    let b = plan.bounds(pace(StrategySpec::new("parallel")));
    assert_eq!((b.lower_ms, b.upper_ms), (30.0, Some(90.0)));
    assert_eq!(plan.unknown().count(), 0);
}
