use std::fmt;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::{AllSettled, Error, Rate, Result, Strategy};

/// A wrapper that admits the starts of its inner strategy at a steady rate.
///
/// Before each start it checks a [`governor`] GCRA quota of `per_second`
/// starts per second with bursts of up to `burst` (default 1), then defers to
/// the inner strategy's own [`admit`](Strategy::admit). Concurrency and
/// fail-fast come from the inner strategy: wrap [`AllSettled`] (the default)
/// to let failures settle, or [`Parallel`](crate::Parallel) to fail fast.
///
/// Pick it when branches call something that limits *how often* you may call
/// it (an API quota, a mail server), as opposed to how many calls may be open
/// at once (that is `max_concurrency`).
///
/// The quota is checked first: when it admits but the inner strategy asks to
/// wait, that quota cell is spent, so the effective rate can only be lower
/// than `per_second`, never higher.
///
/// Time is read from [`TokioClock`] by default: the runner (and the
/// workflow engine) wait for admissions with `tokio::time::sleep`, so the
/// quota reads the same clock they sleep on, paused test clocks included.
/// The clock is a type parameter, so [`with_clock`](RateLimited::with_clock)
/// takes any governor clock instead: governor's
/// [`FakeRelativeClock`](governor::clock::FakeRelativeClock) to step time by
/// hand in tests, or its [`DefaultClock`](governor::clock::DefaultClock).
///
/// ```
/// use flow_strategy::{Parallel, RateLimited, Strategy};
///
/// # fn main() -> flow_strategy::Result<()> {
/// let limited = RateLimited::with_burst(Parallel::new(), 0.5, 2)?; // one start every 2 s, bursts of 2
/// assert!(limited.admit().is_ok());
/// assert!(limited.admit().is_ok());
/// assert!(limited.admit().is_err()); // asks to wait about 2 s
/// assert!(limited.fail_fast()); // from Parallel
/// # Ok(())
/// # }
/// ```
pub struct RateLimited<S = AllSettled, C: Clock = TokioClock> {
    inner: S,
    per_second: f64,
    burst: NonZeroU32,
    limiter: RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
}

impl<S: Strategy> RateLimited<S> {
    /// `per_second` starts per second (fractions allowed: `0.5` is one every
    /// two seconds), no bursts, on tokio's clock ([`TokioClock`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] when `per_second` is not a finite number
    /// greater than 0, or is outside the range a quota can represent (between
    /// one start per 100 years and one per nanosecond).
    pub fn new(inner: S, per_second: f64) -> Result<Self> {
        Self::with_burst(inner, per_second, 1)
    }

    /// `per_second` starts per second with bursts of up to `burst` starts.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new), and when `burst` is 0.
    pub fn with_burst(inner: S, per_second: f64, burst: u32) -> Result<Self> {
        Self::with_clock(inner, per_second, burst, TokioClock::new())
    }
}

impl<S: Strategy, C: Clock> RateLimited<S, C> {
    /// As [`with_burst`](RateLimited::with_burst), measuring time with `clock`.
    ///
    /// # Errors
    ///
    /// As [`with_burst`](RateLimited::with_burst).
    pub fn with_clock(inner: S, per_second: f64, burst: u32, clock: C) -> Result<Self> {
        let (quota, burst) = quota(per_second, burst, ("per_second", "burst"))?;
        Ok(RateLimited {
            inner,
            per_second,
            burst,
            limiter: RateLimiter::direct_with_clock(quota, clock),
        })
    }
}

impl<S, C: Clock> RateLimited<S, C> {
    /// The wrapped strategy.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The wrapped strategy, dropping the limiter.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Starts admitted per second, as given.
    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    /// The largest number of starts admitted at once after a quiet period.
    pub fn burst(&self) -> NonZeroU32 {
        self.burst
    }
}

impl<S: fmt::Debug, C: Clock> fmt::Debug for RateLimited<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimited")
            .field("inner", &self.inner)
            .field("per_second", &self.per_second)
            .field("burst", &self.burst)
            .finish_non_exhaustive()
    }
}

impl<S, C> Strategy for RateLimited<S, C>
where
    S: Strategy,
    C: Clock + Send + Sync + 'static,
{
    fn name(&self) -> &str {
        "rate-limited"
    }

    fn max_concurrency(&self) -> Option<NonZeroUsize> {
        self.inner.max_concurrency()
    }

    fn fail_fast(&self) -> bool {
        self.inner.fail_fast()
    }

    fn admit(&self) -> Result<(), Duration> {
        match self.limiter.check() {
            Ok(()) => self.inner.admit(),
            Err(not_until) => Err(not_until.wait_time_from(self.limiter.clock().now())),
        }
    }

    fn rate(&self) -> Option<Rate> {
        Some(Rate {
            per_second: self.per_second,
            burst: self.burst.get(),
        })
    }
}

/// A governor clock that reads tokio's clock ([`tokio::time::Instant`]).
///
/// The default clock of [`RateLimited`]. The quota then follows tokio's
/// paused or advanced time in tests (`#[tokio::test(start_paused = true)]`)
/// just as `tokio::time::sleep` does, so rate-limited runs there are exact
/// and instant. Outside a runtime with a paused clock it reads the same
/// monotonic clock as `std::time::Instant`. Create and use it within one
/// runtime: a paused clock does not agree with the real one.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock whose zero is now.
    pub fn new() -> Self {
        TokioClock {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// Quotas whose window (`burst / per_second`) is longer than this could
/// overflow governor's 584-year nanosecond counters, so they are refused.
const MAX_WINDOW_SECS: f64 = 100.0 * 365.0 * 24.0 * 3600.0;

/// A governor quota of `per_second` starts per second with bursts of up to
/// `burst`, validated as [`RateLimited`] validates its own (for limiters kept
/// outside a strategy, such as limits shared by many runs).
///
/// # Errors
///
/// [`Error::InvalidOption`] naming `per_second` or `burst`.
pub fn rate_quota(per_second: f64, burst: u32) -> Result<Quota> {
    quota(per_second, burst, ("per_second", "burst")).map(|(quota, _)| quota)
}

/// Validates a rate and burst into a quota; `fields` name the two options in
/// errors.
pub(crate) fn quota(
    per_second: f64,
    burst: u32,
    (rate_field, burst_field): (&'static str, &'static str),
) -> Result<(Quota, NonZeroU32)> {
    if !per_second.is_finite() || per_second <= 0.0 {
        return Err(Error::invalid(
            rate_field,
            format!("must be a finite number greater than 0, got {per_second}"),
        ));
    }
    let Some(burst) = NonZeroU32::new(burst) else {
        return Err(Error::invalid(burst_field, "must be at least 1"));
    };
    let period = 1.0 / per_second;
    if period > MAX_WINDOW_SECS {
        return Err(Error::invalid(
            rate_field,
            format!("must allow at least one start per 100 years, got {per_second}"),
        ));
    }
    if period * f64::from(burst.get()) > MAX_WINDOW_SECS {
        return Err(Error::invalid(
            burst_field,
            format!("{burst} starts at {per_second} per second take more than 100 years to replenish"),
        ));
    }
    let quota = Duration::try_from_secs_f64(period)
        .ok()
        .and_then(Quota::with_period)
        .ok_or_else(|| {
            Error::invalid(
                rate_field,
                format!("must be at most one start per nanosecond (1e9), got {per_second}"),
            )
        })?;
    Ok((quota.allow_burst(burst), burst))
}
