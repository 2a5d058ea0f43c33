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
}
