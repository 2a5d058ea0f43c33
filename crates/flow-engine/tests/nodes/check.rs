//! Config problems: found at validation, each naming its field and node; and bad
//! configs at run time are permanent errors naming the field. Nothing panics.

use flow_engine::{Engine, NodeStatus};
use serde_json::{Value, json};

use crate::support::{error_of, node, problems, run_yaml};

/// The problems of a one-node workflow of `kind` with `config` (YAML flow syntax).
fn check(kind: &str, config: &str) -> Vec<String> {
    problems(&format!(
        "name: t\nnodes:\n  - {{ id: n, kind: {kind}, config: {config} }}\n"
    ))
}

/// `check`, asserting the problems' places (under `nodes[0].config`) and that each names the node.
fn check_places(kind: &str, config: &str, places: &[&str]) {
    let found = check(kind, config);
    let got: Vec<&str> = found.iter().map(|p| p.split(": ").next().unwrap_or_default()).collect();
    let want: Vec<String> = places
        .iter()
        .map(|p| {
            if p.is_empty() {
                "nodes[0].config".to_owned()
            } else {
                format!("nodes[0].config.{p}")
            }
        })
        .collect();
    assert_eq!(got, want, "{kind} {config}: {found:#?}");
    assert!(found.iter().all(|p| p.ends_with("(node `n`)")), "{found:#?}");
}

#[test]
fn http_config_problems() {
    check_places("http", "{}", &["url"]);
    check_places("http", "{ url: 'http://x.test', method: FETCH }", &["method"]);
    check_places(
        "http",
        "{ url: 'http://x.test', expect_status: [200, 'abc', 700] }",
        &["expect_status[1]", "expect_status[2]"],
    );
    check_places(
        "http",
        "{ url: 'http://x.test', expect_status: [] }",
        &["expect_status"],
    );
    check_places("http", "{ url: 'not a url' }", &["url"]);
    check_places("http", "{ url: 'file:///etc/passwd' }", &["url"]);
    check_places(
        "http",
        "{ url: 'http://x.test', timeout_ms: 0, max_body_bytes: 0 }",
        &["timeout_ms", "max_body_bytes"],
    );
    check_places(
        "http",
        "{ url: 'http://x.test', response: xml, follow_redirects: maybe }",
        &["follow_redirects", "response"],
    );
    check_places("http", "{ url: 'http://x.test', headers: [a] }", &["headers"]);
    check_places(
        "http",
        "{ url: 'http://x.test', headers: { 'a b': c, ok: { no: 1 } } }",
        &["headers.ok", "headers[\"a b\"]"],
    );
    check_places("http", "{ url: 'http://x.test', query: { q: { x: 1 } } }", &["query.q"]);
    check_places("http", "{ url: 'http://x.test', timeout: 5 }", &["timeout"]);
    check_places("http", "5", &[""]);

    let found = check("http", "{ urll: 'http://x.test' }");
    assert!(found[0].contains("unknown field (did you mean `url`?)"), "{found:?}");
    assert!(found[1].starts_with("nodes[0].config.url: is required"), "{found:?}");
    let found = check("http", "{ url: 'http://x.test', method: FETCH }");
    assert!(
        found[0].contains("must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
        "{found:?}"
    );
}

#[test]
fn templates_are_judged_at_run_time_not_at_validation() {
    let yaml = r#"
name: t
nodes:
  - id: n
    kind: http
    config:
      method: "{{ input.method }}"
      url: "{{ input.url }}"
      timeout_ms: "{{ input.timeout }}"
      expect_status: ["{{ input.code }}", 200]
      follow_redirects: "{{ input.follow }}"
      max_body_bytes: "{{ input.max }}"
"#;
    assert!(Engine::new().parse_yaml(yaml).is_ok());
}

#[test]
fn notify_config_problems() {
    check_places("notify", "{}", &["channel", "message", "recipients"]);
    check_places("notify", "{ channel: sms, message: x, recipients: [a] }", &["channel"]);
    check_places(
        "notify",
        "{ channel: log, message: x, recipients: [] }",
        &["recipients"],
    );
    check_places("notify", "{ channel: log, message: x, recipients: a }", &["recipients"]);
    check_places(
        "notify",
        "{ channel: log, message: [x], recipients: [a] }",
        &["message"],
    );
    check_places(
        "notify",
        "{ channel: log, message: x, recipients: [a], min_success: 2 }",
        &["min_success"],
    );
    check_places(
        "notify",
        "{ channel: log, message: x, recipients: [a], strategy: fastest }",
        &["strategy"],
    );
    check_places(
        "notify",
        "{ channel: log, message: x, recipients: [a], strategy: { kind: parallel, max_concurrency: 0 } }",
        &["strategy.max_concurrency"],
    );
    check_places(
        "notify",
        "{ channel: log, message: x, recipients: [a], strategy: { kind: parallel, burst: 2 } }",
        &["strategy.burst"],
    );
    check_places(
        "notify",
        "{ channel: log, message: x, recipients: [a], strategy: { kind: rate-limited } }",
        &["strategy.per_second"],
    );
    check_places(
        "notify",
        "{ channel: log, message: x, recipients: [a], strategy: { knd: parallel } }",
        &["strategy"],
    );
    check_places(
        "notify",
        "{ channel: log, message: x, recipients: [a], smtp_host: h }",
        &["smtp_host"],
    );
    check_places(
        "notify",
        "{ channel: webhook, message: x, recipients: ['http://ok.test', 'nope'] }",
        &["recipients[1]"],
    );
    check_places(
        "notify",
        "{ channel: webhook, message: x, recipients: ['http://ok.test'], payload: [1] }",
        &["payload"],
    );
    check_places(
        "notify",
        "{ channel: email, message: x, recipients: ['bad address'], tls: ssl, smtp_port: 70000, from: nobody }",
        &["smtp_host", "smtp_port", "from", "tls", "recipients[0]"],
    );
    // Every channel's strategy kind is accepted, by name or as a section.
    for strategy in [
        "sequential",
        "parallel",
        "all-settled",
        "{ kind: rate-limited, per_second: 10, burst: 2 }",
    ] {
        assert!(
            Engine::new()
                .parse_yaml(&format!(
                    "name: t\nnodes:\n  - {{ id: n, kind: notify, config: {{ channel: log, message: x, recipients: [a], strategy: {strategy} }} }}\n"
                ))
                .is_ok(),
            "{strategy}"
        );
    }
}

#[test]
fn validate_config_problems() {
    check_places("validate", "{}", &["value", ""]);
    check_places("validate", "{ value: 1 }", &[""]);
    check_places("validate", "{ value: 1, schema: 5 }", &["schema"]);
    check_places("validate", "{ value: 1, rules: { expr: x } }", &["rules"]);
    check_places(
        "validate",
        "{ value: 1, rules: [5, { message: m }] }",
        &["rules[0]", "rules[1].expr"],
    );
    // The engine adds its own problem: it renders `{{ }}` before the kind sees it.
    let found = check("validate", "{ value: 1, rules: [{ expr: '{{ value > 1 }}' }] }");
    assert!(
        found[0].starts_with("nodes[0].config.rules[0].expr: is an expression: write it without `{{ }}`"),
        "{found:?}"
    );
}

/// Odd configs of every kind: each is rejected (or accepted) without a panic.
#[test]
fn no_config_makes_check_panic() {
    let odd = [
        "null",
        "5",
        "-1",
        "1.5",
        "true",
        "'text'",
        "'{{ input.x }}'",
        "[]",
        "[1, [2]]",
        "{}",
        "{ '': '' }",
        "{ url: [1] }",
        "{ url: { a: 1 } }",
        "{ method: 5 }",
        "{ recipients: [[], {}] }",
        "{ rules: [[]] }",
        "{ schema: { '$ref': 'http://127.0.0.1:9/x' } }",
        "{ schema: { '$ref': '#/nope' } }",
        "{ strategy: { kind: [] } }",
        "{ channel: 5 }",
        "{ expect_status: { a: 1 } }",
        "{ headers: { a: null } }",
        "{ value: null, rules: [{ expr: '' }] }",
        "{ ms: 'x' }",
        "{ output: null }",
        "{ message: {} }",
    ];
    for kind in ["http", "notify", "validate", "noop", "delay", "transform", "fail"] {
        for config in odd {
            let yaml = format!("name: t\nnodes:\n  - {{ id: n, kind: {kind}, config: {config} }}\n");
            let _ = Engine::new().parse_yaml(&yaml);
        }
    }
}

/// Configs that are only wrong once rendered fail the node at once (no retry can
/// fix them), naming the field.
#[tokio::test]
async fn bad_rendered_configs_are_permanent_errors_naming_the_field() {
    let yaml = r#"
name: t
strategy: { kind: all-settled }
nodes:
  - id: url
    kind: http
    config: { url: "{{ input.url }}" }
    retry: { max_attempts: 3, backoff_ms: 10 }
  - id: method
    kind: http
    config: { url: "http://127.0.0.1:9/", method: "{{ input.method }}" }
    retry: { max_attempts: 3, backoff_ms: 10 }
  - id: recipients
    kind: notify
    config: { channel: log, message: x, recipients: "{{ input.recipients }}" }
  - id: schema
    kind: validate
    config: { value: 1, schema: "{{ input.schema }}" }
"#;
    let report = run_yaml(
        yaml,
        json!({ "url": 5, "method": "FETCH", "recipients": "ops", "schema": { "type": "strin" } }),
    )
    .await;
    let url = error_of(&report, "url");
    assert!(url.starts_with("config.url: is not a valid URL"), "{url}");
    assert_eq!(node(&report, "url").attempts, 1);
    assert!(error_of(&report, "method").starts_with("config.method: must be one of GET"));
    assert!(error_of(&report, "recipients").starts_with("config.recipients: must be a list"));
    assert!(error_of(&report, "schema").starts_with("config.schema: invalid JSON Schema"));
    assert_eq!(node(&report, "schema").status, NodeStatus::Failed);
    let _: Value = serde_json::to_value(&report).unwrap();
}
