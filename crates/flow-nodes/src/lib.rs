//! The node kinds of **flow**.
//!
//! Always here: `noop`, `delay`, `transform`, `fail`, `notify` (channel `log`) and
//! `validate`. Behind cargo features that are on by default: `http` (feature
//! `http`, which also gives `notify` its `webhook` channel) and the `email`
//! channel of `notify` (feature `email`). Every kind is a plain type implementing
//! [`flow_core::NodeKind`], and every kind with a config has a config struct and a
//! `run` of its own, so an embedder can use it without the engine:
//!
//! ```
//! use flow_nodes::{Validate, ValidateConfig};
//! use serde_json::json;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ValidateConfig::from_value(&json!({
//!     "value": { "id": 7, "email": "not an address", "orders": [] },
//!     "schema": {
//!         "type": "object",
//!         "required": ["id", "email"],
//!         "properties": { "email": { "type": "string", "format": "email" } }
//!     },
//!     "rules": [{ "expr": "value.orders | length > 0", "message": "no orders" }]
//! }))?;
//! let violations = Validate::new().violations(&config, None)?;
//! assert_eq!(violations.len(), 2); // every violation, not only the first
//! assert_eq!(violations[0].pointer, "/email");
//! assert_eq!(violations[1].message, "no orders");
//! # Ok(())
//! # }
//! ```
//!
//! A kind of your own reads its config the way these do, with [`config`].
//!
//! `docs/nodes.md` in the repository documents every field and output.
#![warn(missing_docs)]

mod basic;
pub mod config;
#[cfg(feature = "http")]
mod http;
mod message;
#[cfg(feature = "http")]
mod net;
mod notify;
pub mod timer;
mod validate;
mod wait;

pub use basic::{Delay, Fail, Noop, Transform};
pub use config::unknown_fields;
#[cfg(feature = "http")]
pub use http::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_TIMEOUT, Http, HttpConfig, HttpResponse, IdempotencyKey, MAX_REDIRECTS,
    ResponseMode, StatusPattern,
};
pub use notify::{
    Channel, DEFAULT_DELIVERY_TIMEOUT, Delivery, EmailChannel, LogChannel, Notify, NotifyConfig, SmtpTls,
    WebhookChannel,
};
/// The HTTP method of an [`HttpConfig`] (reqwest's, re-exported).
#[cfg(feature = "http")]
pub use reqwest::Method;
pub use validate::{MAX_LISTED_VIOLATIONS, Rule, Validate, ValidateConfig, Violation};
pub use wait::{Signal, Wait, check_signal, format_instant, parse_duration, parse_instant};

use flow_core::{NodeCall, Registry};

/// A registry holding every built-in kind this build has.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    register_builtin(&mut registry);
    registry
}

/// Adds every built-in kind this build has to `registry`. The `http` kind and
/// `notify`'s webhooks share one HTTP client, so one connection pool.
pub fn register_builtin(registry: &mut Registry) {
    registry
        .register("noop", Noop)
        .register("delay", Delay)
        .register("transform", Transform)
        .register("fail", Fail)
        .register("validate", Validate::new())
        .register("wait", Wait)
        .register("signal", Signal);
    http::register(registry);
}

/// The idempotency key of `call` (`<run_id>:<node_id>[:<item index>]`), if the
/// call belongs to a run: a call built outside an engine has an empty `run_id`,
/// so no key that could match another's.
pub(crate) fn call_key(call: &NodeCall) -> Option<String> {
    (!call.run_id().is_empty()).then(|| call.idempotency_key())
}

/// The `http` kind in a build without the `http` feature: still known, so that
/// validation says which feature brings it back.
#[cfg(not(feature = "http"))]
mod http {
    use flow_core::{ConfigProblem, NodeCall, NodeError, NodeKind, Registry};
    use serde_json::Value;

    use crate::Notify;

    const MISSING: &str = "this kind needs flow-nodes' `http` feature";

    pub(crate) fn register(registry: &mut Registry) {
        registry.register("notify", Notify::new()).register("http", Unavailable);
    }

    #[derive(Debug)]
    struct Unavailable;

    #[async_trait::async_trait]
    impl NodeKind for Unavailable {
        fn check(&self, _config: &Value) -> Vec<ConfigProblem> {
            vec![ConfigProblem::new(
                "",
                format!("{MISSING}, which this build leaves out"),
            )]
        }

        async fn run(&self, _call: NodeCall) -> Result<Value, NodeError> {
            Err(NodeError::permanent(MISSING))
        }
    }
    #[cfg(test)]
    #[allow(clippy::unwrap_used)]
    mod tests {
        use serde_json::json;

        #[test]
        fn http_is_known_but_refused() {
            let registry = crate::registry();
            let problems = registry.get("http").unwrap().check(&json!({ "url": "http://x.test" }));
            assert_eq!(
                problems[0].message,
                "this kind needs flow-nodes' `http` feature, which this build leaves out"
            );
            assert!(registry.get("notify").is_some());
        }
    }
}
