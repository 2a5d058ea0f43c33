//! Three small services and a webhook sink, for `examples/aggregate-three-services.yaml`.
//!
//! ```sh
//! cargo run -p flow-nodes --example services          # 127.0.0.1:8080
//! cargo run -p flow-nodes --example services -- 9000  # another port
//! ```
//!
//! - `GET /users/{id}`: a user (`404` for id 0 or above 1000);
//! - `GET /orders?user_id=ID`: the user's orders;
//! - `GET /inventory`: stock per item;
//! - `POST /hook`: a webhook sink that prints what it receives.
//!
//! Each GET takes about 200 ms, so running them side by side shows.
//!
//! The test of the docs' commands (flow-cli's `tests/serve/docs.rs`) serves
//! [`app`] itself, to run the example workflow as the docs say.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

const LATENCY: Duration = Duration::from_millis(200);

async fn user(Path(id): Path<u64>) -> Response {
    tokio::time::sleep(LATENCY).await;
    if id == 0 || id > 1000 {
        return (StatusCode::NOT_FOUND, Json(json!({ "error": format!("no user {id}") }))).into_response();
    }
    Json(json!({ "id": id, "name": format!("User {id}"), "email": format!("user{id}@example.test") })).into_response()
}

async fn orders(Query(query): Query<HashMap<String, String>>) -> Response {
    tokio::time::sleep(LATENCY).await;
    let Some(user_id) = query.get("user_id").and_then(|id| id.parse::<u64>().ok()) else {
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": "user_id is required" }))).into_response();
    };
    Json(json!({
        "user_id": user_id,
        "orders": [
            { "id": user_id * 10 + 1, "item": "widget", "qty": 2 },
            { "id": user_id * 10 + 2, "item": "gadget", "qty": 1 }
        ]
    }))
    .into_response()
}

async fn inventory() -> Json<Value> {
    tokio::time::sleep(LATENCY).await;
    Json(json!({ "items": { "widget": 40, "gadget": 0, "doohickey": 7 } }))
}

async fn hook(Json(body): Json<Value>) -> Json<Value> {
    println!("/hook received: {body}");
    Json(json!({ "ok": true }))
}

/// The three services and the webhook sink.
pub fn app() -> Router {
    Router::new()
        .route("/users/{id}", get(user))
        .route("/orders", get(orders))
        .route("/inventory", get(inventory))
        .route("/hook", post(hook))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = match std::env::args().nth(1) {
        Some(arg) => arg.parse().map_err(|e| format!("port `{arg}`: {e}"))?,
        None => 8080,
    };
    let app = app();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!(
        "serving /users/{{id}}, /orders, /inventory and POST /hook on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, app).await?;
    Ok(())
}
