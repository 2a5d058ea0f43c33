//! Integration tests of flow-strategy, through its public API.

mod all_settled;
mod cancel;
mod config;
mod custom;
mod dyn_use;
mod fail_fast;
mod parallel;
mod props;
mod rate_limited;
mod scale;
mod sequential;
mod support;
