use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

/// How independent branches run side by side: a small, synchronous policy.
///
/// A strategy does not run anything itself. Whoever schedules the branches —
/// [`run`](crate::run) in this crate, or the workflow engine scheduling the
/// nodes of a DAG — asks it three questions:
///
/// * [`max_concurrency`](Strategy::max_concurrency): how many branches may be in
///   flight at once;
/// * [`fail_fast`](Strategy::fail_fast): whether the first failure cancels
///   everything else;
/// * [`admit`](Strategy::admit): whether the next branch may start *now*.
///
/// # Contract
///
/// A scheduler that honours a strategy:
///
/// 1. starts branches in order, and only while fewer than
///    `max_concurrency` are in flight;
/// 2. calls `admit` once before each start, only when a slot is free and a
///    branch is waiting, and starts that branch if it returns `Ok(())` — so
///    an `Ok` is an admission *consumed*; on `Err(wait)` it does not call
///    `admit` again before `wait` has passed, and keeps driving the branches
///    already in flight meanwhile;
/// 3. with `fail_fast`, on the first failure drops every branch in flight at
///    once and starts no other; without it, lets every branch finish.
///
/// The methods are called from the scheduler's task and must return quickly:
/// they must not block. The trait is dyn-compatible, and is implemented for
/// `Arc<S>` and `Box<S>`, so `Arc<dyn Strategy>` is a strategy too.
///
/// # Example: a custom strategy
///
/// Fixed spacing between starts, one at a time:
///
/// ```
/// use std::num::NonZeroUsize;
/// use std::sync::Mutex;
/// use std::time::{Duration, Instant};
/// use flow_strategy::Strategy;
///
/// #[derive(Debug)]
/// struct Spaced { gap: Duration, last: Mutex<Option<Instant>> }
///
/// impl Strategy for Spaced {
///     fn name(&self) -> &str { "spaced" }
///     fn max_concurrency(&self) -> Option<NonZeroUsize> { NonZeroUsize::new(1) }
///     fn fail_fast(&self) -> bool { false }
///     fn admit(&self) -> Result<(), Duration> {
///         let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
///         let now = Instant::now();
///         match *last {
///             Some(at) if now < at + self.gap => Err(at + self.gap - now),
///             _ => { *last = Some(now); Ok(()) }
///         }
///     }
/// }
///
/// let spaced = Spaced { gap: Duration::from_secs(1), last: Mutex::new(None) };
/// assert_eq!(spaced.admit(), Ok(()));
/// assert!(spaced.admit().is_err());
/// ```
pub trait Strategy: Send + Sync + std::fmt::Debug + 'static {
    /// Name shown in reports, e.g. "parallel".
    fn name(&self) -> &str;

    /// At most this many branches in flight at once; `None` = unbounded.
    fn max_concurrency(&self) -> Option<NonZeroUsize>;

    /// Whether the first failure cancels the branches still running (at once,
    /// by dropping them) and those not yet started.
    fn fail_fast(&self) -> bool;

    /// Admission before each start: `Ok(())` = start now (consumes one
    /// admission), `Err(wait)` = ask again after `wait`.
    fn admit(&self) -> Result<(), Duration> {
        Ok(())
    }

    /// The steady rate that [`admit`](Strategy::admit) holds starts to, if
    /// any, for planning tools (`flow explain` bounds a run's time with it).
    /// A strategy whose `admit` spaces starts should say so here. Default:
    /// none.
    fn rate(&self) -> Option<Rate> {
        None
    }
}

/// A rate of starts: `per_second` on average, up to `burst` at once after an
/// idle time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Starts per second (fractions allowed).
    pub per_second: f64,
    /// Starts admitted at once after an idle time (at least 1).
    pub burst: u32,
}

macro_rules! forward {
    ($($ptr:ident),*) => {$(
        impl<S: Strategy + ?Sized> Strategy for $ptr<S> {
            fn name(&self) -> &str {
                (**self).name()
            }

            fn max_concurrency(&self) -> Option<NonZeroUsize> {
                (**self).max_concurrency()
            }

            fn fail_fast(&self) -> bool {
                (**self).fail_fast()
            }

            fn admit(&self) -> Result<(), Duration> {
                (**self).admit()
            }

            fn rate(&self) -> Option<Rate> {
                (**self).rate()
            }
        }
    )*};
}

forward!(Arc, Box);
