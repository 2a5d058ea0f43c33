//! A node's retry policy: how many attempts, and the waits between them.

use std::time::Duration;

use crate::error::Problem;
use crate::spec::RetrySpec;

/// How a node retries failed attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all (>= 1).
    pub max_attempts: u32,
    /// Wait before the second attempt.
    pub backoff: Duration,
    /// Growth of each further wait.
    pub factor: f64,
    /// Longest wait.
    pub max_backoff: Duration,
    /// Randomise each wait between half and all of it.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 1,
            backoff: Duration::from_millis(100),
            factor: 2.0,
            max_backoff: Duration::from_secs(30),
            jitter: false,
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based). `unit` in `[0, 1)`
    /// drives the jitter; pass any value when jitter is off.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let exp = self.factor.powi(attempt.saturating_sub(1).min(1000) as i32);
        let base = self.backoff.as_secs_f64() * exp;
        let capped = base.min(self.max_backoff.as_secs_f64());
        let secs = if self.jitter {
            capped * (0.5 + 0.5 * unit.clamp(0.0, 1.0))
        } else {
            capped
        };
        Duration::try_from_secs_f64(secs).unwrap_or(self.max_backoff)
    }

    pub(super) fn from_spec(spec: &RetrySpec, place: &str, problems: &mut Vec<Problem>) -> RetryPolicy {
        if spec.max_attempts == 0 {
            problems.push(Problem::new(format!("{place}.max_attempts"), "must be at least 1"));
        }
        if !(spec.factor.is_finite() && spec.factor >= 1.0) {
            problems.push(Problem::new(format!("{place}.factor"), "must be a finite number >= 1"));
        }
        if spec.max_backoff_ms < spec.backoff_ms {
            problems.push(Problem::new(
                format!("{place}.max_backoff_ms"),
                format!(
                    "is {} but backoff_ms is {}: the cap must not be below the first wait",
                    spec.max_backoff_ms, spec.backoff_ms
                ),
            ));
        }
        const DAY_MS: u64 = 24 * 3600 * 1000;
        if spec.max_backoff_ms > DAY_MS {
            problems.push(Problem::new(
                format!("{place}.max_backoff_ms"),
                "must be at most one day (86400000)",
            ));
        }
        RetryPolicy {
            max_attempts: spec.max_attempts.max(1),
            backoff: Duration::from_millis(spec.backoff_ms),
            factor: if spec.factor.is_finite() {
                spec.factor.max(1.0)
            } else {
                1.0
            },
            max_backoff: Duration::from_millis(spec.max_backoff_ms.max(spec.backoff_ms)),
            jitter: spec.jitter,
        }
    }
}
