//! A custom node kind in an embedding program: `lookup`, which reads a key from a
//! store the program owns, next to the built-in kinds.
//!
//! ```sh
//! cargo run -p flow-engine --example custom_kind
//! ```

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use flow_engine::core::{ConfigProblem, async_trait};
use flow_engine::{Engine, NodeCall, NodeError, NodeKind, RunOptions, RunStatus};
use serde_json::{Value, json};

/// `lookup`: `config.key` (a string) → the stored value; output `{ "key", "value" }`.
///
/// The kind is registered once and shared by every node of every run, so it is
/// where shared resources live: here, the store.
struct Lookup {
    store: Arc<RwLock<HashMap<String, Value>>>,
}

#[async_trait]
impl NodeKind for Lookup {
    /// At validation, on the config as written: report every problem, each with
    /// its path inside `config`. Strings may still be `{{ }}` templates, whose
    /// value is known only at run time, so they are not judged here.
    fn check(&self, config: &Value) -> Vec<ConfigProblem> {
        let mut problems = flow_nodes::unknown_fields(config, &["key", "default"]);
        match config.get("key") {
            None => problems.push(ConfigProblem::new("key", "is required")),
            Some(Value::String(_)) => {}
            Some(other) => problems.push(ConfigProblem::new("key", format!("must be a string, not {other}"))),
        }
        problems
    }

    /// One attempt, with the config rendered. `NodeError::new` may be retried by
    /// the node's `retry:` policy; `NodeError::permanent` is not.
    async fn run(&self, call: NodeCall) -> Result<Value, NodeError> {
        let key = call
            .config
            .get("key")
            .and_then(Value::as_str)
            .ok_or_else(|| NodeError::permanent("config.key: must be a string"))?;
        let store = self
            .store
            .read()
            .map_err(|_| NodeError::new("the store is unavailable"))?;
        match store.get(key).or_else(|| call.config.get("default")) {
            Some(value) => Ok(json!({ "key": key, "value": value })),
            None => Err(NodeError::permanent(format!("config.key: no entry `{key}`"))),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Arc::new(RwLock::new(HashMap::from([
        ("greeting".to_owned(), json!("hello")),
        ("audience".to_owned(), json!({ "name": "world" })),
    ])));
    let engine = Engine::builder()
        .register("lookup", Lookup { store: store.clone() })
        .build();

    // A workflow mixes the custom kind with built-in ones.
    let workflow = engine.parse_yaml(
        r#"
name: custom-kind
nodes:
  - { id: greeting, kind: lookup, config: { key: greeting } }
  - { id: audience, kind: lookup, config: { key: "{{ input.who }}" } }
  - { id: missing, kind: lookup, config: { key: colour, default: blue } }
  - id: sentence
    kind: transform
    config: { output: "{{ nodes.greeting.output.value }}, {{ nodes.audience.output.value.name }} ({{ nodes.missing.output.value }})" }
edges:
  - { from: greeting, to: sentence }
  - { from: audience, to: sentence }
  - { from: missing, to: sentence }
"#,
    )?;
    let report = engine
        .run(&workflow, RunOptions::new().input(json!({ "who": "audience" })))
        .await?;
    assert_eq!(report.status, RunStatus::Succeeded);
    let sentence = report.node("sentence").map(|n| n.output.clone()).unwrap_or_default();
    println!("{sentence}");

    // `check` runs at validation: a bad config is rejected before anything runs.
    let invalid = engine.parse_yaml("name: bad\nnodes:\n  - { id: l, kind: lookup, config: { key: 5, keys: x } }\n");
    if let Err(e) = invalid {
        println!("rejected as expected:\n{e}");
    }
    Ok(())
}
