//! A custom strategy kind in an embedding program: `spaced`, one node start
//! every `gap_ms`, which workflow files then name like a built-in one:
//! `strategy: { kind: spaced, gap_ms: 100 }`.
//!
//! ```sh
//! cargo run -p flow-engine --example custom_strategy
//! ```

use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flow_engine::strategy::{OptionProblem, Options, Rate, Strategy};
use flow_engine::{Engine, RunOptions, RunStatus};
use tokio::time::Instant;

/// One start every `gap`, at most `max_concurrency` nodes running (unbounded
/// by default); a failure does not stop the others.
#[derive(Debug)]
struct Spaced {
    gap: Duration,
    max_concurrency: Option<NonZeroUsize>,
    /// When the next start may happen. Tokio's clock: the one the engine
    /// sleeps on while it waits for an admission (paused test clocks included).
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

    /// Tells `flow explain` how starts are paced.
    fn rate(&self) -> Option<Rate> {
        Some(Rate {
            per_second: 1.0 / self.gap.as_secs_f64(),
            burst: 1,
        })
    }
}

/// The factory of the `spaced` kind: its options, every problem named by the
/// option (the engine reports them as `strategy.gap_ms: …`).
fn spaced(options: &Options) -> Result<Arc<dyn Strategy>, Vec<OptionProblem>> {
    let mut problems = Vec::new();
    let (mut gap, mut max_concurrency) = (None, None);
    for (name, value) in options {
        match name.as_str() {
            "gap_ms" => match value.as_u64().filter(|ms| (1..=3_600_000).contains(ms)) {
                Some(ms) => gap = Some(Duration::from_millis(ms)),
                None => problems.push(OptionProblem::new(
                    "gap_ms",
                    format!("must be a whole number of milliseconds from 1 to 3600000, not {value}"),
                )),
            },
            "max_concurrency" => match value.as_u64().and_then(|n| NonZeroUsize::new(usize::try_from(n).ok()?)) {
                Some(n) => max_concurrency = Some(n),
                None => problems.push(OptionProblem::new(
                    "max_concurrency",
                    format!("must be a whole number, at least 1, not {value}"),
                )),
            },
            other => problems.push(OptionProblem::new(
                other,
                "unknown option; `spaced` takes gap_ms and max_concurrency",
            )),
        }
    }
    if gap.is_none() && !options.contains_key("gap_ms") {
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

const WORKFLOW: &str = r#"
name: spaced-calls
strategy: { kind: spaced, gap_ms: 100 }
nodes:
  - { id: a, kind: delay, config: { ms: 10 } }
  - { id: b, kind: delay, config: { ms: 10 } }
  - { id: c, kind: delay, config: { ms: 10 } }
  - { id: d, kind: delay, config: { ms: 10 } }
  - { id: e, kind: delay, config: { ms: 10 } }
"#;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let engine = Engine::builder().strategy_kind("spaced", spaced).build();

    let workflow = engine.parse_yaml(WORKFLOW)?;
    let report = engine.run(&workflow, RunOptions::new()).await?;
    println!(
        "run {} under `{}`: {}",
        report.run_id,
        report.strategy,
        report.status.as_str()
    );
    let mut starts: Vec<(f64, &str)> = report
        .nodes
        .iter()
        .filter_map(|(id, node)| Some((node.started_ms?, id)))
        .collect();
    starts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut previous: Option<f64> = None;
    for (started, id) in starts {
        let gap = previous
            .map(|p| format!(" (+{:.0} ms)", started - p))
            .unwrap_or_default();
        println!("  {id} started at {started:>6.1} ms{gap}");
        previous = Some(started);
    }

    // Options are checked when the file is loaded, like a built-in strategy's.
    let bad = WORKFLOW.replace("gap_ms: 100", "gap_ms: 0, burst: 2");
    match engine.parse_yaml(&bad) {
        Ok(_) => return Err("bad options were accepted".into()),
        Err(e) => println!("rejected as expected:\n{e}"),
    }

    Ok(if report.status == RunStatus::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
