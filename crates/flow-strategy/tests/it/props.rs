//! Random branch lists under every strategy, on tokio's paused clock (and a
//! governor clock that follows it), so every run is exact and instant.

use std::num::NonZeroUsize;
use std::time::Duration;

use flow_strategy::{AllSettled, Outcome, Parallel, RateLimited, Sequential, Strategy, TokioClock, run};
use proptest::prelude::*;
use proptest::strategy::Strategy as _;

use crate::support::{Log, Probe};

#[derive(Debug, Clone)]
enum Pick {
    Sequential,
    Parallel(Option<usize>),
    AllSettled(Option<usize>),
    RateLimited {
        per_second: f64,
        burst: u32,
        cap: Option<usize>,
        fail_fast: bool,
    },
}

impl Pick {
    /// Built inside the runtime, so the governor clock reads tokio's paused time.
    fn build(&self) -> Box<dyn Strategy> {
        let cap = |n: Option<usize>| n.and_then(NonZeroUsize::new);
        match *self {
            Pick::Sequential => Box::new(Sequential),
            Pick::Parallel(n) => Box::new(Parallel {
                max_concurrency: cap(n),
            }),
            Pick::AllSettled(n) => Box::new(AllSettled {
                max_concurrency: cap(n),
            }),
            Pick::RateLimited {
                per_second,
                burst,
                cap: n,
                fail_fast,
            } => {
                let clock = TokioClock::new();
                if fail_fast {
                    Box::new(
                        RateLimited::with_clock(
                            Parallel {
                                max_concurrency: cap(n),
                            },
                            per_second,
                            burst,
                            clock,
                        )
                        .expect("valid"),
                    )
                } else {
                    Box::new(
                        RateLimited::with_clock(
                            AllSettled {
                                max_concurrency: cap(n),
                            },
                            per_second,
                            burst,
                            clock,
                        )
                        .expect("valid"),
                    )
                }
            }
        }
    }
}

fn picks() -> impl proptest::strategy::Strategy<Value = Pick> {
    let cap = proptest::option::of(1usize..6);
    prop_oneof![
        Just(Pick::Sequential),
        cap.clone().prop_map(Pick::Parallel),
        cap.clone().prop_map(Pick::AllSettled),
        (1u32..200, 1u32..4, cap, any::<bool>()).prop_map(|(tenths, burst, cap, fail_fast)| Pick::RateLimited {
            per_second: f64::from(tenths) / 10.0,
            burst,
            cap,
            fail_fast
        }),
    ]
}

/// (duration in ms, fails?) per branch.
fn plans() -> impl proptest::strategy::Strategy<Value = Vec<(u64, bool)>> {
    proptest::collection::vec((0u64..50, proptest::bool::weighted(0.2)), 0..30)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_strategy_keeps_its_contract(pick in picks(), plan in plans()) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        let (outcomes, probe, strategy_name, cap, fail_fast, epoch) = runtime.block_on(async {
            let strategy = pick.build();
            let probe = Probe::new();
            let epoch = tokio::time::Instant::now();
            let branches = plan.iter().enumerate().map(|(i, &(d, fails))| {
                probe.branch(i, Duration::from_millis(d), if fails { Err(i) } else { Ok(i) })
            });
            let outcomes = run(&strategy, branches).await;
            let cap = strategy.max_concurrency().map_or(usize::MAX, NonZeroUsize::get);
            (outcomes, probe, strategy.name().to_owned(), cap, strategy.fail_fast(), epoch)
        });
        let log = probe.snapshot();

        // One outcome per branch, never more in flight than the cap, starts in order.
        prop_assert_eq!(outcomes.len(), plan.len());
        prop_assert!(probe.peak() <= cap, "{} > {}", probe.peak(), cap);
        prop_assert_eq!(probe.in_flight(), 0);
        let order = probe.start_order();
        prop_assert!(order.iter().enumerate().all(|(n, &i)| n == i), "starts out of order: {:?}", order);

        // A branch's outcome is its own result, or Cancelled if it never finished.
        let finished = |i: usize| log.finishes.iter().any(|&(j, _)| i == j);
        for (i, outcome) in outcomes.iter().enumerate() {
            match outcome {
                Outcome::Ok(j) => prop_assert!(*j == i && !plan[i].1 && finished(i)),
                Outcome::Err(j) => prop_assert!(*j == i && plan[i].1 && finished(i)),
                Outcome::Cancelled => prop_assert!(!finished(i), "branch {} finished but came back Cancelled", i),
            }
        }

        let failures = plan.iter().filter(|&&(_, fails)| fails).count();
        let errs: Vec<usize> = outcomes.iter().enumerate().filter(|(_, o)| o.is_err()).map(|(i, _)| i).collect();
        let cancelled = outcomes.iter().filter(|o| o.is_cancelled()).count();
        if fail_fast {
            // Exactly one failure is reported if any branch was to fail; after
            // it nothing finishes, and everything unfinished is Cancelled.
            prop_assert_eq!(errs.len(), usize::from(failures > 0));
            if let Some(&failed) = errs.first() {
                let failed_at = log.finishes.iter().find(|&&(i, _)| i == failed).map(|&(_, at)| at).expect("finished");
                prop_assert!(log.finishes.iter().all(|&(_, at)| at <= failed_at));
                prop_assert!(log.drops.iter().all(|&(_, at)| at == failed_at));
                if strategy_name == "sequential" {
                    prop_assert!(outcomes[..failed].iter().all(Outcome::is_ok));
                    prop_assert!(outcomes[failed + 1..].iter().all(Outcome::is_cancelled));
                }
            } else {
                prop_assert_eq!(cancelled, 0);
            }
        } else {
            prop_assert_eq!(cancelled, 0);
            prop_assert_eq!(errs.len(), failures);
            prop_assert!(log.drops.is_empty());
        }

        if let Pick::RateLimited { per_second, burst, .. } = pick {
            check_spacing(&log, epoch, per_second, burst)?;
        }
    }
}

/// GCRA from an empty bucket: the k-th start (from 0) is no earlier than
/// `(k + 1 - burst)` periods after the first.
fn check_spacing(log: &Log, epoch: tokio::time::Instant, per_second: f64, burst: u32) -> Result<(), TestCaseError> {
    let period = 1.0 / per_second;
    let Some(&(_, first)) = log.starts.first() else {
        return Ok(());
    };
    prop_assert_eq!(first, epoch);
    for (k, &(_, at)) in log.starts.iter().enumerate() {
        let earliest = (k as f64 + 1.0 - f64::from(burst)) * period;
        let actual = (at - first).as_secs_f64();
        // A nanosecond of slack for rounding 1/per_second to a Duration.
        prop_assert!(
            actual + 1e-6 >= earliest,
            "start {} at {}s, before {}s",
            k,
            actual,
            earliest
        );
    }
    Ok(())
}
