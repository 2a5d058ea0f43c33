//! Reliability of the `flow` binary (issue #6): every broken or hostile workflow
//! file is refused with exit 2 and a clear message, never a panic nor a hang; a
//! signal cancels a run at once and the report still says what happened to every
//! node. See docs/reliability.md.

mod invalid;
mod signals;
mod support;
