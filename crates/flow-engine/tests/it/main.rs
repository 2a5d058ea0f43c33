//! Integration tests of flow-engine through its public API: trigger rules,
//! strategies, retries, the context, cancellation, the report, scale, and a
//! property test against an independent model of the rules.

mod cancel;
mod children_props;
mod context;
mod durable;
mod for_each;
mod props;
mod report;
mod retry;
mod scale;
mod strategies;
mod support;
mod triggers;
mod waits;
