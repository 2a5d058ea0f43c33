//! Node kinds and loaders shared by the tests.

use flow_core::{ConfigProblem, Format, Limits, NodeCall, NodeError, NodeKind, Registry, Workflow};
use serde_json::Value;

/// Does nothing.
pub struct Noop;

#[flow_core::async_trait]
impl NodeKind for Noop {
    async fn run(&self, _call: NodeCall) -> Result<Value, NodeError> {
        Ok(Value::Null)
    }
}

/// Needs `config.ms`, like the real `delay` kind.
pub struct Delay;

#[flow_core::async_trait]
impl NodeKind for Delay {
    fn check(&self, config: &Value) -> Vec<ConfigProblem> {
        match config.get("ms") {
            Some(Value::Number(_)) | Some(Value::String(_)) => Vec::new(),
            Some(_) => vec![ConfigProblem::new("ms", "must be a number")],
            None => vec![ConfigProblem::new("ms", "is required")],
        }
    }

    async fn run(&self, _call: NodeCall) -> Result<Value, NodeError> {
        Ok(Value::Null)
    }
}

pub fn registry() -> Registry {
    let mut kinds = Registry::new();
    kinds
        .register("noop", Noop)
        .register("delay", Delay)
        .register("transform", Noop);
    // The built-in strategy kinds, checked as the engine checks them.
    let strategies = flow_strategy::StrategyRegistry::builtin();
    for name in strategies.names() {
        let Some(factory) = strategies.get(name).cloned() else {
            continue;
        };
        let check: flow_core::StrategyCheck = std::sync::Arc::new(move |options| match factory.build(options) {
            Ok(_) => Vec::new(),
            Err(problems) => problems
                .into_iter()
                .map(|p| ConfigProblem::new(p.option, p.message))
                .collect(),
        });
        kinds.register_strategy(name, check);
    }
    kinds
}

pub fn parse(text: &str, format: Format) -> flow_core::Result<Workflow> {
    Workflow::from_str(text, format, &registry(), &Limits::default())
}

pub fn yaml(text: &str) -> Workflow {
    match parse(text, Format::Yaml) {
        Ok(wf) => wf,
        Err(e) => panic!("expected a valid workflow, got:\n{e}\n--- document:\n{text}"),
    }
}

/// The error a document gives; panics when it is valid.
pub fn error(text: &str, format: Format) -> flow_core::Error {
    match parse(text, format) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}
