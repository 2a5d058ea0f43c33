//! Tests of the `flow` binary: exit codes, messages, the report, flags, signals.

mod children;
mod demo;
mod dist;
mod durable;
mod for_each;
mod limits;
mod run;
mod runs;
mod signal;
mod support;
mod validate;
mod waits;
