//! Load (issue #6): 1,000 concurrent runs with no cross-talk, and memory that
//! returns to where it was. A test binary of its own, so that RSS, which is the
//! process's, measures these runs alone and no other test's allocations.
//! See docs/reliability.md.
#![allow(clippy::unwrap_used)]

mod runs;
#[allow(dead_code)]
#[path = "../reliability/support.rs"]
mod support;
