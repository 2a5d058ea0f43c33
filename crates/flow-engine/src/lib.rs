//! The **flow** engine: runs workflows as fast as their graph allows, with the
//! strategy each workflow chooses.
//!
//! It ties together the model (`flow-core`), the strategies (`flow-strategy`) and
//! the node kinds (`flow-nodes`). Build an [`Engine`] once (it holds the node
//! registry and shared resources such as the HTTP connection pool), load workflows,
//! and run them any number of times, concurrently.
//!
//! ```
//! use flow_engine::{Engine, RunOptions, RunStatus};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::new();
//! let workflow = engine.parse_yaml(r#"
//! name: hello
//! nodes:
//!   - { id: a, kind: delay, config: { ms: 10 } }
//!   - { id: b, kind: delay, config: { ms: 10 } }
//!   - { id: merge, kind: transform, config: { output: { a: "{{ nodes.a.output.slept_ms }}", who: "{{ input.who }}" } } }
//! edges:
//!   - { from: a, to: merge }
//!   - { from: b, to: merge }
//! "#)?;
//! let report = engine.run(&workflow, RunOptions::new().input(serde_json::json!({ "who": "you" }))).await?;
//! assert_eq!(report.status, RunStatus::Succeeded);
//! assert_eq!(report.node("merge").unwrap().output["who"], "you");
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod attempt;
mod child;
mod dispatch;
mod driver;
mod durable;
mod engine;
mod error;
mod event;
mod fact;
pub mod kind;
mod limit;
mod redact;
mod run;
mod waits;

pub use event::{Event, EventKind, EventReceiver, EventSender};
pub use flow_core::{
    self as core, Format, LimitSpec, Limits, NodeCall, NodeError, NodeKind, NodeReport, NodeStatus, Registry, Report,
    RunStatus, StrategySpec, Workflow,
};
pub use flow_strategy::{self as strategy, OptionProblem, Options, Strategy, StrategyFactory, StrategyRegistry};

pub use child::{Catalog, DEFAULT_MAX_DEPTH, FolderCatalog, RegisteredCatalog, WorkflowKind};
pub use dispatch::{Dispatcher, Notices, Quota, Slot, SlotGuard, Task};
pub use durable::{ResumeOptions, Resumed};
pub(crate) use engine::secrets;
pub use engine::{Engine, EngineBuilder, new_run_id, pace};
pub use error::{Error, Result, ResumeError};
pub use flow_journal as journal;
pub use run::{RunHandle, RunOptions};
pub use waits::Signals;

/// Compiles and runs the examples of `docs/nodes.md` ("Writing a node kind")
/// as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/nodes.md")]
pub struct NodesGuide;

/// Compiles and runs the examples of `docs/plugins.md` (a strategy kind named
/// from a workflow file) as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/plugins.md")]
pub struct PluginsGuide;
