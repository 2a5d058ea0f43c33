use std::num::NonZeroUsize;

use flow_strategy::governor::clock::FakeRelativeClock;
use std::time::Duration;

use flow_strategy::{Error, Outcome, StrategyConfig, StrategyExt, StrategyKind};

fn config(kind: StrategyKind) -> StrategyConfig {
    StrategyConfig::new(kind)
}

/// `input` fails to build with `expected` as its message.
#[track_caller]
fn check_error(input: StrategyConfig, expected: &str) {
    match input.build() {
        Ok(strategy) => panic!("{input:?} built {strategy:?}, expected `{expected}`"),
        Err(error) => assert_eq!(error.to_string(), expected, "{input:?}"),
    }
}

/// `input` builds a strategy with this name, cap and fail-fast.
#[track_caller]
fn check_built(input: StrategyConfig, name: &str, cap: Option<usize>, fail_fast: bool) {
    let strategy = input.build().unwrap_or_else(|e| panic!("{input:?}: {e}"));
    assert_eq!(strategy.name(), name, "{input:?}");
    assert_eq!(strategy.max_concurrency().map(NonZeroUsize::get), cap, "{input:?}");
    assert_eq!(strategy.fail_fast(), fail_fast, "{input:?}");
}

use StrategyKind::*;

#[test]
fn valid_configs_build() {
    check_built(config(Sequential), "sequential", Some(1), true);
    check_built(config(Parallel), "parallel", None, true);
    check_built(
        StrategyConfig {
            max_concurrency: Some(4),
            ..config(Parallel)
        },
        "parallel",
        Some(4),
        true,
    );
    check_built(config(AllSettled), "all-settled", None, false);
    check_built(
        StrategyConfig {
            max_concurrency: Some(2),
            ..config(AllSettled)
        },
        "all-settled",
        Some(2),
        false,
    );
    let limited = StrategyConfig {
        per_second: Some(0.25),
        ..config(RateLimited)
    };
    check_built(limited.clone(), "rate-limited", None, false);
    check_built(
        StrategyConfig {
            fail_fast: Some(false),
            ..limited.clone()
        },
        "rate-limited",
        None,
        false,
    );
    check_built(
        StrategyConfig {
            fail_fast: Some(true),
            max_concurrency: Some(3),
            burst: Some(5),
            ..limited
        },
        "rate-limited",
        Some(3),
        true,
    );
}

#[test]
fn invalid_options_name_the_field() {
    let limited = StrategyConfig {
        per_second: Some(1.0),
        ..config(RateLimited)
    };
    check_error(
        StrategyConfig {
            max_concurrency: Some(2),
            ..config(Sequential)
        },
        "strategy.max_concurrency: does not apply to sequential, which runs one node at a time",
    );
    check_error(
        StrategyConfig {
            max_concurrency: Some(0),
            ..config(Parallel)
        },
        "strategy.max_concurrency: must be at least 1",
    );
    check_error(
        StrategyConfig {
            max_concurrency: Some(0),
            ..config(AllSettled)
        },
        "strategy.max_concurrency: must be at least 1",
    );
    check_error(
        StrategyConfig {
            max_concurrency: Some(0),
            ..limited.clone()
        },
        "strategy.max_concurrency: must be at least 1",
    );
    check_error(config(RateLimited), "strategy.per_second: is required for rate-limited");
    check_error(
        StrategyConfig {
            per_second: Some(1.0),
            ..config(Parallel)
        },
        "strategy.per_second: only applies to rate-limited",
    );
    check_error(
        StrategyConfig {
            per_second: Some(1.0),
            ..config(Sequential)
        },
        "strategy.per_second: only applies to rate-limited",
    );
    check_error(
        StrategyConfig {
            burst: Some(2),
            ..config(AllSettled)
        },
        "strategy.burst: only applies to rate-limited",
    );
    check_error(
        StrategyConfig {
            fail_fast: Some(true),
            ..config(Parallel)
        },
        "strategy.fail_fast: only applies to rate-limited (parallel always fails fast, all-settled never does)",
    );
    check_error(
        StrategyConfig {
            fail_fast: Some(true),
            ..config(AllSettled)
        },
        "strategy.fail_fast: only applies to rate-limited (parallel always fails fast, all-settled never does)",
    );
    check_error(
        StrategyConfig {
            fail_fast: Some(false),
            ..config(Sequential)
        },
        "strategy.fail_fast: only applies to rate-limited (parallel always fails fast, all-settled never does)",
    );
    for per_second in [0.0, -2.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        check_error(
            StrategyConfig {
                per_second: Some(per_second),
                ..limited.clone()
            },
            "strategy.per_second: must be a number above 0",
        );
    }
    check_error(
        StrategyConfig {
            per_second: Some(1e-12),
            ..limited.clone()
        },
        "strategy.per_second: must allow at least one start per 100 years, got 0.000000000001",
    );
    check_error(
        StrategyConfig {
            per_second: Some(1e10),
            ..limited.clone()
        },
        "strategy.per_second: must be at most 1e9",
    );
    check_error(
        StrategyConfig {
            burst: Some(0),
            ..limited.clone()
        },
        "strategy.burst: must be at least 1",
    );
    check_error(
        StrategyConfig {
            per_second: Some(1e-6),
            burst: Some(4_000),
            ..limited
        },
        "strategy.burst: 4000 starts at 0.000001 per second take more than 100 years to replenish",
    );
}

#[test]
fn errors_carry_their_field() {
    let error = config(RateLimited).build().expect_err("per_second is missing");
    assert_eq!(error.field(), "strategy.per_second");
    assert!(matches!(
        error,
        Error::InvalidOption {
            field: "strategy.per_second",
            ..
        }
    ));
}

#[test]
fn kinds_parse_and_print_their_names() {
    for (name, kind) in [
        ("sequential", Sequential),
        ("parallel", Parallel),
        ("all-settled", AllSettled),
        ("rate-limited", RateLimited),
    ] {
        assert_eq!(name.parse::<StrategyKind>(), Ok(kind));
        assert_eq!(kind.as_str(), name);
        assert_eq!(kind.to_string(), name);
    }
    let error = "paralel".parse::<StrategyKind>().expect_err("misspelt");
    assert_eq!(
        error.to_string(),
        "unknown strategy kind `paralel`: expected one of sequential, parallel, all-settled, rate-limited"
    );
    assert_eq!(error.field(), "strategy.kind");
    assert!("Parallel".parse::<StrategyKind>().is_err());
}

#[test]
fn configs_read_from_a_file() {
    let config: StrategyConfig =
        serde_json::from_str(r#"{ "kind": "rate-limited", "per_second": 2.5, "burst": 4, "fail_fast": true }"#)
            .expect("valid config");
    assert_eq!(
        config,
        StrategyConfig {
            per_second: Some(2.5),
            burst: Some(4),
            fail_fast: Some(true),
            ..StrategyConfig::new(RateLimited)
        }
    );
    let config: StrategyConfig = serde_json::from_str(r#"{ "kind": "all-settled" }"#).expect("valid config");
    assert_eq!(config, AllSettled.into());
    assert_eq!(
        serde_json::to_string(&config).expect("serializes"),
        r#"{"kind":"all-settled"}"#
    );

    let typo = serde_json::from_str::<StrategyConfig>(r#"{ "kind": "parallel", "max_concurency": 2 }"#);
    assert!(typo.expect_err("unknown field").to_string().contains("max_concurency"));
    let unknown = serde_json::from_str::<StrategyConfig>(r#"{ "kind": "eager" }"#);
    assert!(unknown.expect_err("unknown kind").to_string().contains("eager"));
}

#[test]
fn a_clock_can_be_injected() {
    let clock = FakeRelativeClock::default();
    let strategy = StrategyConfig {
        per_second: Some(1.0),
        ..config(RateLimited)
    }
    .build_with_clock(clock.clone())
    .expect("valid config");
    assert_eq!(strategy.admit(), Ok(()));
    assert_eq!(strategy.admit(), Err(Duration::from_secs(1)));
    clock.advance(Duration::from_secs(1));
    assert_eq!(strategy.admit(), Ok(()));
}

/// The default clock is tokio's, so a built strategy follows paused time.
#[tokio::test(start_paused = true)]
async fn built_rate_limited_follows_tokio_time() {
    let strategy = StrategyConfig {
        per_second: Some(10.0),
        ..config(RateLimited)
    }
    .build()
    .expect("valid config");
    let started = tokio::time::Instant::now();

    let outcomes = strategy
        .run((0..3).map(|_| async { Ok::<_, ()>(tokio::time::Instant::now()) }))
        .await;

    let starts: Vec<Duration> = outcomes
        .into_iter()
        .filter_map(Outcome::ok)
        .map(|at| at - started)
        .collect();
    assert_eq!(
        starts,
        [Duration::ZERO, Duration::from_millis(100), Duration::from_millis(200)]
    );
}
