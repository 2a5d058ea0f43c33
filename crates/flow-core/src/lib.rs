//! The workflow model of **flow**: the file format, validation into an indexed
//! graph, templates, the report, and the run's bookkeeping as a pure state machine.
//!
//! This crate does no I/O beyond reading a file you name, and has no async runtime:
//! the engine (`flow-engine`) drives it. Use it alone to validate workflow files, to
//! inspect a graph, or to build your own executor.
//!
//! ```
//! use flow_core::{Format, Limits, Registry, RunState, Workflow};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # #[derive(Debug)] struct Noop;
//! # #[async_trait::async_trait]
//! # impl flow_core::NodeKind for Noop {
//! #     async fn run(&self, _: flow_core::NodeCall) -> Result<serde_json::Value, flow_core::NodeError> {
//! #         Ok(serde_json::Value::Null)
//! #     }
//! # }
//! let mut kinds = Registry::new();
//! kinds.register("noop", Noop);
//! let yaml = r#"
//! name: diamond
//! nodes:
//!   - { id: a, kind: noop }
//!   - { id: b, kind: noop }
//!   - { id: c, kind: noop }
//!   - { id: d, kind: noop }
//! edges:
//!   - { from: a, to: b }
//!   - { from: a, to: c }
//!   - { from: b, to: d }
//!   - { from: c, to: d }
//! "#;
//! let workflow = Workflow::from_str(yaml, Format::Yaml, &kinds, &Limits::default())?;
//! assert_eq!(workflow.levels().len(), 3); // a | b c | d
//!
//! let mut run = RunState::new(&workflow);
//! assert_eq!(run.initial(), vec![0]); // only `a` can start
//!
//! let bad = Workflow::from_str("name: x\nnodes: [{ id: a, kind: nop }]", Format::Yaml, &kinds, &Limits::default());
//! assert!(bad.unwrap_err().to_string().contains("did you mean `noop`?"));
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod context;
mod error;
mod load;
mod node;
mod plan;
mod record;
mod report;
mod run;
mod spec;
mod template;
mod wait;
mod workflow;

pub use context::{Context, ContextWriter, Settled};
pub use error::{Error, Problem, Result, did_you_mean, join_path, panic_message};
pub use load::{Format, Limits, parse_str, read_file};
pub use node::{ChildRuns, ConfigProblem, NodeCall, NodeError, NodeKind, Registry, StrategyCheck};
pub use plan::{AttemptTime, Bounds, Estimate, Limit, Pace, Plan};
pub use record::{InFlight, Record, Recovered, UnitKey, document_hash, document_of};
pub use report::{
    AttemptReport, ItemCounts, ItemRun, NodeReport, NodeReports, NodeStatus, Parent, Report, RunStatus, round_ms,
};
pub use run::{Phase, RunState, Transition};
pub use spec::{
    EdgeSpec, KeyedLimit, LimitSpec, LimitUse, NodeSpec, RetrySpec, StrategySpec, Tolerance, Trigger, WorkflowSpec,
};
pub use template::{Expr, References, TemplateError, ValueTemplate};
pub use wait::{Waiting, Waits, rfc3339};
pub use workflow::{Edge, ForEach, LimitScope, ListPath, Node, NodeLimit, RetryPolicy, Workflow, depth};

/// Re-exported so node kinds can be written without naming the crate version.
pub use async_trait::async_trait;
