//! `flow serve` over real HTTP, against the real binary: every server on a
//! free port of its own, a temporary workflows folder and SQLite journal.
//! The API (with and without `FLOW_TOKEN`), the pages' login, the refused
//! start beyond loopback, server-sent events with `Last-Event-ID`, cancel,
//! retry, idempotent submits, reloads (POST and SIGHUP), SIGTERM with
//! `--grace`, a SIGKILL in the middle of a run, and malformed requests.

mod api;
mod auth;
mod bounds;
mod children;
mod docs;
mod events;
mod fuzz;
mod guard;
mod input;
mod keys;
mod lifecycle;
mod limits;
mod outage;
mod queue;
mod reload;
mod support;
mod waits;
mod workflows;
