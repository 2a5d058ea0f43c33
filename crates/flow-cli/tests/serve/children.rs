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
