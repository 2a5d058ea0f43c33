//! The node kinds of **flow**.
//!
//! Always here: `noop`, `delay`, `transform`, `fail`. Behind cargo features that are
//! on by default: `http` (feature `http`) and the `email` channel of `notify`
//! (feature `email`). Every kind is a plain type implementing
//! [`flow_core::NodeKind`], usable without the engine.
#![warn(missing_docs)]

mod basic;

pub use basic::{Delay, Fail, Noop, Transform, unknown_fields};

use flow_core::Registry;

/// A registry holding every built-in kind this build has.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    register_builtin(&mut registry);
    registry
}

/// Adds every built-in kind this build has to `registry`.
pub fn register_builtin(registry: &mut Registry) {
    registry
        .register("noop", Noop)
        .register("delay", Delay)
        .register("transform", Transform)
        .register("fail", Fail);
}
