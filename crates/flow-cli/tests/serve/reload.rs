//! Reloading the workflows folder (`POST /api/v1/workflows/reload`, SIGHUP):
//! a broken file is listed with its problems and cannot run; the valid ones
//! still run.

use std::time::Instant;

use serde_json::{Value, json};

use crate::support::{Dirs, Flow, PATIENCE, assert_problem};
use crate::workflows::{BROKEN, QUICK, steps};

fn entry<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|w| w["name"] == name)
}

#[tokio::test]
async fn reload_with_a_broken_file() {
    let dirs = Dirs::with(&[("quick.yaml", QUICK)]);
    let flow = Flow::start(&dirs);
    let list = flow.get("/api/v1/workflows").await.json();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");

    // A run under way keeps the workflow it started with.
    dirs.add("steps.yaml", &steps("steps", 300));
    dirs.add("broken.yaml", BROKEN);
    let resp = flow.post_empty("/api/v1/workflows/reload").await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let list = resp.json();
    assert_eq!(list, flow.get("/api/v1/workflows").await.json());
    let broken = entry(&list, "broken").unwrap_or_else(|| panic!("broken is not listed: {list}"));
    assert_eq!(broken["valid"], false, "{broken}");
    assert_eq!(broken["file"], "broken.yaml", "{broken}");
    // An invalid file's nodes are still counted, from the document.
    assert_eq!(broken["nodes"], 1, "{broken}");
    assert_eq!(broken["input"], Value::Null, "{broken}");
    let problems = broken["problems"].as_array().unwrap_or_else(|| panic!("{broken}"));
    let text = Value::Array(problems.clone()).to_string();
    assert!(text.contains("teleport"), "the problems name the unknown kind: {text}");
    assert!(text.contains("nowhere"), "the problems name the unknown node: {text}");
    for name in ["quick", "steps"] {
        let valid = entry(&list, name).unwrap_or_else(|| panic!("{name} is not listed: {list}"));
        assert_eq!(valid["valid"], true, "{valid}");
        assert_eq!(valid["problems"], json!([]), "{valid}");
    }

    let detail = flow
        .post("/api/v1/workflows/broken/runs", &json!({}))
        .await
        .problem(409);
    assert!(detail.contains("invalid") && detail.contains("teleport"), "{detail}");
    let detail = flow
        .post("/api/v1/workflows/broken/runs?wait=1", &json!({ "input": {} }))
        .await
        .problem(409);
    assert!(detail.contains("broken"), "{detail}");
    let report = flow.run_to_end("quick", &json!({})).await;
    assert_eq!(report["status"], "succeeded", "{report}");

    // SIGHUP: `steps` is broken now, `later` is new; a run of `steps` already
    // under way ends as it began.
    let under_way = flow.submit("steps", "", &json!({})).await;
    let under_way = under_way["run_id"].as_str().unwrap_or_default().to_owned();
    dirs.add("steps.yaml", "name: steps\nnodes: [ { id: x, kind: delay } ]\n");
    dirs.add(
        "later.json",
        r#"{"name": "later", "nodes": [{"id": "only", "kind": "noop"}]}"#,
    );
    dirs.add("ignored.txt", "not a workflow");
    flow.signal("HUP", 1);
    let started = Instant::now();
    let list = loop {
        let list = flow.get("/api/v1/workflows").await.json();
        if entry(&list, "later").is_some() {
            break list;
        }
        assert!(started.elapsed() < PATIENCE, "SIGHUP did not reload: {list}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let names: Vec<&str> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w["name"].as_str())
        .collect();
    assert_eq!(names, vec!["broken", "later", "quick", "steps"], "{list}");
    assert_eq!(
        entry(&list, "steps").map(|w| &w["valid"]),
        Some(&json!(false)),
        "{list}"
    );
    assert_eq!(entry(&list, "later").map(|w| &w["file"]), Some(&json!("later.json")));
    assert!(flow.stderr().contains("workflows reloaded"), "{}", flow.stderr());
    flow.post("/api/v1/workflows/steps/runs", &json!({})).await.problem(409);
    flow.post("/api/v1/workflows/broken/runs", &json!({}))
        .await
        .problem(409);
    let report = flow.run_to_end("later", &json!({})).await;
    assert_eq!(report["status"], "succeeded", "{report}");
    let report = flow.wait_status(&under_way, "succeeded").await;
    assert_eq!(report["nodes"]["two"]["output"], json!({ "slept_ms": 300 }), "{report}");

    // A folder that is gone: the reload fails, the workflows stay.
    let moved = dirs.workflows.with_extension("moved");
    std::fs::rename(&dirs.workflows, &moved).unwrap_or_else(|e| panic!("{e}"));
    let resp = flow.post_empty("/api/v1/workflows/reload").await;
    assert!(resp.status >= 400, "{resp:?}");
    assert_problem(resp.status, &resp.header("content-type"), &resp.text);
    std::fs::rename(&moved, &dirs.workflows).unwrap_or_else(|e| panic!("{e}"));
    let report = flow.run_to_end("quick", &json!({})).await;
    assert_eq!(report["status"], "succeeded", "{report}");
}

#[tokio::test]
async fn a_broken_file_at_start() {
    let dirs = Dirs::with(&[("quick.yaml", QUICK), ("broken.yml", BROKEN), ("unnamed.yaml", ": : :")]);
    let flow = Flow::start(&dirs);
    assert!(flow.stderr().contains("3 workflows, 2 invalid"), "{}", flow.stderr());
    let list = flow.get("/api/v1/workflows").await.json();
    let unnamed = entry(&list, "unnamed").unwrap_or_else(|| panic!("listed by its file name: {list}"));
    assert_eq!(unnamed["valid"], false);
    assert!(
        unnamed["problems"].as_array().is_some_and(|p| !p.is_empty()),
        "{unnamed}"
    );
    flow.post("/api/v1/workflows/unnamed/runs", &json!({}))
        .await
        .problem(409);
    let report = flow.run_to_end("quick", &json!({})).await;
    assert_eq!(report["status"], "succeeded", "{report}");
}
