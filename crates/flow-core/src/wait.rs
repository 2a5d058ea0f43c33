//! Nodes that wait for time or for a signal: what a waiting kind asks the
//! engine, which keeps the wait durable (journaled, kept across a restart).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::node::NodeError;

/// What an attempt waits for, in wall-clock milliseconds since the Unix epoch:
/// fixed when the wait begins, so a run resumed after a restart waits until
/// the same instant, not for the whole time again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Waiting {
    /// When the wait began.
    pub since_ms: i64,
    /// A timer: the instant it is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<i64>,
    /// A signal: its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// For a signal: the instant the wait gives up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_at_ms: Option<i64>,
    /// For a `workflow` node: the child run whose end it waits for (the
    /// signal is the one the child sends when it ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_run_id: Option<String>,
}

impl Waiting {
    /// A timer due at `until_ms`.
    pub fn until(until_ms: i64) -> Waiting {
        Waiting {
            until_ms: Some(until_ms),
            ..Waiting::default()
        }
    }

    /// A signal named `name`, given up at `timeout_at_ms` if set.
    pub fn signal(name: impl Into<String>, timeout_at_ms: Option<i64>) -> Waiting {
        Waiting {
            signal: Some(name.into()),
            timeout_at_ms,
            ..Waiting::default()
        }
    }
}

impl Waiting {
    /// What a report says it waits for: `{"signal": name, "timeout_at":
    /// <RFC 3339>}` or `{"until": <RFC 3339>}`.
    pub fn described(&self) -> Value {
        let mut map = serde_json::Map::new();
        if let Some(name) = &self.signal {
            map.insert("signal".into(), Value::from(name.clone()));
            if let Some(at) = self.timeout_at_ms {
                map.insert("timeout_at".into(), Value::from(crate::rfc3339(at)));
            }
            if let Some(child) = &self.child_run_id {
                map.insert("child_run_id".into(), Value::from(child.clone()));
            }
        } else if let Some(until) = self.until_ms {
            map.insert("until".into(), Value::from(crate::rfc3339(until)));
        }
        Value::Object(map)
    }

    /// The earliest instant this wait is due or gives up, if any.
    pub fn due_ms(&self) -> Option<i64> {
        match (self.until_ms, self.timeout_at_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The engine's side of a waiting node's attempt ([`NodeCall::waits`]).
///
/// [`NodeCall::waits`]: crate::NodeCall::waits
#[async_trait::async_trait]
pub trait Waits: Send + Sync {
    /// Records that the attempt waits for `what` (durably, with a journal) and
    /// returns what it waits for: `what` with `since_ms` set, or, when the run
    /// was resumed in the middle of this wait, what was recorded then.
    async fn begin(&self, what: Waiting) -> Result<Waiting, NodeError>;

    /// The oldest signal `name` sent to the run that no wait has taken,
    /// taken for this attempt (recorded with the run, so no other wait gets
    /// it, and a resumed run gets the same one back). Waits until one comes.
    async fn next_signal(&self, name: &str) -> Result<Value, NodeError>;

    /// Sleeps until `until_ms` (wall clock, ms since the Unix epoch). While
    /// the attempt sleeps here or waits in [`Waits::next_signal`], the engine
    /// may park the run (stop it, to be resumed from its journal when due).
    async fn sleep_until(&self, until_ms: i64);
}

/// A time in ms since the Unix epoch as RFC 3339, in UTC, to the millisecond.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
