//! The crate's errors: [`Error`], and [`ResumeError`] for runs that cannot be resumed.

use crate::RunStatus;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a workflow could not be loaded or a run could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The workflow file is unreadable, malformed or invalid, or a strategy or
    /// a limit given in code is (each problem names its place).
    #[error(transparent)]
    Workflow(#[from] flow_core::Error),
    /// The strategy's options are invalid.
    #[error("{0}")]
    Strategy(#[from] flow_strategy::Error),
    /// The run's input is refused (deeper than the `max_depth` limit).
    #[error("input: {0}")]
    Input(String),
    /// The run's driver task ended abnormally (a bug: please report it).
    #[error("the run ended abnormally: {0}")]
    Aborted(String),
    /// The journal could not be written or read.
    #[error(transparent)]
    Journal(#[from] flow_journal::Error),
    /// A run cannot be resumed: not found, finished, or held by a live process.
    #[error(transparent)]
    Resume(#[from] ResumeError),
}

/// Why a run cannot be resumed. Front ends choose their answer by the
/// variant (404 for [`ResumeError::NotFound`], 409 for the others), never by
/// the message.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeError {
    /// No run has that id in the journal.
    #[error("no run `{run_id}` in the journal {journal}")]
    NotFound {
        /// The id asked for.
        run_id: String,
        /// The journal's path or URL.
        journal: String,
    },
    /// A live process holds the run.
    #[error("run `{run_id}` is held{}, which is still running it", holder.as_ref().map(|(pid, host)| format!(" by process {pid} on {host}")).unwrap_or_default())]
    Held {
        /// The run.
        run_id: String,
        /// The holder's pid and host, when known.
        holder: Option<(u32, String)>,
    },
    /// The run has finished: it succeeded (nothing to retry), or it failed or
    /// was cancelled and `retry_failed` was not asked for.
    #[error("run `{run_id}` has finished ({status}){}", if *status == RunStatus::Succeeded { ": there is nothing to resume or retry" } else { "; retry_failed runs its failed nodes again" })]
    Finished {
        /// The run.
        run_id: String,
        /// How it ended.
        status: RunStatus,
    },
    /// Another process claimed the run first.
    #[error("run `{run_id}` was taken over by another process just now")]
    TakenOver {
        /// The run.
        run_id: String,
    },
    /// The run's stored state cannot be continued (its document does not
    /// read, it vanished, its previous owner's tasks could not be stopped).
    #[error("run `{run_id}`: {reason}")]
    Unusable {
        /// The run.
        run_id: String,
        /// Why.
        reason: String,
    },
}
