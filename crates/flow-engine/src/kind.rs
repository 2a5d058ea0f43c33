//! Everything a node-kind author needs, in one import:
//!
//! ```
//! use flow_engine::kind::*;
//! ```
//!
//! The trait ([`NodeKind`]), what an attempt gets ([`NodeCall`], whose
//! [`Context`] is a read-only view of the run: input, settled nodes, secrets),
//! what it returns ([`NodeError`]), what `check` reports ([`ConfigProblem`]),
//! what `estimate` tells `flow explain` ([`AttemptTime`]), `async_trait`, JSON,
//! and the config reader the built-in kinds use, so `check` and `run` read a
//! config one way. `docs/nodes.md` ("Writing a node kind") walks through a
//! complete kind.
//!
//! A kind reads its run and never writes it: only the engine records results,
//! so whatever a kind returns, or however it fails, every other node's result
//! in the report is the engine's own. [`Context`] has no way to record:
//!
//! ```compile_fail,E0599
//! use flow_engine::kind::*;
//! use flow_engine::NodeStatus;
//!
//! struct Meddler;
//!
//! #[async_trait]
//! impl NodeKind for Meddler {
//!     async fn run(&self, call: NodeCall) -> Result<Value, NodeError> {
//!         // error[E0599]: no method named `record` found for struct `Context`
//!         call.context.record(0, Settled::new(NodeStatus::Failed, Value::Null, None));
//!         Ok(Value::Null)
//!     }
//! }
//! ```

pub use flow_core::{
    AttemptTime, ConfigProblem, Context, NodeCall, NodeError, NodeKind, Settled, async_trait, did_you_mean, join_path,
};
pub use flow_nodes::config::{ConfigReader, ReadMode, config_error, is_template, unknown_fields};
pub use serde_json::{Map, Value, json};
