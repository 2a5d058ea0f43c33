//! The `http` kind, through the engine, against servers on 127.0.0.1.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, RawQuery};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use flow_engine::{NodeStatus, RunStatus};
use serde_json::{Value, json};

use crate::support::{Hits, closed_port, error_of, in_child_with_env, node, run_yaml, serve};

async fn user(Path(id): Path<u64>) -> Json<Value> {
    Json(json!({ "id": id, "name": format!("user {id}") }))
}

#[tokio::test]
async fn get_json_succeeds() {
    let base = serve(Router::new().route("/users/{id}", get(user))).await;
    let report = run_yaml(
        &format!(
            r#"
name: t
nodes:
  - {{ id: u, kind: http, config: {{ url: "{base}/users/{{{{ input.id }}}}" }} }}
"#
        ),
        json!({ "id": 7 }),
    )
    .await;
    let out = &node(&report, "u").output;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    assert_eq!(out["status"], 200);
    assert_eq!(out["body"], json!({ "id": 7, "name": "user 7" }));
    assert_eq!(out["headers"]["content-type"], "application/json");
    assert!(out["duration_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{out}");
}

#[tokio::test]
async fn server_error_then_success_through_retry() {
    let hits = Hits::default();
    let counter = hits.clone();
    let base = serve(Router::new().route(
        "/flaky",
        get(move || async move {
            match counter.hit("/flaky") {
                1 | 2 => (StatusCode::INTERNAL_SERVER_ERROR, "database is down").into_response(),
                _ => Json(json!({ "ok": true })).into_response(),
            }
        }),
    ))
    .await;
    let report = run_yaml(
        &format!(
            r#"
name: t
nodes:
  - id: f
    kind: http
    config: {{ url: "{base}/flaky" }}
    retry: {{ max_attempts: 3, backoff_ms: 10 }}
"#
        ),
        Value::Null,
    )
    .await;
    let f = node(&report, "f");
    assert_eq!(f.status, NodeStatus::Succeeded, "{f:#?}");
    assert_eq!(f.attempts, 3);
    assert_eq!(f.output["body"]["ok"], true);
    let first = f.attempts_detail[0].error.as_deref().unwrap_or_default();
    assert!(
        first.contains("500 Internal Server Error") && first.contains("database is down"),
        "{first}"
    );
    assert_eq!(hits.get("/flaky"), 3);
}

#[tokio::test]
async fn unexpected_status_names_status_and_body_start() {
    let long = format!("no such user{}", "x".repeat(1000));
    let base = serve(Router::new().route("/missing", get(move || async move { (StatusCode::NOT_FOUND, long) }))).await;
    let yaml = format!(
        r#"
name: t
strategy: {{ kind: all-settled }}
nodes:
  - {{ id: plain, kind: http, config: {{ url: "{base}/missing" }} }}
  - {{ id: allowed, kind: http, config: {{ url: "{base}/missing", expect_status: [200, 404] }} }}
  - {{ id: classes, kind: http, config: {{ url: "{base}/missing", expect_status: ["2xx", "3xx"] }} }}
"#
    );
    let report = run_yaml(&yaml, Value::Null).await;
    let error = error_of(&report, "plain");
    assert!(error.contains("unexpected status 404 Not Found"), "{error}");
    assert!(error.contains("expect_status: 2xx"), "{error}");
    assert!(error.contains("no such user"), "{error}");
    let quoted = error.split("body: ").nth(1).unwrap_or_default();
    assert_eq!(quoted.len(), 200, "the body is quoted up to 200 bytes: {error}");
    assert_eq!(node(&report, "allowed").output["status"], 404);
    assert!(error_of(&report, "classes").contains("expect_status: 2xx, 3xx"));
}

#[tokio::test]
async fn request_timeout_is_a_retryable_failure() {
    let base = serve(Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            "late"
        }),
    ))
    .await;
    let started = Instant::now();
    let report = run_yaml(
        &format!(
            r#"
name: t
nodes:
  - id: s
    kind: http
    config: {{ url: "{base}/slow", timeout_ms: 150 }}
    retry: {{ max_attempts: 2, backoff_ms: 10 }}
"#
        ),
        Value::Null,
    )
    .await;
    let error = error_of(&report, "s");
    assert!(error.contains("timed out after 150 ms (config.timeout_ms)"), "{error}");
    assert_eq!(node(&report, "s").attempts, 2, "a timeout is retried");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn connection_refused_is_a_retryable_failure() {
    let port = closed_port().await;
    let report = run_yaml(
        &format!(
            r#"
name: t
nodes:
  - id: c
    kind: http
    config: {{ url: "http://127.0.0.1:{port}/" }}
    retry: {{ max_attempts: 2, backoff_ms: 10 }}
"#
        ),
        Value::Null,
    )
    .await;
    let error = error_of(&report, "c");
    assert!(error.starts_with("could not connect"), "{error}");
    assert!(error.to_lowercase().contains("refused"), "{error}");
    assert_eq!(node(&report, "c").attempts, 2);
}

#[tokio::test]
async fn redirects_are_followed_unless_follow_redirects_is_false() {
    let base = serve(
        Router::new()
            .route("/old", get(|| async { Redirect::temporary("/new") }))
            .route("/new", get(|| async { "arrived" }))
            .route("/loop", get(|| async { Redirect::temporary("/loop") })),
    )
    .await;
    let yaml = format!(
        r#"
name: t
strategy: {{ kind: all-settled }}
nodes:
  - {{ id: followed, kind: http, config: {{ url: "{base}/old" }} }}
  - {{ id: kept, kind: http, config: {{ url: "{base}/old", follow_redirects: false, expect_status: ["3xx"] }} }}
  - {{ id: refused, kind: http, config: {{ url: "{base}/old", follow_redirects: false }} }}
  - {{ id: looping, kind: http, config: {{ url: "{base}/loop" }} }}
"#
    );
    let report = run_yaml(&yaml, Value::Null).await;
    assert_eq!(node(&report, "followed").output["status"], 200);
    assert_eq!(node(&report, "followed").output["body"], "arrived");
    let kept = &node(&report, "kept").output;
    assert_eq!(kept["status"], 307);
    assert_eq!(kept["headers"]["location"], "/new");
    assert!(error_of(&report, "refused").contains("unexpected status 307"));
    let looping = error_of(&report, "looping");
    assert!(looping.contains("redirect") && looping.contains("10"), "{looping}");
}

#[tokio::test]
async fn a_body_over_the_cap_is_an_error_even_when_endless() {
    let base = serve(
        Router::new()
            .route("/big", get(|| async { "x".repeat(1 << 20) }))
            .route(
                "/endless",
                get(|| async {
                    // No Content-Length: the client must stop reading at the cap.
                    let chunks = futures::stream::repeat_with(|| Ok::<_, Infallible>(vec![b'x'; 64 * 1024]));
                    Body::from_stream(chunks)
                }),
            )
            .route("/small", get(|| async { "x".repeat(1000) })),
    )
    .await;
    let yaml = format!(
        r#"
name: t
strategy: {{ kind: all-settled }}
nodes:
  - {{ id: big, kind: http, config: {{ url: "{base}/big", max_body_bytes: 1000 }} }}
  - {{ id: endless, kind: http, config: {{ url: "{base}/endless", max_body_bytes: 5000000, timeout_ms: 20000 }} }}
  - {{ id: small, kind: http, config: {{ url: "{base}/small", max_body_bytes: 1000 }} }}
"#
    );
    let started = Instant::now();
    let report = run_yaml(&yaml, Value::Null).await;
    assert!(error_of(&report, "big").contains("larger than config.max_body_bytes (1000 bytes)"));
    assert!(error_of(&report, "endless").contains("larger than config.max_body_bytes (5000000 bytes)"));
    assert_eq!(node(&report, "small").output["body"].as_str().map(str::len), Some(1000));
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test]
async fn json_body_round_trip_and_text_bodies() {
    async fn echo(headers: HeaderMap, body: String) -> Response {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        Json(json!({ "content_type": content_type, "received": body })).into_response()
    }
    async fn echo_json(Json(body): Json<Value>) -> Json<Value> {
        Json(json!({ "echo": body }))
    }
    let base = serve(Router::new().route("/echo", post(echo)).route("/json", post(echo_json))).await;
    let yaml = format!(
        r#"
name: t
strategy: {{ kind: all-settled }}
nodes:
  - id: json
    kind: http
    config:
      method: post
      url: "{base}/json"
      body: {{ user: "{{{{ input.user }}}}", tags: [a, b], n: 1.5 }}
      response: json
  - id: text
    kind: http
    config: {{ method: POST, url: "{base}/echo", body: "plain words" }}
  - id: typed
    kind: http
    config:
      method: POST
      url: "{base}/echo"
      headers: {{ Content-Type: application/x-ndjson }}
      body: '{{"a":1}}'
  - id: not_json
    kind: http
    config: {{ method: POST, url: "{base}/echo", body: "x", response: text }}
"#
    );
    let report = run_yaml(&yaml, json!({ "user": { "id": 3 } })).await;
    assert_eq!(
        node(&report, "json").output["body"],
        json!({ "echo": { "user": { "id": 3 }, "tags": ["a", "b"], "n": 1.5 } })
    );
    let text = &node(&report, "text").output["body"];
    assert_eq!(text["received"], "plain words");
    assert_eq!(text["content_type"], "text/plain; charset=utf-8");
    assert_eq!(
        node(&report, "typed").output["body"]["content_type"],
        "application/x-ndjson"
    );
    assert!(
        node(&report, "not_json").output["body"].is_string(),
        "response: text keeps JSON as text"
    );
}

#[tokio::test]
async fn response_json_refuses_a_body_that_is_not_json() {
    let base = serve(Router::new().route("/html", get(|| async { "<html>hi</html>" }))).await;
    let report = run_yaml(
        &format!("name: t\nnodes:\n  - {{ id: h, kind: http, config: {{ url: \"{base}/html\", response: json }} }}\n"),
        Value::Null,
    )
    .await;
    let error = error_of(&report, "h");
    assert!(error.contains("not JSON (config.response is json)"), "{error}");
}

#[tokio::test]
async fn query_parameters_are_appended() {
    let base = serve(Router::new().route(
        "/q",
        get(|RawQuery(query): RawQuery| async move { query.unwrap_or_default() }),
    ))
    .await;
    let yaml = format!(
        r#"
name: t
nodes:
  - id: q
    kind: http
    config: {{ url: "{base}/q?fixed=1", query: {{ user: "{{{{ input.user }}}}", tag: [a, "b c"], on: true }} }}
"#
    );
    let report = run_yaml(&yaml, json!({ "user": 42 })).await;
    assert_eq!(
        node(&report, "q").output["body"],
        "fixed=1&user=42&tag=a&tag=b+c&on=true"
    );
}

#[tokio::test]
async fn one_node_reads_another_nodes_response() {
    let hits = Hits::default();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (h, s) = (hits.clone(), seen.clone());
    let base = serve(Router::new().route("/users/{id}", get(user)).route(
        "/orders",
        get(move |RawQuery(query): RawQuery| async move {
            h.hit("/orders");
            s.lock().unwrap().push(query.unwrap_or_default());
            Json(json!({ "orders": [1, 2] }))
        }),
    ))
    .await;
    let yaml = format!(
        r#"
name: t
nodes:
  - {{ id: user, kind: http, config: {{ url: "{base}/users/9" }} }}
  - id: orders
    kind: http
    config:
      url: "{base}/orders"
      query: {{ user: "{{{{ nodes.user.output.body.id }}}}", name: "{{{{ nodes.user.output.body.name }}}}" }}
edges:
  - {{ from: user, to: orders, when: "nodes.user.output.status == 200" }}
"#
    );
    let report = run_yaml(&yaml, Value::Null).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    assert_eq!(node(&report, "orders").output["body"]["orders"], json!([1, 2]));
    assert_eq!(*seen.lock().unwrap(), ["user=9&name=user+9"]);
}

#[tokio::test]
async fn a_join_of_two_parallel_http_branches_sends_its_request_once() {
    let hits = Hits::default();
    let h = hits.clone();
    let base = serve(Router::new().route(
        "/{name}",
        get(move |Path(name): Path<String>| async move {
            h.hit(&name);
            if name != "join" {
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            Json(json!({ "name": name }))
        }),
    ))
    .await;
    let yaml = format!(
        r#"
name: t
nodes:
  - {{ id: a, kind: http, config: {{ url: "{base}/a" }} }}
  - {{ id: b, kind: http, config: {{ url: "{base}/b" }} }}
  - id: join
    kind: http
    config: {{ url: "{base}/join", query: {{ from: "{{{{ nodes.a.output.body.name }}}}{{{{ nodes.b.output.body.name }}}}" }} }}
edges:
  - {{ from: a, to: join }}
  - {{ from: b, to: join }}
"#
    );
    let started = Instant::now();
    let report = run_yaml(&yaml, Value::Null).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    assert_eq!(hits.get("join"), 1, "the join sends its request exactly once");
    assert_eq!((hits.get("a"), hits.get("b")), (1, 1));
    assert_eq!(node(&report, "join").attempts, 1);
    // Side by side: their attempts overlap in the report (wall time is for the
    // benchmarks; this machine may be busy).
    let (a, b) = (node(&report, "a"), node(&report, "b"));
    let overlap = a.started_ms < b.finished_ms && b.started_ms < a.finished_ms;
    assert!(overlap, "a and b ran side by side: {a:?} {b:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn connections_are_pooled_across_nodes_and_runs() {
    let peers = Arc::new(Mutex::new(HashSet::new()));
    let p = peers.clone();
    let base = serve(Router::new().route(
        "/ping",
        get(move |ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
            p.lock().unwrap().insert(peer);
            "pong"
        }),
    ))
    .await;
    let yaml = format!(
        r#"
name: t
strategy: {{ kind: sequential }}
nodes:
  - {{ id: a, kind: http, config: {{ url: "{base}/ping" }} }}
  - {{ id: b, kind: http, config: {{ url: "{base}/ping" }} }}
  - {{ id: c, kind: http, config: {{ url: "{base}/ping" }} }}
"#
    );
    let engine = flow_engine::Engine::new();
    let workflow = engine.parse_yaml(&yaml).unwrap();
    for _ in 0..2 {
        let report = engine.run(&workflow, flow_engine::RunOptions::new()).await.unwrap();
        assert_eq!(report.status, RunStatus::Succeeded);
    }
    assert_eq!(peers.lock().unwrap().len(), 1, "six requests, one connection");
}

#[tokio::test]
async fn retry_after_makes_the_next_attempt_wait() {
    let hits = Hits::default();
    let h = hits.clone();
    let base = serve(Router::new().route(
        "/busy",
        get(move || async move {
            if h.hit("/busy") == 1 {
                (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "1")], "busy").into_response()
            } else {
                "ok".into_response()
            }
        }),
    ))
    .await;
    let report = run_yaml(
        &format!(
            r#"
name: t
nodes:
  - id: b
    kind: http
    config: {{ url: "{base}/busy" }}
    retry: {{ max_attempts: 2, backoff_ms: 10, max_backoff_ms: 5000 }}
"#
        ),
        Value::Null,
    )
    .await;
    let b = node(&report, "b");
    assert_eq!(b.status, NodeStatus::Succeeded, "{b:#?}");
    let waited = b.attempts_detail[1].started_ms - b.attempts_detail[0].finished_ms;
    assert!(waited >= 950.0, "waited only {waited} ms despite Retry-After: 1");
}

const SECRET_VAR: &str = "FLOW_NODES_TEST_HTTP_SECRET_7F3A";
const SECRET: &str = "s3cr3t-token-7f3a-do-not-leak";

#[tokio::test]
async fn secrets_in_headers_reach_the_server_and_never_the_report() {
    if !in_child_with_env(
        "http::secrets_in_headers_reach_the_server_and_never_the_report",
        SECRET_VAR,
        SECRET,
    ) {
        return;
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let base = serve(Router::new().route(
        "/{status}",
        any(move |Path(status): Path<u16>, headers: HeaderMap| async move {
            let auth = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            s.lock().unwrap().push(auth.clone());
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            // A careless server echoes the credentials back, in the body and a header.
            (status, [("x-echo", auth.clone())], Json(json!({ "you_sent": auth }))).into_response()
        }),
    ))
    .await;
    let yaml = format!(
        r#"
name: t
strategy: {{ kind: all-settled }}
secrets: [{SECRET_VAR}]
nodes:
  - id: ok
    kind: http
    config:
      url: "{base}/200"
      headers: {{ Authorization: "Bearer {{{{ env.{SECRET_VAR} }}}}" }}
  - id: fails
    kind: http
    config:
      url: "{base}/500"
      headers: {{ Authorization: "Bearer {{{{ env.{SECRET_VAR} }}}}" }}
"#
    );
    let report = run_yaml(&yaml, Value::Null).await;
    let expected = format!("Bearer {SECRET}");
    assert_eq!(*seen.lock().unwrap(), [expected.clone(), expected]);
    assert_eq!(node(&report, "ok").output["status"], 200);
    assert!(error_of(&report, "fails").contains("500"));
    let text = serde_json::to_string(&report).unwrap();
    assert!(!text.contains(SECRET), "the secret leaked into the report: {text}");
    assert!(text.contains("Bearer ***"), "{text}");
}

#[tokio::test]
async fn a_body_that_stalls_times_out() {
    let base = serve(Router::new().route(
        "/stall",
        get(|| async {
            let first = futures::stream::once(async { Ok::<_, Infallible>(b"{\"partial\":".to_vec()) });
            let never = futures::stream::pending();
            Body::from_stream(futures::StreamExt::chain(first, never))
        }),
    ))
    .await;
    let started = Instant::now();
    let report = run_yaml(
        &format!(
            "name: t\nnodes:\n  - {{ id: s, kind: http, config: {{ url: \"{base}/stall\", timeout_ms: 300 }} }}\n"
        ),
        Value::Null,
    )
    .await;
    let error = error_of(&report, "s");
    assert!(error.contains("timed out after 300 ms"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn the_client_puts_no_cap_on_concurrency() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (n, p) = (now.clone(), peak.clone());
    let base = serve(Router::new().route(
        "/work",
        get(move || {
            let (n, p) = (n.clone(), p.clone());
            async move {
                let in_flight = n.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(in_flight, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                n.fetch_sub(1, Ordering::SeqCst);
                "done"
            }
        }),
    ))
    .await;
    let nodes: String = (0..16)
        .map(|i| format!("  - {{ id: n{i}, kind: http, config: {{ url: \"{base}/work\" }} }}\n"))
        .collect();
    let report = run_yaml(&format!("name: t\nnodes:\n{nodes}"), Value::Null).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(
        peak.load(Ordering::SeqCst),
        16,
        "every request of the parallel strategy was in flight at once"
    );
}

#[tokio::test]
async fn a_connection_reset_is_a_retryable_failure() {
    // A server that accepts, reads the request, and hangs up without answering.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await;
            drop(socket);
        }
    });
    let report = run_yaml(
        &format!(
            r#"
name: t
nodes:
  - id: r
    kind: http
    config: {{ url: "http://{addr}/" }}
    retry: {{ max_attempts: 2, backoff_ms: 10 }}
"#
        ),
        Value::Null,
    )
    .await;
    let error = error_of(&report, "r");
    assert!(error.starts_with("request failed"), "{error}");
    assert_eq!(node(&report, "r").attempts, 2);
}
