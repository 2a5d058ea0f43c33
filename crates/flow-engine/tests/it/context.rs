//! The context through a run: input, outputs, statuses and errors, typed
//! rendering, and reading a node that has not run.

use flow_engine::strategy::StrategyKind;
use flow_engine::{RunOptions, RunStatus};
use serde_json::{Value, json};

use crate::support::{node, run_with, strategy};

/// Runs `source` (a probe, output `{id, attempt: 1}`, then a transform whose
/// `config.output` is `output`) and returns the transform's output.
async fn render(output: &str, input: Value) -> Result<Value, String> {
    let body = format!(
        "nodes:
  - {{ id: src, kind: probe }}
  - {{ id: my-src, kind: transform, config: {{ output: [1, 2] }} }}
  - {{ id: t, kind: transform, config: {{ output: {output} }} }}
edges: [{{ from: src, to: t }}, {{ from: my-src, to: t }}]"
    );
    let (report, _) = run_with(&body, RunOptions::new().input(input)).await;
    let t = node(&report, "t");
    match &t.error {
        None => Ok(t.output.clone()),
        Some(e) => Err(e.clone()),
    }
}

#[track_caller]
fn check(output: &str, expected: Value) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
    match rt.map(|rt| rt.block_on(render(output, json!({ "n": 2, "user": "ada", "tags": ["x"] })))) {
        Ok(Ok(value)) => assert_eq!(value, expected, "output {output}"),
        Ok(Err(e)) => panic!("output {output}: {e}"),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn templates_keep_json_types_or_render_strings() {
    check("'{{ input.n }}'", json!(2));
    check("'{{ input.n * 10 }}'", json!(20));
    check("'{{ input.tags }}'", json!(["x"]));
    check("'{{ nodes.src.output }}'", json!({ "id": "src", "attempt": 1 }));
    check("'{{ nodes[\"my-src\"].output }}'", json!([1, 2]));
    check("'{{ nodes.src.status }}'", json!("succeeded"));
    check("'{{ nodes.src.error }}'", Value::Null);
    check("'user {{ input.user }}'", json!("user ada"));
    check("'{{ input.n }}{{ input.n }}'", json!("22"));
    check(
        "{ a: '{{ input.n }}', b: ['{{ input.user }}', 'n={{ input.n }}'] }",
        json!({ "a": 2, "b": ["ada", "n=2"] }),
    );
    check("'{{ input.missing | default(\"none\") }}'", json!("none"));
}

#[tokio::test]
async fn a_missing_value_is_the_node_error() {
    let error = render("'{{ input.missing }}'", json!({})).await;
    assert!(
        error
            .as_ref()
            .is_err_and(|e| e.contains("`input.missing` is not defined")),
        "{error:?}"
    );
    let error = render("'x {{ input.missing }}'", json!({})).await;
    assert!(
        error
            .as_ref()
            .is_err_and(|e| e.contains("`input.missing` is not defined")),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_workflow_input_is_the_default_and_a_run_input_replaces_it() {
    let body = "input: { who: file }
nodes: [{ id: t, kind: transform, config: { output: '{{ input.who }}' } }]";
    let (report, _) = run_with(body, RunOptions::new()).await;
    assert_eq!(node(&report, "t").output, json!("file"));
    let (report, _) = run_with(body, RunOptions::new().input(json!({ "who": "run" }))).await;
    assert_eq!(node(&report, "t").output, json!("run"));
}

#[tokio::test]
async fn reading_a_node_that_has_not_run_is_that_nodes_error() {
    let body = "nodes:
  - { id: slow, kind: probe, config: { ms: 200 } }
  - { id: my-slow, kind: probe, config: { ms: 200 } }
  - { id: eager, kind: transform, config: { output: '{{ nodes.slow.output }}' } }
  - { id: eager-text, kind: transform, config: { output: 'got {{ nodes.slow.output.id }}' } }
  - { id: eager-dash, kind: transform, config: { output: '{{ nodes[\"my-slow\"].output }}' } }";
    let (report, _) = run_with(body, RunOptions::new().strategy(strategy(StrategyKind::AllSettled))).await;
    assert_eq!(report.status, RunStatus::Failed);
    for id in ["eager", "eager-text"] {
        let error = node(&report, id).error.clone().unwrap_or_default();
        assert_eq!(
            error,
            format!("config reads `nodes.slow`, but `slow` has not run yet (add an edge from `slow` to `{id}`)")
        );
    }
    let error = node(&report, "eager-dash").error.clone().unwrap_or_default();
    assert!(error.contains("`my-slow` has not run yet"), "{error}");
    assert_eq!(node(&report, "slow").status, flow_engine::NodeStatus::Succeeded);
}
