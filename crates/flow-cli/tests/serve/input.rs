//! Bad input stays outside the journal: NUL bytes and control characters in
//! run ids, filters, cursors and workflow names, and an input nested deeper
//! than `--max-depth`, are 4xx problems on SQLite and on PostgreSQL, never a
//! database error.

use serde_json::{Value, json};

use crate::support::{Dirs, Flow, Schema, Start};

const OK: &str = "name: fine\nnodes:\n  - { id: a, kind: noop }\n";

/// 125 levels of `[[[...]]]` (under serde_json's own limit of 128, over 64).
fn deep() -> Value {
    let mut v = json!(1);
    for _ in 0..124 {
        v = json!([v]);
    }
    v
}

async fn refuses_bad_input(flow: &Flow) {
    // A run id with a NUL byte names no run.
    flow.get("/api/v1/runs/a%00b").await.problem(404);
    flow.get("/api/v1/runs/a%00b/events").await.problem(404);
    // A filter or a cursor with one is the client's mistake.
    let detail = flow.get("/api/v1/runs?workflow=a%00b").await.problem(422);
    assert!(detail.contains("workflow"), "{detail}");
    flow.get("/api/v1/runs?cursor=1_a%00b").await.problem(422);
    // An input deeper than --max-depth (64 by default) is refused, and nothing runs.
    let detail = flow
        .post("/api/v1/workflows/fine/runs", &json!({ "input": deep() }))
        .await
        .problem(422);
    assert!(detail.contains("max_depth"), "{detail}");
    let list = flow.get("/api/v1/runs").await.json();
    assert_eq!(list["runs"].as_array().map(Vec::len), Some(0), "{list}");
    // A name with a control character is an invalid file, listed with its problem.
    let list = flow.get("/api/v1/workflows").await.json();
    let bad = list
        .as_array()
        .and_then(|l| l.iter().find(|w| w["file"] == "bad.json"))
        .cloned();
    let bad = bad.unwrap_or_else(|| panic!("bad.json listed: {list}"));
    assert_eq!(bad["valid"], false, "{bad}");
    assert!(bad["problems"].to_string().contains("control characters"), "{bad}");
    // The server is well after all that: a good run goes through.
    let report = flow.run_to_end("fine", &json!({})).await;
    assert_eq!(report["status"], "succeeded", "{report}");
}

fn dirs() -> Dirs {
    Dirs::with(&[
        ("fine.yaml", OK),
        (
            "bad.json",
            r#"{"name": "bad\u0000name", "nodes": [{"id": "a", "kind": "noop"}]}"#,
        ),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_client_error_on_sqlite() {
    let dirs = dirs();
    let flow = Flow::start(&dirs);
    refuses_bad_input(&flow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_client_error_on_postgres() {
    let (url, _schema) = Schema::fresh("t_serve_input").await;
    let dirs = dirs();
    let flow = Flow::start_with(
        &dirs,
        Start {
            journal: Some(&url),
            ..Start::default()
        },
    );
    refuses_bad_input(&flow).await;
}
