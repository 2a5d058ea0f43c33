use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::time::Duration;

use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

use crate::Strategy;

/// What became of one branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use]
pub enum Outcome<T, E> {
    /// The branch finished with `Ok`.
    Ok(T),
    /// The branch finished with `Err`.
    Err(E),
    /// The branch was dropped while running, or never started, because of a
    /// fail-fast failure or a cancellation.
    Cancelled,
}

impl<T, E> Outcome<T, E> {
    /// Whether the branch finished with `Ok`.
    pub const fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok(_))
    }

    /// Whether the branch finished with `Err`.
    pub const fn is_err(&self) -> bool {
        matches!(self, Outcome::Err(_))
    }

    /// Whether the branch was cancelled or never started.
    pub const fn is_cancelled(&self) -> bool {
        matches!(self, Outcome::Cancelled)
    }

    /// The branch's value, if it finished with `Ok`.
    pub fn ok(self) -> Option<T> {
        match self {
            Outcome::Ok(value) => Some(value),
            _ => None,
        }
    }

    /// The branch's error, if it finished with `Err`.
    pub fn err(self) -> Option<E> {
        match self {
            Outcome::Err(error) => Some(error),
            _ => None,
        }
    }

    /// The branch's result, or `None` if it was cancelled.
    pub fn into_result(self) -> Option<Result<T, E>> {
        match self {
            Outcome::Ok(value) => Some(Ok(value)),
            Outcome::Err(error) => Some(Err(error)),
            Outcome::Cancelled => None,
        }
    }

    /// Borrows the value or error.
    pub const fn as_ref(&self) -> Outcome<&T, &E> {
        match self {
            Outcome::Ok(value) => Outcome::Ok(value),
            Outcome::Err(error) => Outcome::Err(error),
            Outcome::Cancelled => Outcome::Cancelled,
        }
    }
}

impl<T, E> From<Result<T, E>> for Outcome<T, E> {
    fn from(result: Result<T, E>) -> Self {
        match result {
            Ok(value) => Outcome::Ok(value),
            Err(error) => Outcome::Err(error),
        }
    }
}

/// Runs `branches` side by side as `strategy` says, and returns one outcome
/// per branch, in input order.
///
/// The branches are polled inside the returned future (nothing is spawned),
/// so they may borrow from the caller. They start in input order, each when
/// a concurrency slot is free and [`Strategy::admit`] lets it. With
/// [`Strategy::fail_fast`], the first `Err` drops every branch in flight at
/// once; they and the branches not yet started come back
/// [`Outcome::Cancelled`]. Without it, every branch runs to completion.
///
/// Waiting for an admission uses [`tokio::time::sleep`], so a strategy that
/// ever asks to wait (like [`RateLimited`](crate::RateLimited)) needs a tokio
/// runtime with time enabled; the others run on any executor.
///
/// ```
/// use flow_strategy::{run, AllSettled, Outcome};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let outcomes = run(&AllSettled::new(), [1, 2, 3].map(|n| async move {
///     if n == 2 { Err("two") } else { Ok(n * 10) }
/// }))
/// .await;
/// assert_eq!(outcomes, [Outcome::Ok(10), Outcome::Err("two"), Outcome::Ok(30)]);
/// # }
/// ```
pub async fn run<S, I, F, T, E>(strategy: &S, branches: I) -> Vec<Outcome<T, E>>
where
    S: Strategy + ?Sized,
    I: IntoIterator<Item = F>,
    F: Future<Output = Result<T, E>>,
{
    drive(strategy, branches, &CancellationToken::new()).await
}

/// As [`run`], and cancelling `cancel` acts like a fail-fast failure: every
/// branch in flight is dropped at once, and they and the branches not yet
/// started come back [`Outcome::Cancelled`]. Outcomes of branches that had
/// already finished are kept.
pub async fn run_until<S, I, F, T, E>(strategy: &S, branches: I, cancel: &CancellationToken) -> Vec<Outcome<T, E>>
where
    S: Strategy + ?Sized,
    I: IntoIterator<Item = F>,
    F: Future<Output = Result<T, E>>,
{
    drive(strategy, branches, cancel).await
}

/// [`run`] and [`run_until`] as methods of every strategy.
///
/// ```
/// use std::sync::Arc;
/// use flow_strategy::{Parallel, Strategy, StrategyExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let strategy: Arc<dyn Strategy> = Arc::new(Parallel::new());
/// let outcomes = strategy.run((1..=2).map(|n| async move { Ok::<_, ()>(n) })).await;
/// assert!(outcomes.iter().all(|o| o.is_ok()));
/// # }
/// ```
pub trait StrategyExt: Strategy {
    /// See [`run`].
    fn run<I, F, T, E>(&self, branches: I) -> impl Future<Output = Vec<Outcome<T, E>>>
    where
        I: IntoIterator<Item = F>,
        F: Future<Output = Result<T, E>>,
    {
        run(self, branches)
    }

    /// See [`run_until`].
    fn run_until<I, F, T, E>(&self, branches: I, cancel: &CancellationToken) -> impl Future<Output = Vec<Outcome<T, E>>>
    where
        I: IntoIterator<Item = F>,
        F: Future<Output = Result<T, E>>,
    {
        run_until(self, branches, cancel)
    }
}

impl<S: Strategy + ?Sized> StrategyExt for S {}

/// A floor under admission waits, so a strategy answering `Err(ZERO)` cannot
/// make the runner spin; it is also tokio's timer resolution.
const MIN_ADMISSION_WAIT: Duration = Duration::from_millis(1);

/// Runs the branches; see [`run_until`] for the semantics.
async fn drive<S, I, F, T, E>(strategy: &S, branches: I, cancel: &CancellationToken) -> Vec<Outcome<T, E>>
where
    S: Strategy + ?Sized,
    I: IntoIterator<Item = F>,
    F: Future<Output = Result<T, E>>,
{
    let limit = strategy.max_concurrency().map_or(usize::MAX, NonZeroUsize::get);
    let fail_fast = strategy.fail_fast();

    let mut pending = branches.into_iter().fuse();
    // One slot per started branch, in input order, filled when it finishes;
    // a slot still empty at the end is a branch that was dropped.
    let mut finished: Vec<Option<Outcome<T, E>>> = Vec::with_capacity(pending.size_hint().0);
    let mut running = FuturesUnordered::new();
    // A branch taken from the input that is waiting for its admission.
    let mut waiting: Option<F> = None;
    let mut admission: Option<Pin<Box<Sleep>>> = None;
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    let mut stopped = cancel.is_cancelled();

    while !stopped {
        // The strategy is asked again only once its last wait is over.
        if admission.is_none() {
            while running.len() < limit {
                let Some(branch) = waiting.take().or_else(|| pending.next()) else {
                    break;
                };
                match strategy.admit() {
                    Ok(()) => {
                        let index = finished.len();
                        finished.push(None);
                        running.push(branch.map(move |result| (index, result)));
                    }
                    Err(wait) => {
                        waiting = Some(branch);
                        admission = Some(Box::pin(tokio::time::sleep(wait.max(MIN_ADMISSION_WAIT))));
                        break;
                    }
                }
            }
        }
        if running.is_empty() && waiting.is_none() {
            break; // every branch has finished
        }

        tokio::select! {
            biased;
            () = &mut cancelled => stopped = true,
            Some((index, result)) = running.next() => {
                stopped = fail_fast && result.is_err();
                if let Some(slot) = finished.get_mut(index) {
                    *slot = Some(result.into());
                }
            }
            () = admission_over(&mut admission) => admission = None,
        }
    }

    // Dropping the stream drops the branches in flight, at once.
    drop(running);
    let not_started = waiting.into_iter().chain(pending).map(|_| Outcome::Cancelled);
    finished
        .into_iter()
        .map(|slot| slot.unwrap_or(Outcome::Cancelled))
        .chain(not_started)
        .collect()
}

/// Completes when the admission wait is over; never, if there is none.
async fn admission_over(admission: &mut Option<Pin<Box<Sleep>>>) {
    match admission {
        Some(sleep) => sleep.as_mut().await,
        None => std::future::pending().await,
    }
}
