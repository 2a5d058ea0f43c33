//! A kind reads the run; only the engine records it. Whatever a kind returns,
//! or however it fails, the report holds the engine's record of every other node.
//!
//! That a kind cannot even try to write is checked at compile time: see the
//! `compile_fail` example in `flow_engine::kind`'s docs (`Context` has no
//! `record`).

use flow_engine::core::{ContextWriter, Settled};
use flow_engine::kind::*;
use flow_engine::{Engine, NodeStatus, RunOptions, RunStatus};

/// `meddle`: reads node `victim`, then tries what a kind can to make it look
/// failed, and ends as `config.end` says: `ok`, `error` or `panic`.
struct Meddle;

#[async_trait]
impl NodeKind for Meddle {
    async fn run(&self, call: NodeCall) -> Result<Value, NodeError> {
        let context = &call.context;
        let victim = context.settled_by_id("victim").ok_or("the victim has not settled")?;
        assert_eq!(victim.status, NodeStatus::Succeeded);
        // A writer of its own makes a context of its own: the run's is untouched.
        let forged = ContextWriter::new(context.workflow().clone(), Value::Null, Default::default());
        let index = context.workflow().index_of("victim").ok_or("no victim")?;
        let fake = || Settled::new(NodeStatus::Failed, json!("forged"), Some("forged".into()));
        assert!(forged.record(index, fake()));
        assert_eq!(
            forged.context().settled(index).map(|s| s.status),
            Some(NodeStatus::Failed)
        );
        assert_eq!(context.settled(index).map(|s| s.status), Some(NodeStatus::Succeeded));
        // An output that claims things changes nothing either.
        let claim = json!({ "victim": { "status": "failed", "output": "forged" } });
        match call.config["end"].as_str() {
            Some("error") => Err(NodeError::permanent("victim failed (says the meddler)")),
            Some("panic") => panic!("the meddler panics after reading the victim"),
            _ => Ok(claim),
        }
    }
}

#[tokio::test]
async fn a_kind_cannot_change_another_nodes_result() {
    let yaml = r#"
name: t
strategy: { kind: all-settled }
nodes:
  - { id: victim, kind: transform, config: { output: { value: 7 } } }
  - { id: ok, kind: meddle, config: { end: ok } }
  - { id: error, kind: meddle, config: { end: error } }
  - { id: panic, kind: meddle, config: { end: panic } }
  - id: witness
    kind: transform
    config: { output: { status: "{{ nodes.victim.status }}", value: "{{ nodes.victim.output.value }}" } }
edges:
  - { from: victim, to: ok }
  - { from: victim, to: error }
  - { from: victim, to: panic }
  - { from: ok, to: witness }
"#;
    let engine = Engine::builder().register("meddle", Meddle).build();
    let wf = engine.parse_yaml(yaml).unwrap();
    let report = engine.run(&wf, RunOptions::new()).await.unwrap();

    let victim = report.node("victim").unwrap();
    assert_eq!(victim.status, NodeStatus::Succeeded);
    assert_eq!(victim.output, json!({ "value": 7 }));
    assert_eq!(victim.error, None);
    // Downstream templates read the engine's record too.
    assert_eq!(
        report.node("witness").unwrap().output,
        json!({ "status": "succeeded", "value": 7 })
    );
    // Each meddler's own result is its own, and nothing more.
    let ok = report.node("ok").unwrap();
    assert_eq!(ok.status, NodeStatus::Succeeded, "{:?}", ok.error);
    let error = report.node("error").unwrap();
    assert_eq!(error.status, NodeStatus::Failed);
    assert_eq!(error.error.as_deref(), Some("victim failed (says the meddler)"));
    let panicked = report.node("panic").unwrap();
    assert_eq!(panicked.status, NodeStatus::Failed);
    assert!(
        panicked.error.as_deref().unwrap_or("").contains("the meddler panics"),
        "{:?}",
        panicked.error
    );
    assert_eq!(report.status, RunStatus::Failed);
}
