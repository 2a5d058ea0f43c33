//! The kinds used on their own, without an engine, as an embedder would.
#![cfg(feature = "http")]
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use axum::routing::{get, post};
use axum::{Json, Router};
use flow_nodes::{
    Channel, Http, HttpConfig, Method, Notify, NotifyConfig, ResponseMode, StatusPattern, WebhookChannel, registry,
};
use serde_json::{Value, json};

mod idempotency;

/// Serves `router` on a free port of 127.0.0.1; its base URL.
pub(crate) async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn http_runs_without_an_engine() {
    let base = serve(
        Router::new()
            .route("/item", get(|| async { Json(json!({ "id": 1 })) }))
            .route("/echo", post(|Json(body): Json<Value>| async move { Json(body) })),
    )
    .await;
    let http = Http::new();

    let response = http.run(&HttpConfig::get(format!("{base}/item"))).await.unwrap();
    assert_eq!((response.status, response.body.clone()), (200, json!({ "id": 1 })));

    let mut post = HttpConfig::get(format!("{base}/echo"));
    post.method = Method::POST;
    post.body = Some(json!({ "a": [1, 2] }));
    post.response = ResponseMode::Json;
    assert_eq!(http.run(&post).await.unwrap().body, json!({ "a": [1, 2] }));

    let mut strict = HttpConfig::get(format!("{base}/missing"));
    strict.expect_status = vec![StatusPattern::Code(200)];
    let err = http.run(&strict).await.unwrap_err();
    assert!(err.is_retryable());
    assert!(
        err.message()
            .starts_with("unexpected status 404 Not Found (expect_status: 200)"),
        "{err}"
    );
}

#[tokio::test]
async fn notify_runs_without_an_engine() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let base = serve(Router::new().route(
        "/hook",
        post(move |Json(body): Json<Value>| async move {
            g.lock().unwrap().push(body);
            "ok"
        }),
    ))
    .await;
    let config = NotifyConfig::new(
        Channel::Webhook(WebhookChannel::default()),
        "hello",
        vec![format!("{base}/hook"), format!("{base}/hook")],
    );
    let deliveries = Notify::with_http(&Http::new()).run(&config).await.unwrap();
    assert!(deliveries.iter().all(|d| d.ok && d.status == Some(json!(200))));
    assert_eq!(
        *got.lock().unwrap(),
        [json!({ "text": "hello" }), json!({ "text": "hello" })]
    );
}

#[test]
fn the_registry_has_every_builtin_kind() {
    assert_eq!(
        registry().names(),
        [
            "delay",
            "fail",
            "http",
            "noop",
            "notify",
            "signal",
            "transform",
            "validate",
            "wait"
        ]
    );
}
