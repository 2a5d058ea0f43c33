//! Signals through the API: `POST /api/v1/runs/{id}/signals/{name}` reaches a
//! run waiting in `flow serve`; unknown runs, ended runs and payloads the
//! waiting node's schema refuses are problems.

use serde_json::json;

use crate::support::{Dirs, Flow};

const APPROVAL: &str = r#"name: approval
nodes:
  - id: approve
    kind: signal
    config:
      name: approval
      schema: { type: object, required: [approved], properties: { approved: { type: boolean } } }
  - { id: after, kind: transform, config: { output: "{{ nodes.approve.output }}" } }
edges: [{ from: approve, to: after }]
"#;

#[tokio::test]
async fn a_signal_sent_through_the_api_reaches_its_run() {
    let dirs = Dirs::with(&[("approval.yaml", APPROVAL)]);
    let flow = Flow::start(&dirs);
    let started = flow.submit("approval", "", &json!({})).await;
    let id = started["run_id"].as_str().unwrap_or_default().to_owned();
    let path = format!("/api/v1/runs/{id}/signals/approval");

    let refused = flow.post(&path, &json!({ "approved": "yes" })).await;
    assert!(refused.problem(422).contains("schema of node `approve`"), "{refused:?}");
    flow.post("/api/v1/runs/nope/signals/approval", &json!({}))
        .await
        .problem(404);
    let bad_name = flow.post(&format!("/api/v1/runs/{id}/signals/a%07b"), &json!({})).await;
    assert!(bad_name.problem(422).contains("control characters"), "{bad_name:?}");

    let sent = flow.post(&path, &json!({ "approved": true })).await;
    assert_eq!(sent.status, 202, "{sent:?}");
    let body = sent.json();
    assert_eq!(
        (body["run_id"].as_str(), body["signal"].as_str()),
        (Some(id.as_str()), Some("approval"))
    );
    assert!(body["id"].as_u64().is_some_and(|n| n >= 1), "{body}");
    let report = flow.wait_status(&id, "succeeded").await;
    assert_eq!(
        report["nodes"]["after"]["output"],
        json!({ "approved": true }),
        "{report}"
    );
    let kinds: Vec<String> = flow.events(&id, None).await.into_iter().map(|e| e.event).collect();
    for kind in ["node_waiting", "signal_received"] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind}: {kinds:?}");
    }

    let late = flow.post(&path, &json!({ "approved": true })).await;
    assert!(late.problem(409).contains("has ended"), "{late:?}");
}
