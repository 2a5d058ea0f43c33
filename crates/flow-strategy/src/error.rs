use std::borrow::Cow;

/// Everything that can go wrong while building a strategy.
///
/// Running branches never fails as a whole: each branch's failure is its own
/// [`Outcome::Err`](crate::Outcome::Err).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option is out of range, missing, or not allowed for the chosen kind.
    #[error("{field}: {reason}")]
    InvalidOption {
        /// Where the option lives, e.g. `strategy.per_second` (or `per_second`
        /// when a constructor was called directly).
        field: &'static str,
        /// What is wrong with it and what would be accepted.
        reason: Cow<'static, str>,
    },
    /// A strategy name that is none of the built-in kinds.
    #[error("unknown strategy kind `{name}`: expected one of sequential, parallel, all-settled, rate-limited")]
    UnknownKind {
        /// The name as given.
        name: String,
    },
}

impl Error {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<Cow<'static, str>>) -> Self {
        Error::InvalidOption {
            field,
            reason: reason.into(),
        }
    }

    /// The option this error is about (`strategy.kind` for an unknown kind).
    pub fn field(&self) -> &str {
        match self {
            Error::InvalidOption { field, .. } => field,
            Error::UnknownKind { .. } => "strategy.kind",
        }
    }
}

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
