//! Templates: a lone `{{ expr }}` keeps its JSON type, anything else renders to a
//! string; reading what is not there is an error, never a panic.

use std::collections::BTreeMap;
use std::sync::Arc;

use flow_core::{Context, ContextWriter, Expr, NodeStatus, Settled, Workflow};
use serde_json::{Value, json};

use crate::support::yaml;

/// A context where `a` succeeded with output `{n: 2, list: [1, 2]}`, `b` failed
/// with "boom", and `later` has not run.
fn context(config: &str) -> (Arc<Workflow>, Context) {
    let text = format!(
        "name: t\nsecrets: [FLOW_IT_SECRET]\nnodes:\n  - {{ id: a, kind: noop }}\n  - {{ id: b, kind: noop }}\n  - {{ id: later, kind: noop }}\n  - {{ id: my-node, kind: noop }}\n  - {{ id: t, kind: transform, config: {config} }}\n"
    );
    let wf = Arc::new(yaml(&text));
    let input = json!({ "n": 3, "x": 1.5, "s": "hello", "flag": true, "list": [1, 2, 3], "obj": { "k": "v" } });
    let secrets = BTreeMap::from([("FLOW_IT_SECRET".to_owned(), "s3cret".to_owned())]);
    let writer = ContextWriter::new(wf.clone(), input, secrets);
    writer.record(
        0,
        Settled::new(NodeStatus::Succeeded, json!({ "n": 2, "list": [1, 2] }), None),
    );
    writer.record(
        1,
        Settled::new(NodeStatus::Failed, Value::Null, Some("boom".to_owned())),
    );
    writer.record(3, Settled::new(NodeStatus::Succeeded, json!("dashed"), None));
    (wf, writer.context().clone())
}

fn render(config: &str) -> Result<Value, String> {
    let (wf, ctx) = context(config);
    let t = &wf.nodes()[4];
    t.config().render(&ctx).map(|v| (*v).clone()).map_err(|e| e.to_string())
}

#[track_caller]
fn check(config: &str, expected: Value) {
    match render(config) {
        Ok(value) => assert_eq!(value, expected, "config {config}"),
        Err(e) => panic!("config {config}: {e}"),
    }
}

#[track_caller]
fn check_err(config: &str, expected: &str) {
    match render(config) {
        Ok(value) => panic!("config {config}: expected an error, got {value}"),
        Err(e) => assert!(e.contains(expected), "config {config}: expected `{expected}` in `{e}`"),
    }
}

#[test]
fn a_lone_expression_keeps_its_json_type() {
    check("'{{ input.n }}'", json!(3));
    check("'{{ input.n + 1 }}'", json!(4));
    check("'{{ input.x }}'", json!(1.5));
    check("'{{ input.flag }}'", json!(true));
    check("'{{ input.s }}'", json!("hello"));
    check("'{{ input.list }}'", json!([1, 2, 3]));
    check("'{{ input.obj }}'", json!({ "k": "v" }));
    check(
        "'{{ input }}'",
        json!({ "n": 3, "x": 1.5, "s": "hello", "flag": true, "list": [1, 2, 3], "obj": { "k": "v" } }),
    );
    check("'{{ none }}'", Value::Null);
    check("'{{- input.n -}}'", json!(3));
    check("'{{input.n}}'", json!(3));
    check("'{{ nodes.a.output }}'", json!({ "n": 2, "list": [1, 2] }));
    check("'{{ nodes.a.output.list | length }}'", json!(2));
    check("'{{ [input.n, nodes.a.output.n] }}'", json!([3, 2]));
    check("'{{ {\"sum\": input.n + nodes.a.output.n} }}'", json!({ "sum": 5 }));
}

#[test]
fn any_other_string_renders_to_a_string() {
    check("'n={{ input.n }}'", json!("n=3"));
    check("' {{ input.n }}'", json!(" 3"));
    check("'{{ input.n }}{{ input.n }}'", json!("33"));
    check("'{{ input.n }} and {{ input.s }}'", json!("3 and hello"));
    check("'{% if input.flag %}yes{% endif %}'", json!("yes"));
    check("'{# note #}{{ input.n }}'", json!("3"));
    check("'no template here'", json!("no template here"));
    check("'{ not: a template }'", json!("{ not: a template }"));
}

#[test]
fn every_string_inside_config_is_a_template() {
    check(
        "{ a: ['{{ input.n }}', 'x{{ input.n }}', 7], b: { c: '{{ input.flag }}' }, d: plain }",
        json!({ "a": [3, "x3", 7], "b": { "c": true }, "d": "plain" }),
    );
    check("{ '{{ input.s }}': 1 }", json!({ "{{ input.s }}": 1 }));
}

#[test]
fn node_status_error_and_env() {
    check("'{{ nodes.a.status }}'", json!("succeeded"));
    check("'{{ nodes.b.status }}'", json!("failed"));
    check("'{{ nodes.b.error }}'", json!("boom"));
    check("'{{ nodes.a.error }}'", Value::Null);
    check("'{{ nodes.b.output }}'", Value::Null);
    check("'{{ nodes[\"my-node\"].output }}'", json!("dashed"));
    check("'{{ env.FLOW_IT_SECRET }}'", json!("s3cret"));
}

#[test]
fn reading_what_is_not_there_is_an_error() {
    check_err("'{{ nodes.later.output }}'", "is not defined");
    check_err("'x {{ nodes.later.output }}'", "is not defined");
    check_err("'x {{ input.missing }}'", "is not defined");
    check_err("'{{ input.missing.deeper }}'", "is not defined");
    check_err(
        "'{{ input.missing }}'",
        "nodes[4].config: `input.missing` is not defined",
    );
    check("'{{ input.missing | default(none) }}'", Value::Null);
    check("'{{ input.missing | default(7) }}'", json!(7));
    check("'{{ input.missing is defined }}'", json!(false));
    check_err("'{{ nodes.a.output.nope }}'", "is not defined");
    check_err("'{{ input.n + input.s }}'", "");
}

#[test]
fn expressions() -> Result<(), Box<dyn std::error::Error>> {
    let (_, ctx) = context("'x'");
    let is_true = |src: &str| Expr::compile(src).and_then(|e| e.is_true(&ctx));
    assert!(is_true("input.flag")?);
    assert!(!is_true("not input.flag")?);
    assert!(is_true("nodes.a.output.n > 1 and input.n == 3")?);
    assert!(is_true("nodes.b.status == 'failed'")?);
    assert!(is_true("nodes.b.error is not none")?);
    assert!(!is_true("nodes.later is defined")?);
    assert!(is_true("input.list")?);
    assert!(!is_true("[]")?);
    assert!(is_true("nodes.later.output.x").is_err());
    assert!(Expr::compile("input.n ==").is_err());
    assert!(Expr::compile("{{ input.n }}").is_err());

    let e = Expr::compile("nodes.a.output.n + nodes['my-node'].output + input.n")?;
    assert_eq!(e.source(), "nodes.a.output.n + nodes['my-node'].output + input.n");
    assert_eq!(e.eval(&ctx).ok(), None, "a number plus a string is an error");
    let refs = Expr::compile("nodes.a.output.n > input.n and env.X and foo")?.references();
    assert_eq!(refs.nodes.iter().collect::<Vec<_>>(), ["a"]);
    assert_eq!(refs.env.iter().collect::<Vec<_>>(), ["X"]);
    assert_eq!(refs.other.iter().collect::<Vec<_>>(), ["foo"]);
    assert_eq!(Expr::compile("input.n * 2")?.eval(&ctx)?, json!(6));
    let extra = json!(10);
    assert_eq!(
        Expr::compile("input.n + item")?.eval_with(&ctx, &[("item", &extra)])?,
        json!(13)
    );
    Ok(())
}

#[test]
fn literal_configs_cost_nothing() {
    let (wf, _) = context("{ a: 1, b: [x, y] }");
    assert!(wf.nodes()[4].config().is_literal());
    let (wf, _) = context("{ a: 1, b: [x, '{{ input.n }}'] }");
    assert!(!wf.nodes()[4].config().is_literal());
}

#[test]
fn an_undefined_value_is_named_with_its_place() {
    let shown = |config: &str| render(config).expect_err("an error");
    assert_eq!(
        shown("{ url: '{{ input.base_url }}/users' }"),
        "nodes[4].config.url: `input.base_url` is not defined"
    );
    assert_eq!(
        shown("{ url: 'http://h/{{ input.obj.k }}/{{ input.obj.nope }}' }"),
        "nodes[4].config.url: `input.obj.nope` is not defined"
    );
    assert_eq!(
        shown("{ body: { a: ['x', '{{ input.missing.deeper }}'] } }"),
        "nodes[4].config.body.a[1]: `input.missing` is not defined"
    );
    assert_eq!(
        shown("{ to: 'n: {{ nodes.later.output }}' }"),
        "nodes[4].config.to: `nodes.later` is not defined"
    );
    assert_eq!(
        shown("{ n: '{{ input.obj.nope }}' }"),
        "nodes[4].config.n: `input.obj.nope` is not defined"
    );
    assert_eq!(
        shown("{ text: '{% for i in input.list %}{{ i.nope }}{% endfor %}' }"),
        "nodes[4].config.text: `i.nope` is not defined"
    );
}
