//! `examples/aggregate-three-services.yaml` runs against services shaped like
//! `cargo run -p flow-nodes --example services`.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, RawQuery};
use axum::routing::{get, post};
use axum::{Json, Router};
use flow_engine::{Engine, RunOptions, RunStatus};
use serde_json::{Value, json};

use crate::support::{node, serve};

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/aggregate-three-services.yaml"
);

#[tokio::test]
async fn aggregate_three_services_runs_end_to_end() {
    let hooks = Arc::new(Mutex::new(Vec::new()));
    let h = hooks.clone();
    let base = serve(
        Router::new()
            .route(
                "/users/{id}",
                get(|Path(id): Path<u64>| async move {
                    Json(json!({ "id": id, "name": format!("User {id}"), "email": format!("user{id}@example.test") }))
                }),
            )
            .route(
                "/orders",
                get(|RawQuery(q): RawQuery| async move {
                    assert_eq!(q.as_deref(), Some("user_id=42"));
                    Json(json!({ "orders": [{ "id": 1, "item": "widget", "qty": 2 }] }))
                }),
            )
            .route(
                "/inventory",
                get(|| async { Json(json!({ "items": { "widget": 3 } })) }),
            )
            .route(
                "/hook",
                post(move |Json(body): Json<Value>| async move {
                    h.lock().unwrap().push(body);
                    Json(json!({ "ok": true }))
                }),
            ),
    )
    .await;
    let engine = Engine::new();
    let workflow = engine.load(EXAMPLE).unwrap();
    let report = engine
        .run(
            &workflow,
            RunOptions::new().input(json!({ "base_url": base, "user_id": 42 })),
        )
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    assert_eq!(node(&report, "check").output, json!({ "valid": true }));
    assert_eq!(
        *hooks.lock().unwrap(),
        [json!({ "text": "User 42 has 1 orders", "username": "flow" })]
    );
}
