//! Reliability of the engine (issue #6): faults inside nodes (panics, futures that
//! never return), faults of services (a misbehaving HTTP server on 127.0.0.1),
//! hostile templates, cancellation that stops everything and leaves no task behind,
//! and property tests that
//! arbitrary documents never panic the parser, the validator or the templates.
//! See docs/reliability.md.

mod cancel;
mod node_faults;
mod props;
mod services;
mod support;
mod templates;
