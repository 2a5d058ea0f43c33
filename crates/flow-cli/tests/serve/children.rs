//! Sub-workflows through `flow serve`: a parent submitted over the API runs a
//! child of the server's folder; the child is listed with its parent, and the
//! parent's entry names the child.

use serde_json::json;

use crate::support::{Dirs, Flow};

const CHILD: &str = "name: child
input: { n: 1 }
nodes:
  - { id: double, kind: transform, config: { output: '{{ input.n * 2 }}' } }
output: { doubled: '{{ nodes.double.output }}' }
";

const PARENT: &str = "name: parent
input: { items: [1, 2, 3] }
nodes:
  - id: each
    kind: workflow
    for_each: '{{ input.items }}'
    config: { workflow: child, input: { n: '{{ item }}' } }
output: '{{ nodes.each.output | map(attribute=\"doubled\") | list }}'
";

#[tokio::test]
async fn a_parent_submitted_over_the_api_runs_children_listed_with_their_parent() {
    let dirs = Dirs::with(&[("child.yaml", CHILD), ("parent.yaml", PARENT)]);
    let flow = Flow::start(&dirs);
    let report = flow.run_to_end("parent", &json!({})).await;
    assert_eq!(report["status"], "succeeded", "{report}");
    assert_eq!(report["output"], json!([2, 4, 6]), "{report}");
    let parent = report["run_id"].as_str().unwrap_or_default().to_owned();
    let children: Vec<String> = report["nodes"]["each"]["item_runs"]
        .as_array()
        .map(|runs| {
            runs.iter()
                .filter_map(|r| r["child_run_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(children.len(), 3, "{report}");

    let list = flow.get("/api/v1/runs?workflow=child").await.json();
    let rows = list["runs"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 3, "{list}");
    for row in &rows {
        assert_eq!(row["parent"]["run_id"], parent.as_str(), "{row}");
        assert_eq!(row["parent"]["node"], "each", "{row}");
        assert!(children.iter().any(|c| row["run_id"] == c.as_str()), "{row}");
    }
    let top = flow.get("/api/v1/runs?top_level=true").await.json();
    let top = top["runs"].as_array().cloned().unwrap_or_default();
    assert!(top.len() == 1 && top[0]["run_id"] == parent.as_str(), "{top:?}");
    let bad = flow.get("/api/v1/runs?top_level=yes").await;
    assert_eq!(bad.status, 400, "{bad:?}");
    let child = flow.get(&format!("/api/v1/runs/{}", children[1])).await.json();
    assert_eq!(child["parent"]["item"], 1, "{child}");
    assert_eq!(child["output"], json!({ "doubled": 4 }), "{child}");

    // The page links the parent to each child and the child to its parent.
    let page = flow.get(&format!("/runs/{parent}")).await;
    assert_eq!(page.status, 200, "{page:?}");
    for c in &children {
        assert!(
            page.text.contains(&format!(r#"class="child-run" href="/runs/{c}""#)),
            "{}",
            page.text
        );
    }
    let page = flow.get(&format!("/runs/{}", children[0])).await;
    assert!(
        page.text.contains(&format!(r#"id="parent-run" href="/runs/{parent}""#)),
        "{}",
        page.text
    );
}

const SLOW_CHILD: &str = "name: slow
nodes:
  - { id: nap, kind: delay, config: { ms: 20000 } }
";

const GATED_CHILD: &str = "name: gated
nodes:
  - { id: go, kind: signal, config: { name: go } }
output: '{{ nodes.go.output.answer }}'
";

const CALLER: &str = "name: caller
input: { child: slow }
nodes:
  - { id: sub, kind: workflow, config: { workflow: '{{ input.child }}' } }
output: '{{ nodes.sub.output }}'
";

/// The journals the tests below run on: the folder's SQLite file, and a
/// PostgreSQL schema of their own.
async fn on_each_journal(test: impl AsyncFn(&Flow)) {
    let dirs = Dirs::with(&[
        ("slow.yaml", SLOW_CHILD),
        ("gated.yaml", GATED_CHILD),
        ("caller.yaml", CALLER),
    ]);
    test(&Flow::start(&dirs)).await;
    let (url, _schema) = crate::support::Schema::fresh("children").await;
    let dirs = Dirs::with(&[
        ("slow.yaml", SLOW_CHILD),
        ("gated.yaml", GATED_CHILD),
        ("caller.yaml", CALLER),
    ]);
    let flow = Flow::start_with(
        &dirs,
        crate::support::Start {
            journal: Some(&url),
            ..crate::support::Start::default()
        },
    );
    test(&flow).await;
}

/// The child run of `parent`'s node `sub`, once it has one.
async fn child_of(flow: &Flow, parent: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let report = flow.report(parent).await;
        if let Some(child) = report["nodes"]["sub"]["child_run_id"].as_str() {
            return child.to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "no child run: {report}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn cancelling_a_parent_over_the_api_cancels_its_child() {
    on_each_journal(async |flow: &Flow| {
        let started = flow
            .submit("caller", "", &json!({ "input": { "child": "slow" } }))
            .await;
        let parent = started["run_id"].as_str().unwrap_or_default().to_owned();
        let child = child_of(flow, &parent).await;
        flow.wait_status(&child, "running").await;
        let asked = std::time::Instant::now();
        let cancel = flow.post_empty(&format!("/api/v1/runs/{parent}/cancel")).await;
        assert_eq!(cancel.status, 202, "{cancel:?}");
        flow.wait_status(&parent, "cancelled").await;
        let report = flow.wait_status(&child, "cancelled").await;
        assert_eq!(report["nodes"]["nap"]["status"], "cancelled", "{report}");
        assert!(
            asked.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            asked.elapsed()
        );
    })
    .await;
}

#[tokio::test]
async fn a_parent_parks_while_its_child_waits_and_wakes_when_the_child_ends() {
    on_each_journal(async |flow: &Flow| {
        let started = flow
            .submit("caller", "", &json!({ "input": { "child": "gated" } }))
            .await;
        let parent = started["run_id"].as_str().unwrap_or_default().to_owned();
        let child = child_of(flow, &parent).await;
        // Both wait, parked: neither holds the server's memory.
        flow.wait_status(&child, "waiting").await;
        let report = flow.wait_status(&parent, "waiting").await;
        assert_eq!(
            report["nodes"]["sub"]["waiting_for"]["signal"], "flow.child:sub",
            "{report}"
        );
        let sent = flow
            .post(&format!("/api/v1/runs/{child}/signals/go"), &json!({ "answer": 42 }))
            .await;
        assert_eq!(sent.status, 202, "{sent:?}");
        let report = flow.wait_status(&parent, "succeeded").await;
        assert_eq!(report["output"], 42, "{report}");
        assert_eq!(report["nodes"]["sub"]["child_run_id"], child.as_str(), "{report}");
    })
    .await;
}
