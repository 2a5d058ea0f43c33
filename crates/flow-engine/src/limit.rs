//! Limits shared across runs: a governor GCRA quota (keyed, one cell per rendered
//! key) and a semaphore per key for `max_concurrency`. One [`Limiters`] per engine
//! holds them, so every run of a workflow (or, for an engine-wide limit, every run
//! of every workflow) in that engine takes the same ones.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flow_core::{LimitScope, LimitSpec, NodeLimit, Workflow};
use flow_strategy::TokioClock;
use governor::RateLimiter;
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

type Quota = RateLimiter<String, DashMapStateStore<String>, TokioClock, NoOpMiddleware<<TokioClock as Clock>::Instant>>;

/// One shared limit: its quota and its concurrency cap, each per key.
pub(crate) struct SharedLimit {
    quota: Option<Quota>,
    /// Who shares it, its name, and its rate: for a quota shared beyond this
    /// process ([`crate::Dispatcher::admit`]).
    pub(crate) scope: Option<String>,
    pub(crate) name: String,
    pub(crate) rate: Option<(f64, u32)>,
    max_concurrency: Option<usize>,
    semaphores: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// Keys not seen for a while are dropped once this many are held.
const KEYS_BEFORE_CLEANUP: usize = 10_000;

impl SharedLimit {
    fn new(spec: &LimitSpec, scope: Option<String>, name: String) -> SharedLimit {
        let quota = spec.per_second.and_then(|rate| {
            // Validated when the workflow was loaded; an invalid one is not a quota.
            flow_strategy::rate_quota(rate, spec.burst.unwrap_or(1))
                .ok()
                .map(|q| RateLimiter::dashmap_with_clock(q, TokioClock::new()))
        });
        SharedLimit {
            quota,
            scope,
            name,
            rate: spec.per_second.map(|rate| (rate, spec.burst.unwrap_or(1))),
            max_concurrency: spec.max_concurrency.map(|n| n.max(1) as usize),
            semaphores: Mutex::new(HashMap::new()),
        }
    }

    /// The concurrency slot for `key`, if the limit has a cap: taken first, so
    /// the quota is spent only by starts that can really begin.
    /// The concurrency cap, if the limit has one.
    pub(crate) fn max_concurrency(&self) -> Option<usize> {
        self.max_concurrency
    }

    pub(crate) fn semaphore(&self, key: &str) -> Option<Arc<Semaphore>> {
        let cap = self.max_concurrency?;
        let mut map = self.semaphores.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= KEYS_BEFORE_CLEANUP {
            map.retain(|_, s| s.available_permits() < cap);
        }
        Some(
            map.entry(key.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(cap)))
                .clone(),
        )
    }

    /// One start for `key` now, or how long to wait before asking again.
    pub(crate) fn admit(&self, key: &str) -> Result<(), Duration> {
        let Some(quota) = &self.quota else { return Ok(()) };
        let key = key.to_owned();
        if quota.len() >= KEYS_BEFORE_CLEANUP {
            quota.retain_recent();
        }
        quota
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(quota.clock().now()))
    }
}

/// What an attempt holds while it runs: its concurrency slot, if any, of this
/// process or shared through the dispatcher.
pub(crate) type Held = Option<Slot>;

/// One held concurrency slot (dropped when the attempt ends).
pub(crate) enum Slot {
    Local(#[allow(dead_code)] OwnedSemaphorePermit),
    Shared(#[allow(dead_code)] crate::SlotGuard),
}

/// Who a limit is shared by, and the limit as declared: a changed declaration
/// (a workflow file edited and loaded again) gets a fresh limiter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LimitId {
    workflow: Option<String>,
    name: String,
    per_second: Option<u64>,
    burst: Option<u32>,
    max_concurrency: Option<u32>,
}

/// Every shared limit of one engine.
#[derive(Default)]
pub(crate) struct Limiters {
    limits: Mutex<HashMap<LimitId, Arc<SharedLimit>>>,
}

impl Limiters {
    /// The limiter of `limit` for runs of `workflow`.
    fn get(&self, workflow: &Workflow, limit: &NodeLimit) -> Arc<SharedLimit> {
        let spec = limit.spec();
        let id = LimitId {
            workflow: (limit.scope() == LimitScope::Workflow).then(|| workflow.name().to_owned()),
            name: limit.name().to_string(),
            per_second: spec.per_second.map(f64::to_bits),
            burst: spec.burst,
            max_concurrency: spec.max_concurrency,
        };
        let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        limits
            .entry(id.clone())
            .or_insert_with(|| Arc::new(SharedLimit::new(spec, id.workflow.clone(), limit.name().to_string())))
            .clone()
    }

    /// The limiters of one run, one per node (`None` for nodes without a limit),
    /// or `None` when no node takes a limit: a run without limits pays nothing.
    pub(crate) fn for_run(&self, workflow: &Workflow) -> Option<Box<[Option<Arc<SharedLimit>>]>> {
        if !workflow.uses_limits() {
            return None;
        }
        Some(
            workflow
                .nodes()
                .iter()
                .map(|n| n.limit().map(|l| self.get(workflow, l)))
                .collect(),
        )
    }
}
