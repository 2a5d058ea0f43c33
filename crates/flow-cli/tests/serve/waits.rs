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

const PARKED: &[(&str, &str)] = &[
    (
        "timer.yaml",
        "name: timer\nnodes:\n  - { id: first, kind: noop }\n  - { id: nap, kind: wait, config: { for: 3s } }\n  - { id: last, kind: noop }\nedges: [{ from: first, to: nap }, { from: nap, to: last }]\n",
    ),
    (
        "gate.yaml",
        "name: gate\nnodes:\n  - { id: first, kind: noop }\n  - { id: go, kind: signal, config: { name: go } }\nedges: [{ from: first, to: go }]\n",
    ),
];

/// How many times each node started, from the run's events.
async fn starts(flow: &Flow, id: &str) -> std::collections::BTreeMap<String, usize> {
    let mut starts = std::collections::BTreeMap::new();
    for event in flow.events(id, None).await {
        if event.event == "node_started" {
            let node = event.data["node"].as_str().unwrap_or_default().to_owned();
            *starts.entry(node).or_insert(0) += 1;
        }
    }
    starts
}

/// Runs that wait hold no process: parked in the journal, they survive a
/// SIGKILL of the server; restarted, it fires a timer that came due while it
/// was down, and delivers a signal sent after the restart. What ran before
/// the wait is not run again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_runs_survive_a_killed_server() {
    let dirs = Dirs::with(PARKED);
    let mut flow = Flow::start(&dirs);
    let timer = flow.submit("timer", "", &json!({})).await["run_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let gate = flow.submit("gate", "", &json!({})).await["run_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for id in [&timer, &gate] {
        let report = flow.wait_status(id, "waiting").await;
        let waiting: Vec<&str> = report["nodes"]
            .as_object()
            .map(|n| {
                n.iter()
                    .filter(|(_, v)| v["status"] == "waiting")
                    .map(|(k, _)| k.as_str())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(waiting.len(), 1, "{report}");
    }
    let timer_report = flow.report(&timer).await;
    assert!(
        timer_report["nodes"]["nap"]["waiting_for"]["until"].is_string(),
        "{timer_report}"
    );
    let listed = flow.get("/api/v1/runs?status=waiting").await.json();
    assert_eq!(listed["runs"].as_array().map_or(0, Vec::len), 2, "{listed}");
    let health = flow.get("/healthz").await.json();
    assert_eq!(health["runs_in_flight"], 0, "parked runs are held by no one: {health}");
    let metrics = flow.get("/metrics").await.text;
    assert!(metrics.contains("flow_runs_waiting 2"), "{metrics}");

    flow.kill();
    // The timer comes due while no server runs.
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    let flow = Flow::start(&dirs);
    let report = flow.wait_status(&timer, "succeeded").await;
    assert!(
        report["nodes"]["nap"]["output"]["waited_ms"].as_i64().unwrap_or(0) >= 2900,
        "{report}"
    );
    let sent = flow
        .post(&format!("/api/v1/runs/{gate}/signals/go"), &json!("now"))
        .await;
    assert_eq!(sent.status, 202, "{sent:?}");
    let report = flow.wait_status(&gate, "succeeded").await;
    assert_eq!(report["nodes"]["go"]["output"], "now", "{report}");
    for id in [&timer, &gate] {
        let starts = starts(&flow, id).await;
        assert_eq!(starts.get("first"), Some(&1), "{id}: {starts:?}");
    }
}

/// `flow run --detach` leaves a waiting run parked in the journal; a `flow
/// serve` on that journal wakes it when due and finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detached_run_is_woken_by_flow_serve() {
    let dirs = Dirs::with(PARKED);
    let out = crate::support::command()
        .arg("run")
        .arg(dirs.workflows.join("timer.yaml"))
        .arg("--journal")
        .arg(&dirs.journal)
        .args(["--detach", "--quiet", "--report", "-"])
        .output()
        .unwrap_or_else(|e| panic!("flow run: {e}"));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report["status"], "waiting", "{report}");
    let id = report["run_id"].as_str().unwrap_or_default().to_owned();
    let flow = Flow::start(&dirs);
    let report = flow.wait_status(&id, "succeeded").await;
    assert_eq!(report["nodes"]["last"]["status"], "succeeded", "{report}");
}

/// Two servers on one PostgreSQL journal: every parked run is woken by one
/// of them, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_wake_each_run_once() {
    let (url, _schema) = crate::support::Schema::fresh("t_serve_wake").await;
    let dirs = Dirs::with(PARKED);
    let start = || {
        Flow::start_with(
            &dirs,
            crate::support::Start {
                journal: Some(&url),
                ..crate::support::Start::default()
            },
        )
    };
    let (a, b) = (start(), start());
    let mut ids = Vec::new();
    for i in 0..12 {
        let server = if i % 2 == 0 { &a } else { &b };
        ids.push(
            server.submit("timer", "", &json!({})).await["run_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    for id in &ids {
        a.wait_status(id, "succeeded").await;
    }
    for id in &ids {
        let kinds: Vec<String> = a.events(id, None).await.into_iter().map(|e| e.event).collect();
        let count = |kind: &str| kinds.iter().filter(|k| *k == kind).count();
        assert_eq!(count("run_woken"), 1, "{id}: {kinds:?}");
        assert_eq!(count("run_finished"), 1, "{id}: {kinds:?}");
        let starts = starts(&a, id).await;
        assert_eq!(starts.get("first"), Some(&1), "{id}: {starts:?}");
        assert_eq!(starts.get("last"), Some(&1), "{id}: {starts:?}");
    }
}

/// Cancelling a parked run cancels it at once; its waiting node is `cancelled`.
#[tokio::test]
async fn a_waiting_run_is_cancelled_at_once() {
    let dirs = Dirs::with(PARKED);
    let flow = Flow::start(&dirs);
    let id = flow.submit("gate", "", &json!({})).await["run_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    flow.wait_status(&id, "waiting").await;
    let resp = flow.post_empty(&format!("/api/v1/runs/{id}/cancel")).await;
    assert_eq!(resp.status, 202, "{resp:?}");
    let report = flow.wait_status(&id, "cancelled").await;
    assert_eq!(report["nodes"]["go"]["status"], "cancelled", "{report}");
    assert_eq!(report["nodes"]["first"]["status"], "succeeded", "{report}");
    let late = flow.post(&format!("/api/v1/runs/{id}/signals/go"), &json!(1)).await;
    late.problem(409);
}

/// The run page's signal form, without JavaScript: form-encoded, with the
/// page's `csrf` value; a wrong value sends nothing.
#[tokio::test]
async fn the_signal_form_works_without_javascript() {
    let dirs = Dirs::with(PARKED);
    let flow = Flow::start(&dirs);
    let id = flow.submit("gate", "", &json!({})).await["run_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    flow.wait_status(&id, "waiting").await;
    let page = flow.get(&format!("/runs/{id}")).await;
    assert!(page.text.contains(r#"data-signal="go""#), "{}", page.text);
    let csrf = page
        .text
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned();
    let post = |fields: Vec<(&'static str, String)>| {
        crate::support::Resp::of(
            flow.request(reqwest::Method::POST, &format!("/runs/{id}/signals/go"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(crate::guard::form_encoded(&fields)),
        )
    };
    let wrong = post(vec![("payload", "1".to_owned()), ("csrf", "guess".to_owned())]).await;
    assert_eq!(wrong.status, 403, "{wrong:?}");
    let bad = post(vec![("payload", "{".to_owned()), ("csrf", csrf.clone())]).await;
    assert_eq!(bad.status, 422, "{bad:?}");
    let sent = post(vec![("payload", r#"{"by": "form"}"#.to_owned()), ("csrf", csrf)]).await;
    assert_eq!(sent.status, 303, "{sent:?}");
    assert_eq!(sent.header("location"), format!("/runs/{id}"));
    let report = flow.wait_status(&id, "succeeded").await;
    assert_eq!(report["nodes"]["go"]["output"], json!({ "by": "form" }), "{report}");
}
