use std::num::NonZeroUsize;

use crate::Strategy;

/// One branch at a time, in order; the first failure cancels the rest.
///
/// Like awaiting each promise in turn in a `for` loop. Pick it when branches
/// must not overlap (they share a resource, or the output must be easy to
/// read), or to make a run deterministic while debugging.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Sequential;

impl Sequential {
    /// The sequential strategy.
    pub const fn new() -> Self {
        Sequential
    }
}

impl Strategy for Sequential {
    fn name(&self) -> &str {
        "sequential"
    }

    fn max_concurrency(&self) -> Option<NonZeroUsize> {
        Some(NonZeroUsize::MIN)
    }

    fn fail_fast(&self) -> bool {
        true
    }
}

/// Every branch at once (up to `max_concurrency`); the first failure cancels
/// the rest.
///
/// The analogue of `Promise.all`: the run succeeds only if every branch does,
/// and there is no point waiting for the others once one has failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Parallel {
    /// At most this many branches in flight at once; `None` = unbounded.
    pub max_concurrency: Option<NonZeroUsize>,
}

impl Parallel {
    /// Unbounded parallelism.
    pub const fn new() -> Self {
        Parallel { max_concurrency: None }
    }

    /// At most `n` branches in flight at once.
    #[must_use]
    pub const fn with_max_concurrency(mut self, n: NonZeroUsize) -> Self {
        self.max_concurrency = Some(n);
        self
    }
}

impl Strategy for Parallel {
    fn name(&self) -> &str {
        "parallel"
    }

    fn max_concurrency(&self) -> Option<NonZeroUsize> {
        self.max_concurrency
    }

    fn fail_fast(&self) -> bool {
        true
    }
}

/// Every branch at once (up to `max_concurrency`); every branch runs to
/// completion whatever the others do.
///
/// The analogue of `Promise.allSettled`: pick it when the branches are
/// independent jobs and you want every result (a batch of notifications, a
/// report over many sources), failures included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct AllSettled {
    /// At most this many branches in flight at once; `None` = unbounded.
    pub max_concurrency: Option<NonZeroUsize>,
}

impl AllSettled {
    /// Unbounded parallelism.
    pub const fn new() -> Self {
        AllSettled { max_concurrency: None }
    }

    /// At most `n` branches in flight at once.
    #[must_use]
    pub const fn with_max_concurrency(mut self, n: NonZeroUsize) -> Self {
        self.max_concurrency = Some(n);
        self
    }
}

impl Strategy for AllSettled {
    fn name(&self) -> &str {
        "all-settled"
    }

    fn max_concurrency(&self) -> Option<NonZeroUsize> {
        self.max_concurrency
    }

    fn fail_fast(&self) -> bool {
        false
    }
}
