//! The `validate` kind: schemas and rules over another node's response.

use axum::routing::get;
use axum::{Json, Router};
use flow_engine::{NodeStatus, RunStatus};
use serde_json::{Value, json};

use crate::support::{error_of, node, problems, run_yaml, serve};

const SCHEMA: &str = r#"
        type: object
        required: [users]
        properties:
          users:
            type: array
            items:
              type: object
              required: [id, email]
              properties:
                id: { type: integer, minimum: 1 }
                email: { type: string, format: email }"#;

async fn users_server(users: Value) -> String {
    serve(Router::new().route("/users", get(move || async move { Json(json!({ "users": users })) }))).await
}

fn workflow(base: &str) -> String {
    format!(
        r#"
name: t
nodes:
  - {{ id: users, kind: http, config: {{ url: "{base}/users" }} }}
  - id: check
    kind: validate
    retry: {{ max_attempts: 3, backoff_ms: 10 }}
    config:
      value: "{{{{ nodes.users.output.body }}}}"
      schema:{SCHEMA}
      rules:
        - {{ expr: "value.users | length >= input.min_users", message: "too few users" }}
        - {{ expr: "nodes.users.output.status == 200" }}
        - {{ expr: "value.users | map(attribute='id') | unique | list | length == value.users | length", message: "ids repeat" }}
edges:
  - {{ from: users, to: check }}
"#
    )
}

#[tokio::test]
async fn every_violation_is_listed_with_its_pointer() {
    let base = users_server(json!([
        { "id": 1, "email": "a@example.test" },
        { "id": 0, "email": "not an address" },
        { "id": 1 },
    ]))
    .await;
    let report = run_yaml(&workflow(&base), json!({ "min_users": 5 })).await;
    let error = error_of(&report, "check");
    assert_eq!(
        node(&report, "check").attempts,
        1,
        "invalid data is a permanent failure"
    );
    assert!(error.starts_with("the value is invalid: 5 violations"), "{error}");
    for line in [
        "\n- /users/1/id: 0 is less than the minimum of 1",
        "\n- /users/1/email: \"not an address\" is not a \"email\"",
        "\n- /users/2: \"email\" is a required property",
        "\n- (root): too few users",
        "\n- (root): ids repeat",
    ] {
        assert!(error.contains(line), "missing {line:?} in:\n{error}");
    }
}

#[tokio::test]
async fn valid_data_passes() {
    let base =
        users_server(json!([{ "id": 1, "email": "a@example.test" }, { "id": 2, "email": "b@example.test" }])).await;
    let report = run_yaml(&workflow(&base), json!({ "min_users": 2 })).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    assert_eq!(node(&report, "check").output, json!({ "valid": true }));
}

#[tokio::test]
async fn a_rule_that_cannot_be_evaluated_is_a_violation() {
    let yaml = r#"
name: t
nodes:
  - id: v
    kind: validate
    config: { value: { a: 1 }, rules: [{ expr: "value.a.b.c > 1" }] }
"#;
    let report = run_yaml(yaml, Value::Null).await;
    let error = error_of(&report, "v");
    assert!(
        error.contains("rule `value.a.b.c > 1` could not be evaluated"),
        "{error}"
    );
    assert_eq!(node(&report, "v").status, NodeStatus::Failed);
}

#[test]
fn a_broken_schema_is_rejected_before_anything_runs() {
    let found = problems(
        r#"
name: t
nodes:
  - id: v
    kind: validate
    config: { value: 1, schema: { type: strin, minimum: "zero" } }
"#,
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("nodes[0].config.schema: invalid JSON Schema"),
        "{found:?}"
    );
    assert!(found[0].contains("(node `v`)"), "{found:?}");
}

#[test]
fn a_rule_that_does_not_compile_is_rejected_before_anything_runs() {
    let found = problems(
        r#"
name: t
nodes:
  - id: v
    kind: validate
    config: { value: 1, rules: [{ expr: "value >" }, { expr: "valeu > 1" }, { expr: "value > 0", mesage: x }] }
"#,
    );
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        found[0].starts_with("nodes[0].config.rules[0].expr: invalid expression"),
        "{found:?}"
    );
    assert!(
        found[1].starts_with("nodes[0].config.rules[1].expr: unknown variable `valeu`"),
        "{found:?}"
    );
    assert!(
        found[2].starts_with("nodes[0].config.rules[2].mesage: unknown field (did you mean `message`?)"),
        "{found:?}"
    );
}
