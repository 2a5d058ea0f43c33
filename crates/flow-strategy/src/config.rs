use std::fmt;
use std::num::NonZeroUsize;
use std::str::FromStr;
use std::sync::Arc;

use governor::clock::Clock;
use serde::{Deserialize, Serialize};

use crate::rate_limited::quota;
use crate::{AllSettled, Error, Parallel, RateLimited, Result, Sequential, Strategy};

/// The four built-in strategies, by the names used in workflow files and on
/// the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    /// `sequential`: [`Sequential`].
    Sequential,
    /// `parallel`: [`Parallel`].
    Parallel,
    /// `all-settled`: [`AllSettled`].
    AllSettled,
    /// `rate-limited`: [`RateLimited`].
    RateLimited,
}

impl StrategyKind {
    /// Every kind, in the order they are documented.
    pub const ALL: [StrategyKind; 4] = [
        StrategyKind::Sequential,
        StrategyKind::Parallel,
        StrategyKind::AllSettled,
        StrategyKind::RateLimited,
    ];

    /// The kind's name: `sequential`, `parallel`, `all-settled` or `rate-limited`.
    pub const fn as_str(self) -> &'static str {
        match self {
            StrategyKind::Sequential => "sequential",
            StrategyKind::Parallel => "parallel",
            StrategyKind::AllSettled => "all-settled",
            StrategyKind::RateLimited => "rate-limited",
        }
    }
}

impl fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StrategyKind {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        StrategyKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| Error::UnknownKind { name: name.to_owned() })
    }
}

/// A strategy described by its name and options, as written in a workflow
/// file (`strategy: { kind, max_concurrency, per_second, burst, fail_fast }`)
/// or given as command-line flags.
///
/// ```
/// use flow_strategy::{StrategyConfig, StrategyKind};
///
/// # fn main() -> flow_strategy::Result<()> {
/// let config = StrategyConfig { per_second: Some(5.0), ..StrategyConfig::new(StrategyKind::RateLimited) };
/// let strategy = config.build()?;
/// assert_eq!(strategy.name(), "rate-limited");
/// assert!(!strategy.fail_fast());
///
/// let err = StrategyConfig::new(StrategyKind::RateLimited).build().unwrap_err();
/// assert_eq!(err.to_string(), "strategy.per_second: is required for rate-limited");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyConfig {
    /// Which strategy.
    pub kind: StrategyKind,
    /// At most this many branches in flight (at least 1); not for `sequential`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<usize>,
    /// Starts per second; required for `rate-limited`, refused otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_second: Option<f64>,
    /// Largest burst of starts (default 1); `rate-limited` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Whether the first failure cancels the rest (default false);
    /// `rate-limited` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_fast: Option<bool>,
}

impl StrategyConfig {
    /// A config of `kind` with every option unset.
    pub const fn new(kind: StrategyKind) -> Self {
        StrategyConfig {
            kind,
            max_concurrency: None,
            per_second: None,
            burst: None,
            fail_fast: None,
        }
    }

    /// Validates the options and builds the strategy.
    ///
    /// A `rate-limited` strategy wraps [`Parallel`] when `fail_fast` is true,
    /// [`AllSettled`] otherwise, and reads tokio's clock
    /// ([`TokioClock`](crate::TokioClock)).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] naming the first offending option
    /// (`strategy.max_concurrency`, `strategy.per_second`, `strategy.burst`
    /// or `strategy.fail_fast`): a value out of range, a required option
    /// missing, or an option the kind does not take.
    pub fn build(&self) -> Result<Arc<dyn Strategy>> {
        self.build_with_clock(crate::TokioClock::new())
    }

    /// As [`build`](Self::build), with `clock` measuring time for a
    /// `rate-limited` strategy (e.g. governor's
    /// [`FakeRelativeClock`](governor::clock::FakeRelativeClock) in tests);
    /// other kinds ignore it.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build).
    pub fn build_with_clock<C>(&self, clock: C) -> Result<Arc<dyn Strategy>>
    where
        C: Clock + Send + Sync + 'static,
    {
        if let Some(first) = self.problems().into_iter().next() {
            return Err(Error::invalid(first.field, first.message));
        }
        let max_concurrency = self.max_concurrency.and_then(NonZeroUsize::new);
        Ok(match self.kind {
            StrategyKind::Sequential => Arc::new(Sequential),
            StrategyKind::Parallel => Arc::new(Parallel { max_concurrency }),
            StrategyKind::AllSettled => Arc::new(AllSettled { max_concurrency }),
            StrategyKind::RateLimited => {
                let per_second = self.per_second.unwrap_or(1.0);
                let burst = self.burst.unwrap_or(1);
                // Validated here to name the options by their place in the file.
                quota(per_second, burst, ("strategy.per_second", "strategy.burst"))?;
                if self.fail_fast == Some(true) {
                    let inner = Parallel { max_concurrency };
                    Arc::new(RateLimited::with_clock(inner, per_second, burst, clock)?)
                } else {
                    let inner = AllSettled { max_concurrency };
                    Arc::new(RateLimited::with_clock(inner, per_second, burst, clock)?)
                }
            }
        })
    }

    /// Every problem of these options, in option order (empty when they are
    /// valid): a value out of range, a required option missing, or an option
    /// the kind does not take.
    pub(crate) fn problems(&self) -> Vec<Invalid> {
        let kind = self.kind;
        let rate = kind == StrategyKind::RateLimited;
        let mut problems = Vec::new();
        let mut bad = |field, message: &'static str| problems.push(Invalid { field, message });
        match self.max_concurrency {
            Some(_) if kind == StrategyKind::Sequential => bad(
                "strategy.max_concurrency",
                "does not apply to sequential, which runs one node at a time",
            ),
            Some(0) => bad("strategy.max_concurrency", "must be at least 1"),
            _ => {}
        }
        match self.per_second {
            None if rate => bad("strategy.per_second", "is required for rate-limited"),
            Some(r) if rate && !(r.is_finite() && r > 0.0) => bad("strategy.per_second", "must be a number above 0"),
            Some(r) if rate && r > 1e9 => bad("strategy.per_second", "must be at most 1e9"),
            Some(_) if !rate => bad("strategy.per_second", "only applies to rate-limited"),
            _ => {}
        }
        match self.burst {
            Some(0) if rate => bad("strategy.burst", "must be at least 1"),
            Some(_) if !rate => bad("strategy.burst", "only applies to rate-limited"),
            _ => {}
        }
        if self.fail_fast.is_some() && !rate {
            bad(
                "strategy.fail_fast",
                "only applies to rate-limited (parallel always fails fast, all-settled never does)",
            );
        }
        problems
    }
}

pub(crate) struct Invalid {
    pub(crate) field: &'static str,
    pub(crate) message: &'static str,
}

impl From<StrategyKind> for StrategyConfig {
    fn from(kind: StrategyKind) -> Self {
        StrategyConfig::new(kind)
    }
}
