//! The `notify` kind: webhooks to servers on 127.0.0.1, email to an SMTP sink.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use flow_engine::{NodeStatus, RunStatus};
use serde_json::{Value, json};

use crate::support::{error_of, in_child_with_env, node, run_yaml, serve, smtp_sink};

/// A webhook sink: `/ok/{name}` records the JSON it gets (after `delay_ms`),
/// `/fail/{name}` answers 500.
async fn hooks(delay_ms: u64) -> (String, Arc<Mutex<Vec<(String, Value)>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let r = received.clone();
    let base = serve(
        Router::new()
            .route(
                "/ok/{name}",
                post(move |Path(name): Path<String>, Json(body): Json<Value>| async move {
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                    r.lock().unwrap().push((name, body));
                    Json(json!({ "ok": true }))
                }),
            )
            .route(
                "/fail/{name}",
                post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "channel_is_archived").into_response() }),
            ),
    )
    .await;
    (base, received)
}

#[tokio::test]
async fn three_webhooks_one_failing_under_all_settled() {
    let (base, received) = hooks(150).await;
    let yaml = format!(
        r#"
name: t
strategy: {{ kind: all-settled }}
nodes:
  - id: strict
    kind: notify
    config:
      channel: webhook
      message: "deploy {{{{ input.version }}}} done"
      payload: {{ username: flow, icon_emoji: ":rocket:" }}
      recipients: ["{base}/ok/a", "{base}/fail/b", "{base}/ok/c"]
  - id: lenient
    kind: notify
    config:
      channel: webhook
      message: second
      recipients: ["{base}/ok/d", "{base}/fail/e", "{base}/ok/f"]
      min_success: 2
"#
    );
    let started = Instant::now();
    let report = run_yaml(&yaml, json!({ "version": "1.2.3" })).await;
    let elapsed = started.elapsed();

    // Without min_success one failure fails the node, and its error names it...
    let error = error_of(&report, "strict");
    assert!(
        error.starts_with("1 of 3 recipients failed (2 delivered, 3 needed)"),
        "{error}"
    );
    assert!(error.contains(&format!(
        "{base}/fail/b: status 500 Internal Server Error; body: channel_is_archived"
    )));
    assert!(!error.contains("/ok/"), "{error}");
    // ...but the others were still delivered.
    let got = received.lock().unwrap().clone();
    let mut names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["a", "c", "d", "f"]);
    let (_, body) = got.iter().find(|(n, _)| n == "a").unwrap();
    assert_eq!(
        *body,
        json!({ "text": "deploy 1.2.3 done", "username": "flow", "icon_emoji": ":rocket:" })
    );

    // min_success met: the node succeeds, and its output reports every recipient.
    let lenient = node(&report, "lenient");
    assert_eq!(lenient.status, NodeStatus::Succeeded);
    let out = lenient.output.as_array().unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(out[0]["recipient"], format!("{base}/ok/d"));
    assert_eq!(
        (out[0]["ok"].clone(), out[0]["status"].clone()),
        (json!(true), json!(200))
    );
    assert_eq!(out[1]["ok"], false);
    assert!(out[1]["error"].as_str().unwrap().contains("500"));
    assert!(out[1].get("status").is_none());
    assert!(out.iter().all(|d| d["duration_ms"].is_number()));

    // Deliveries ran side by side: two nodes of three 150 ms deliveries each.
    assert!(elapsed < Duration::from_millis(400), "took {elapsed:?}");
}

#[tokio::test]
async fn a_sequential_strategy_delivers_one_at_a_time() {
    let (base, received) = hooks(100).await;
    let yaml = format!(
        r#"
name: t
nodes:
  - id: n
    kind: notify
    config:
      channel: webhook
      message: hi
      strategy: sequential
      recipients: ["{base}/ok/1", "{base}/ok/2", "{base}/ok/3"]
"#
    );
    let started = Instant::now();
    let report = run_yaml(&yaml, Value::Null).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let order: Vec<String> = received.lock().unwrap().iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(order, ["1", "2", "3"]);
}

#[tokio::test]
async fn a_fail_fast_strategy_reports_cancelled_recipients() {
    let (base, _received) = hooks(300).await;
    let yaml = format!(
        r#"
name: t
nodes:
  - id: n
    kind: notify
    config:
      channel: webhook
      message: hi
      strategy: {{ kind: parallel }}
      recipients: ["{base}/ok/slow", "{base}/fail/fast"]
      min_success: 0
"#
    );
    let report = run_yaml(&yaml, Value::Null).await;
    let out = node(&report, "n").output.as_array().unwrap().clone();
    assert!(out[0]["error"].as_str().unwrap().starts_with("cancelled"), "{out:?}");
    assert!(out[1]["error"].as_str().unwrap().contains("500"), "{out:?}");
}

#[tokio::test]
async fn unreachable_webhooks_fail_with_the_reason() {
    let port = crate::support::closed_port().await;
    let yaml = format!(
        r#"
name: t
nodes:
  - id: n
    kind: notify
    config: {{ channel: webhook, message: hi, recipients: ["http://127.0.0.1:{port}/hook"] }}
"#
    );
    let error = error_of(&run_yaml(&yaml, Value::Null).await, "n");
    assert!(
        error.contains(&format!("http://127.0.0.1:{port}/hook: could not connect")),
        "{error}"
    );
}

#[tokio::test]
async fn the_log_channel_writes_through_tracing() {
    let yaml = r#"
name: t
nodes:
  - id: n
    kind: notify
    config: { channel: log, level: info, message: "hello {{ input.who }}", recipients: [ops, dev] }
"#;
    let report = run_yaml(yaml, json!({ "who": "team" })).await;
    let out = &node(&report, "n").output;
    assert_eq!(
        out[0],
        json!({ "recipient": "ops", "ok": true, "status": "logged", "duration_ms": out[0]["duration_ms"] })
    );
    assert_eq!(out[1]["recipient"], "dev");
}

const PASSWORD_VAR: &str = "FLOW_NODES_TEST_SMTP_PASSWORD_91C2";
const PASSWORD: &str = "smtp-pa55-91c2-do-not-leak";

#[tokio::test]
async fn email_reaches_the_smtp_sink_with_recipients_and_subject() {
    if !in_child_with_env(
        "notify::email_reaches_the_smtp_sink_with_recipients_and_subject",
        PASSWORD_VAR,
        PASSWORD,
    ) {
        return;
    }
    let (port, inbox) = smtp_sink().await;
    let yaml = format!(
        r#"
name: t
secrets: [{PASSWORD_VAR}]
nodes:
  - id: mail
    kind: notify
    config:
      channel: email
      smtp_host: 127.0.0.1
      smtp_port: {port}
      tls: none
      from: "Flow <flow@example.test>"
      subject: "Run {{{{ input.run }}}} finished"
      username: flow
      password: "{{{{ env.{PASSWORD_VAR} }}}}"
      message: "All {{{{ input.count }}}} checks passed."
      recipients: [ops@example.test, "Dev Team <dev@example.test>"]
"#
    );
    let report = run_yaml(&yaml, json!({ "run": 17, "count": 3 })).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    let out = &node(&report, "mail").output;
    assert_eq!(out[0]["status"], 250);
    assert_eq!(out[1]["recipient"], "Dev Team <dev@example.test>");

    let mut mails = inbox.lock().unwrap().clone();
    mails.sort_by(|a, b| a.to.cmp(&b.to));
    assert_eq!(mails.len(), 2, "one message per recipient");
    assert_eq!(mails[0].to, ["dev@example.test"]);
    assert_eq!(mails[1].to, ["ops@example.test"]);
    for mail in &mails {
        assert_eq!(mail.from, "flow@example.test");
        assert!(mail.data.contains("Subject: Run 17 finished"), "{}", mail.data);
        assert!(mail.data.contains("All 3 checks passed."), "{}", mail.data);
        assert_eq!(mail.auth.as_deref(), Some(format!("flow\0{PASSWORD}").as_str()));
    }
    assert!(!serde_json::to_string(&report).unwrap().contains(PASSWORD));
}

#[tokio::test]
async fn an_smtp_server_that_is_not_there_fails_the_delivery() {
    let port = crate::support::closed_port().await;
    let yaml = format!(
        r#"
name: t
nodes:
  - id: mail
    kind: notify
    config:
      channel: email
      smtp_host: 127.0.0.1
      smtp_port: {port}
      tls: none
      from: flow@example.test
      message: hi
      recipients: [ops@example.test]
"#
    );
    let error = error_of(&run_yaml(&yaml, Value::Null).await, "mail");
    assert!(error.contains("ops@example.test: SMTP:"), "{error}");
}
