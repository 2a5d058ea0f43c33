//! The node kinds `http`, `notify` and `validate` through the engine, against real
//! servers the tests start on 127.0.0.1 (free ports): HTTP servers (axum) and a
//! small SMTP sink.
#![cfg(all(feature = "http", feature = "email"))]
#![allow(clippy::unwrap_used)]

mod check;
mod example;
mod http;
mod limits;
mod notify;
mod support;
mod validate;
