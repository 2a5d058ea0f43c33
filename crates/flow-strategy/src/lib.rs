//! How independent branches run side by side.
//!
//! One trait, [`Strategy`], a small synchronous policy: how many branches may
//! be in flight ([`max_concurrency`](Strategy::max_concurrency)), whether the
//! first failure cancels the rest ([`fail_fast`](Strategy::fail_fast)), and
//! whether the next one may start now ([`admit`](Strategy::admit)). Four
//! implementations:
//!
//! | strategy | in flight | first failure | like |
//! | --- | --- | --- | --- |
//! | [`Sequential`] | one | cancels the rest | a `for` loop of `await`s |
//! | [`Parallel`] | all, or `max_concurrency` | cancels the rest | `Promise.all` |
//! | [`AllSettled`] | all, or `max_concurrency` | only itself | `Promise.allSettled` |
//! | [`RateLimited`] | as its inner strategy | as its inner strategy | either, with starts spaced by a quota |
//!
//! The workflow engine uses a strategy as the policy while it schedules the
//! nodes of a DAG itself. On its own, [`run`] (or [`StrategyExt::run`]) takes
//! a list of independent async branches and returns every branch's
//! [`Outcome`], in input order. [`StrategyConfig`] builds a strategy from a
//! name and options, as found in a workflow file or on a command line.
//!
//! # Example
//!
//! ```
//! use std::num::NonZeroUsize;
//! use flow_strategy::{run, AllSettled, Outcome, Parallel, StrategyConfig, StrategyExt, StrategyKind};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! async fn fetch(id: u32) -> Result<String, String> {
//!     if id == 3 { Err(format!("{id}: not found")) } else { Ok(format!("item {id}")) }
//! }
//!
//! // Promise.allSettled: every branch runs, every outcome comes back in order.
//! let two = NonZeroUsize::new(2).ok_or("zero")?;
//! let settled = run(&AllSettled::new().with_max_concurrency(two), (1..=4).map(fetch)).await;
//! assert_eq!(settled[2], Outcome::Err("3: not found".to_string()));
//! assert_eq!(settled.iter().filter(|o| o.is_ok()).count(), 3);
//!
//! // Promise.all: the first failure cancels what is still running or waiting.
//! let all = Parallel::new().with_max_concurrency(two).run((1..=6).map(fetch)).await;
//! assert_eq!(all[0], Outcome::Ok("item 1".to_string()));
//! assert!(all[2].is_err());
//! assert!(all[4..].iter().all(Outcome::is_cancelled));
//!
//! // The same, chosen by name (say, from a config file).
//! let strategy = StrategyConfig { max_concurrency: Some(8), ..StrategyConfig::new("parallel".parse()?) }
//!     .build()?;
//! assert_eq!(strategy.name(), StrategyKind::Parallel.as_str());
//! let results: Result<Vec<String>, String> =
//!     strategy.run((1..=2).map(fetch)).await.into_iter().flat_map(Outcome::into_result).collect();
//! assert_eq!(results?, ["item 1", "item 2"]);
//! # Ok(())
//! # }
//! ```
//!
//! `docs/strategies.md` in the repository explains how the engine applies
//! each strategy to a workflow, and how to write your own.
#![warn(missing_docs)]

mod basic;
mod config;
mod error;
mod rate_limited;
mod registry;
mod run;
mod strategy;

pub use basic::{AllSettled, Parallel, Sequential};
pub use config::{StrategyConfig, StrategyKind};
pub use error::{Error, Result};
pub use rate_limited::{RateLimited, TokioClock, rate_quota};
pub use registry::{OptionProblem, Options, StrategyFactory, StrategyRegistry};
pub use run::{Outcome, StrategyExt, run, run_until};
pub use strategy::{Rate, Strategy};

/// The rate limiter behind [`RateLimited`], re-exported for its clocks
/// ([`governor::clock::FakeRelativeClock`] in tests).
pub use governor;
/// The token that stops a [`run_until`].
pub use tokio_util::sync::CancellationToken;

/// Compiles and runs the examples of `docs/strategies.md` as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/strategies.md")]
pub struct StrategiesGuide;
