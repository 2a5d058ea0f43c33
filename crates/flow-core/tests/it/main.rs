//! Integration tests of flow-core through its public API: parsing, validation,
//! templates and the run's state machine.

mod parse;
mod run_state;
mod support;
mod template;
mod validate;
