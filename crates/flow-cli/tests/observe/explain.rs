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
