//! A strategy kind registered by the embedder, named from a workflow file.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flow_engine::kind::{Value, json};
use flow_engine::strategy::{OptionProblem, Options, Rate, Strategy};
use flow_engine::{Engine, NodeReport, RunOptions, RunStatus, StrategySpec};
use tokio::time::Instant;

use crate::{places, problems};

/// One start every `gap`, at most `max_concurrency` running; never fails fast.
#[derive(Debug)]
struct Spaced {
    gap: Duration,
    max_concurrency: Option<NonZeroUsize>,
    next: Mutex<Option<Instant>>,
}

impl Strategy for Spaced {
    fn name(&self) -> &str {
        "spaced"
    }

    fn max_concurrency(&self) -> Option<NonZeroUsize> {
        self.max_concurrency
    }

    fn fail_fast(&self) -> bool {
        false
    }

    fn admit(&self) -> Result<(), Duration> {
        let mut next = self.next.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        match *next {
            Some(at) if now < at => Err(at - now),
            _ => {
                *next = Some(now + self.gap);
                Ok(())
            }
        }
    }

    fn rate(&self) -> Option<Rate> {
        Some(Rate {
            per_second: 1.0 / self.gap.as_secs_f64(),
            burst: 1,
        })
    }
}

/// `spaced`: `gap_ms` (required, ≥ 1) and `max_concurrency` (≥ 1).
fn spaced(options: &Options) -> Result<Arc<dyn Strategy>, Vec<OptionProblem>> {
    let mut problems = Vec::new();
    let whole = |name: &str, value: &Value, problems: &mut Vec<OptionProblem>| {
        let n = value.as_u64().filter(|n| *n >= 1);
        if n.is_none() {
            problems.push(OptionProblem::new(
                name,
                format!("must be a whole number ≥ 1, not {value}"),
            ));
        }
        n
    };
    let mut gap = None;
    let mut max_concurrency = None;
    for (name, value) in options {
        match name.as_str() {
            "gap_ms" => gap = whole(name, value, &mut problems).map(Duration::from_millis),
            "max_concurrency" => {
                max_concurrency = whole(name, value, &mut problems).and_then(|n| NonZeroUsize::new(n as usize));
            }
            other => problems.push(OptionProblem::new(
                other,
                "unknown option; spaced takes gap_ms, max_concurrency",
            )),
        }
    }
    if !options.contains_key("gap_ms") {
        problems.push(OptionProblem::new("gap_ms", "is required"));
    }
    match gap {
        Some(gap) if problems.is_empty() => Ok(Arc::new(Spaced {
            gap,
            max_concurrency,
            next: Mutex::new(None),
        })),
        _ => Err(problems),
    }
}

fn engine() -> Engine {
    Engine::builder().strategy_kind("spaced", spaced).build()
}

/// `n` independent nodes of kind `delay` (`ms` each) under `strategy`.
fn workflow(strategy: &str, n: usize, ms: u64) -> String {
    let nodes: String = (0..n)
        .map(|i| format!("  - {{ id: n{i}, kind: delay, config: {{ ms: {ms} }} }}\n"))
        .collect();
    format!("name: custom-strategy\nstrategy: {strategy}\nnodes:\n{nodes}")
}

fn starts(report: &flow_engine::Report) -> Vec<f64> {
    let mut starts: Vec<f64> = report.nodes.iter().filter_map(|(_, n)| n.started_ms).collect();
    starts.sort_by(f64::total_cmp);
    starts
}

/// The most nodes running at once, from the report's start and finish times.
fn most_at_once(report: &flow_engine::Report) -> usize {
    let spans: Vec<(f64, f64)> = report
        .nodes
        .iter()
        .map(|(_, n): (&str, &NodeReport)| (n.started_ms.unwrap(), n.finished_ms.unwrap()))
        .collect();
    spans
        .iter()
        .map(|&(start, _)| spans.iter().filter(|&&(s, f)| s <= start && start < f).count())
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn a_workflow_file_names_the_embedders_strategy_and_runs_under_it() {
    let engine = engine();
    let wf = engine
        .parse_yaml(&workflow("{ kind: spaced, gap_ms: 60 }", 4, 1))
        .unwrap();
    let report = engine.run(&wf, RunOptions::new()).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(report.strategy, "spaced");
    let starts = starts(&report);
    assert_eq!(starts.len(), 4);
    for pair in starts.windows(2) {
        // Never sooner than the gap (1 ms for rounding); later only by a scheduler's delay.
        assert!(pair[1] - pair[0] >= 59.0, "starts too close: {starts:?}");
    }
    assert!(starts[3] < 180.0 + 2000.0, "starts far too late: {starts:?}");
}

#[tokio::test]
async fn the_strategys_cap_holds_in_a_run() {
    let engine = engine();
    let wf = engine
        .parse_yaml(&workflow("{ kind: spaced, gap_ms: 1, max_concurrency: 2 }", 6, 80))
        .unwrap();
    let report = engine.run(&wf, RunOptions::new()).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(most_at_once(&report), 2, "{report:?}");
    // Three waves of two 80 ms nodes.
    assert!(report.duration_ms >= 235.0, "{}", report.duration_ms);
}

#[test]
fn every_run_gets_a_fresh_strategy_from_the_factory() {
    let engine = engine();
    let spec = StrategySpec::new("spaced").with("gap_ms", 250);
    let first = engine.build_strategy(&spec).unwrap();
    let second = engine.build_strategy(&spec).unwrap();
    assert_eq!(first.admit(), Ok(()));
    // The second strategy's spacing is its own.
    assert_eq!(second.admit(), Ok(()));
    assert!(first.admit().is_err());
    // Planning tools see its pace.
    let pace = flow_engine::pace(&*first);
    assert_eq!(pace.per_second, Some(4.0));
    assert_eq!(pace.max_concurrency, None);
}

#[test]
fn an_unknown_strategy_kind_is_a_validation_error_at_strategy_kind() {
    // An engine that was never told of `spaced`.
    let found = problems(Engine::new().parse_yaml(&workflow("{ kind: spaced, gap_ms: 60 }", 1, 1)));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "strategy.kind");
    assert!(found[0].1.contains("`spaced`"), "{}", found[0].1);
    // With it registered, a misspelling points at it.
    let found = problems(engine().parse_yaml(&workflow("{ kind: spaced-out, gap_ms: 60 }", 1, 1)));
    assert_eq!(found[0].0, "strategy.kind");
    assert!(found[0].1.contains("spaced"), "{}", found[0].1);
}

#[test]
fn bad_options_of_the_custom_kind_are_validation_errors_at_their_option() {
    let engine = engine();
    assert_eq!(
        places(engine.parse_yaml(&workflow("{ kind: spaced, gap_ms: 0 }", 1, 1))),
        ["strategy.gap_ms"]
    );
    assert_eq!(
        places(engine.parse_yaml(&workflow(r#"{ kind: spaced, gap_ms: "soon", burst: 2 }"#, 1, 1))),
        ["strategy.gap_ms", "strategy.burst"]
    );
    let found = problems(engine.parse_yaml(&workflow("{ kind: spaced }", 1, 1)));
    assert_eq!(found, [("strategy.gap_ms".to_owned(), "is required".to_owned())]);
    // The same problems, with the same places, for a strategy given in code.
    let err = engine
        .build_strategy(&StrategySpec::new("spaced").with("gap_ms", json!(-5)))
        .unwrap_err();
    assert!(
        err.to_string().contains("strategy.gap_ms: must be a whole number"),
        "{err}"
    );
}
