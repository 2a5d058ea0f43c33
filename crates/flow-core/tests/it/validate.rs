//! Validation: each problem with its message and place. `check` takes the YAML
//! after `name: t` and a fragment the error must contain.

use flow_core::{Error, Format};

use crate::support::{error, parse};

#[track_caller]
fn check(body: &str, expected: &str) {
    let text = format!("name: t\n{body}");
    let message = error(&text, Format::Yaml).to_string();
    assert!(
        message.contains(expected),
        "expected `{expected}` in the error of\n{text}\n--- got:\n{message}"
    );
}

#[track_caller]
fn valid(body: &str) {
    let text = format!("name: t\n{body}");
    if let Err(e) = parse(&text, Format::Yaml) {
        panic!("expected a valid workflow:\n{text}\n--- got:\n{e}");
    }
}

const AB: &str = "nodes: [{ id: a, kind: noop }, { id: b, kind: noop }]\n";

#[test]
fn unknown_fields_suggest_the_right_name() {
    check(
        "nodes: [{ id: a, kind: noop, tigger: all_done }]",
        "did you mean `trigger`?",
    );
    check("nodes: [{ id: a, kind: noop, tigger: all_done }]", "nodes[0]");
    check("nodes: [{ id: a, kind: noop }]\nedgse: []", "did you mean `edges`?");
    check(&format!("{AB}edges: [{{ from: a, too: b }}]"), "did you mean `to`?");
    check(
        "strategy: { kind: parallel, max_concurency: 2 }\nnodes: [{ id: a, kind: noop }]",
        "did you mean `max_concurrency`?",
    );
    check(
        "nodes: [{ id: a, kind: noop, retry: { max_atempts: 2 } }]",
        "did you mean `max_attempts`?",
    );
    check(
        "nodes: [{ id: a, kind: noop, trigger: all_sucess }]",
        "did you mean `all_success`?",
    );
    check(
        "strategy: { kind: paralel }\nnodes: [{ id: a, kind: noop }]",
        "did you mean `parallel`?",
    );
}

#[test]
fn unknown_kind() {
    check(
        "nodes: [{ id: a, kind: nop }]",
        "unknown node kind `nop` (node `a`); did you mean `noop`?",
    );
    check("nodes: [{ id: a, kind: zzz }]", "known kinds: delay, noop, transform");
    check("nodes: [{ id: a, kind: zzz }]", "nodes[0].kind");
}

#[test]
fn kind_config_check() {
    check(
        "nodes: [{ id: a, kind: delay }]",
        "nodes[0].config.ms: is required (node `a`)",
    );
    check(
        "nodes: [{ id: a, kind: delay, config: { ms: [1] } }]",
        "nodes[0].config.ms: must be a number",
    );
}

#[test]
fn ids() {
    check(
        AB.replace("id: b", "id: a").as_str(),
        "nodes[1].id: `a` is already the id of nodes[0]",
    );
    check(
        "nodes: [{ id: 'a b', kind: noop }]",
        "nodes[0].id: `a b` may only hold letters, digits, `_` and `-`",
    );
    check("nodes: [{ id: 'a.b', kind: noop }]", "may only hold letters");
    check("nodes: [{ id: '', kind: noop }]", "nodes[0].id: must not be empty");
    check("nodes: []", "nodes: a workflow needs at least one node");
    valid("nodes: [{ id: A-z_09, kind: noop }]");
}

#[test]
fn edges() {
    check(
        &format!("{AB}edges: [{{ from: a, to: c }}]"),
        "edges[0].to: no node has the id `c`",
    );
    check(
        &format!("{AB}edges: [{{ from: x, to: b }}]"),
        "edges[0].from: no node has the id `x`",
    );
    check(&format!("{AB}edges: [{{ from: aa, to: b }}]"), "(did you mean `a`?)");
    check(
        &format!("{AB}edges: [{{ from: a, to: a }}]"),
        "edges[0]: edge from `a` to itself",
    );
    check(
        &format!("{AB}edges: [{{ from: a, to: b }}, {{ from: a, to: b }}]"),
        "edges[1]: duplicate edge `a` -> `b`",
    );
    check(
        "nodes: [{ id: a, kind: noop }]\nedges: [{ from: a }]",
        "missing field `to`",
    );
}

#[test]
fn cycles_are_listed() {
    let three = "nodes: [{ id: a, kind: noop }, { id: b, kind: noop }, { id: c, kind: noop }, { id: d, kind: noop }]\n";
    check(
        &format!(
            "{three}edges: [{{ from: d, to: a }}, {{ from: a, to: b }}, {{ from: b, to: c }}, {{ from: c, to: a }}]"
        ),
        "the graph has a cycle: a -> b -> c -> a",
    );
    check(
        &format!("{AB}edges: [{{ from: a, to: b }}, {{ from: b, to: a }}]"),
        "cycle: a -> b -> a",
    );
}

#[test]
fn templates_are_compiled_at_validation() {
    check(
        "nodes: [{ id: t, kind: transform, config: { output: '{{ input.x' } }]",
        "nodes[0].config.output: invalid template",
    );
    check(
        "nodes: [{ id: t, kind: transform, config: { output: 'a {{ input.x' } }]",
        "(node `t`)",
    );
    check(
        "nodes: [{ id: t, kind: transform, config: { output: [1, '{% if %}'] } }]",
        "nodes[0].config.output[1]",
    );
    check(
        "nodes: [{ id: t, kind: transform, config: { output: '{{ nodes.ghost.output }}' } }]",
        "nodes[0].config: refers to `nodes.ghost`, but no node has the id `ghost`",
    );
    check(
        "nodes: [{ id: tt, kind: transform, config: { output: 'x {{ nodes.t.output }}' } }]",
        "(did you mean `tt`?)",
    );
    check(
        "nodes: [{ id: t, kind: transform, config: { output: '{{ env.TOKEN }}' } }]",
        "reads `env.TOKEN`, which is not listed under `secrets:`",
    );
    valid("secrets: [TOKEN]\nnodes: [{ id: t, kind: transform, config: { output: '{{ env.TOKEN }}' } }]");
    check(
        "nodes: [{ id: t, kind: transform, config: { output: '{{ inptu.x }}' } }]",
        "unknown variable `inptu`: the context has `input`, `nodes` and `env` (did you mean `input`?)",
    );
}

#[test]
fn when_is_compiled_at_validation() {
    check(
        &format!("{AB}edges: [{{ from: a, to: b, when: 'input.x ==' }}]"),
        "edges[0].when: invalid expression `input.x ==`",
    );
    check(
        &format!("{AB}edges: [{{ from: a, to: b, when: 'input.x ==' }}]"),
        "`a` -> `b`",
    );
    check(
        &format!("{AB}edges: [{{ from: a, to: b, when: 'nodes.c.output' }}]"),
        "edges[0].when: refers to `nodes.c`",
    );
    check(
        &format!("{AB}edges: [{{ from: a, to: b, when: 'env.HOME' }}]"),
        "reads `env.HOME`",
    );
    valid(&format!(
        "{AB}edges: [{{ from: a, to: b, when: 'nodes.a.status == \"succeeded\" and input.go' }}]"
    ));
}

#[test]
fn strategy_options() {
    let one = "nodes: [{ id: a, kind: noop }]";
    let s = |strategy: &str| format!("strategy: {strategy}\n{one}");
    check(
        &s("{ kind: sequential, max_concurrency: 2 }"),
        "strategy.max_concurrency: does not apply to sequential",
    );
    check(
        &s("{ kind: parallel, max_concurrency: 0 }"),
        "strategy.max_concurrency: must be at least 1",
    );
    check(
        &s("{ kind: rate-limited }"),
        "strategy.per_second: is required for rate-limited",
    );
    check(
        &s("{ kind: rate-limited, per_second: 0 }"),
        "strategy.per_second: must be a number above 0",
    );
    check(
        &s("{ kind: rate-limited, per_second: -1 }"),
        "strategy.per_second: must be a number above 0",
    );
    check(
        &s("{ kind: rate-limited, per_second: .nan }"),
        "strategy.per_second: must be a number, not null",
    );
    check(
        &s("{ kind: rate-limited, per_second: 1e10 }"),
        "strategy.per_second: must be at most 1e9",
    );
    check(
        &s("{ kind: parallel, per_second: 5 }"),
        "strategy.per_second: only applies to rate-limited",
    );
    check(
        &s("{ kind: rate-limited, per_second: 5, burst: 0 }"),
        "strategy.burst: must be at least 1",
    );
    check(
        &s("{ kind: all-settled, burst: 2 }"),
        "strategy.burst: only applies to rate-limited",
    );
    check(
        &s("{ kind: parallel, fail_fast: true }"),
        "strategy.fail_fast: only applies to rate-limited",
    );
    check(
        &s("{ kind: parallel, max_concurrency: -1 }"),
        "strategy.max_concurrency",
    );
    valid(&s(
        "{ kind: rate-limited, per_second: 5, burst: 3, max_concurrency: 2, fail_fast: true }",
    ));
}

#[test]
fn retry_and_timeout_options() {
    let node = |extra: &str| format!("nodes: [{{ id: a, kind: noop, {extra} }}]");
    check(
        &node("retry: { max_attempts: 0 }"),
        "nodes[0].retry.max_attempts: must be at least 1",
    );
    check(
        &node("retry: { max_attempts: 2, factor: 0.5 }"),
        "nodes[0].retry.factor: must be a finite number >= 1",
    );
    check(
        &node("retry: { max_attempts: 2, backoff_ms: 500, max_backoff_ms: 100 }"),
        "nodes[0].retry.max_backoff_ms: is 100 but backoff_ms is 500",
    );
    check(
        &node("retry: { max_attempts: 2, max_backoff_ms: 90000000 }"),
        "must be at most one day",
    );
    check(&node("retry: { backoff_ms: 10 }"), "missing field `max_attempts`");
    check(&node("timeout_ms: 0"), "nodes[0].timeout_ms: must be at least 1");
    check(
        &node("timeout_ms: 90000000"),
        "nodes[0].timeout_ms: must be at most one day",
    );
    check(&node("timeout_ms: -5"), "timeout_ms");
    valid(&node(
        "retry: { max_attempts: 3, backoff_ms: 1, factor: 1, jitter: true }, timeout_ms: 1",
    ));
}

#[test]
fn secrets_and_name() {
    check(
        "secrets: ['1BAD']\nnodes: [{ id: a, kind: noop }]",
        "secrets[0]: `1BAD` is not an environment variable name",
    );
    check(
        "secrets: [A, A]\nnodes: [{ id: a, kind: noop }]",
        "secrets[1]: `A` is listed twice",
    );
    let message = error("name: ''\nnodes: [{ id: a, kind: noop }]", Format::Yaml).to_string();
    assert!(message.contains("name: must not be empty"), "{message}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = "name: t\nnodes:\n  - { id: a, kind: nop }\n  - { id: a, kind: noop, timeout_ms: 0 }\nedges:\n  - { from: a, to: zz }\n";
    let err = error(text, Format::Yaml);
    let places: Vec<&str> = err.problems().iter().map(|p| p.place.as_str()).collect();
    assert_eq!(
        places,
        ["nodes[1].id", "nodes[0].kind", "nodes[1].timeout_ms", "edges[0].to"]
    );
    assert!(matches!(err, Error::Invalid(_)));
}

#[test]
fn problems_carry_the_line_of_their_node_or_edge() {
    let text = "name: t\nnodes:\n  - { id: a, kind: noop }\n  - { id: b, kind: nop }\nedges:\n  - { from: a, to: b }\n  - { from: b, to: a }\n";
    let err = error(text, Format::Yaml);
    assert_eq!(err.problems()[0].line, Some(4), "{err}");
    let text = "name: t\nnodes:\n  - { id: a, kind: noop }\n  - { id: b, kind: noop }\nedges:\n  - { from: a, to: b }\n  - { from: b, to: x }\n";
    assert_eq!(error(text, Format::Yaml).problems()[0].line, Some(7));
}

#[test]
fn rendered_errors() {
    let text = "name: t\nnodes:\n  - { id: fetch, kind: noop }\n  - { id: a, kind: dealy, config: { ms: 10 } }\n  - { id: b, kind: noop, timeout_ms: 0 }\nedges:\n  - { from: fetch, to: a }\n  - { from: a, to: b, when: 'nodes.fetch.output ==' }\n";
    insta::assert_snapshot!("invalid_workflow", error(text, Format::Yaml).render("bad.yaml", text));
    let text = "name: t\nnodes:\n  - { id: a, kind: noop }\n  - { id: b, kind: noop }\nedges:\n  - { from: a, to: b }\n  - { from: b, to: a }\n";
    insta::assert_snapshot!("cycle", error(text, Format::Yaml).render("cycle.yaml", text));
    let text = "name: t\nnodes:\n  - id: a\n    kind: noop\n    tigger: all_done\n";
    insta::assert_snapshot!("unknown_field", error(text, Format::Yaml).render("typo.yaml", text));
    let text = "{\n  \"name\": \"t\",\n  \"nodes\": [\n    { \"id\": \"a\", \"kind\": \"noop\" },\n  ]\n}\n";
    insta::assert_snapshot!("json_syntax", error(text, Format::Json).render("bad.json", text));
}

#[test]
fn bracketed_node_references_are_checked() {
    check(
        "nodes: [{ id: t, kind: transform, config: { output: \"{{ nodes['gh-ost'].output }}\" } }]",
        "refers to `nodes.gh-ost`, but no node has the id `gh-ost`",
    );
    check(
        "nodes: [{ id: t, kind: transform, config: { output: 'x {{ nodes[\"gh-ost\"].output }}' } }]",
        "refers to `nodes.gh-ost`",
    );
    check(
        &format!("{AB}edges: [{{ from: a, to: b, when: \"nodes[ 'gh-ost' ].output\" }}]"),
        "edges[0].when: refers to `nodes.gh-ost`",
    );
    valid(
        "nodes: [{ id: my-a, kind: noop }, { id: t, kind: transform, config: { output: \"{{ nodes['my-a'].output }}\" } }]",
    );
    valid("nodes: [{ id: t, kind: transform, config: { output: \"{{ input.nodes['x'] if false else 1 }}\" } }]");
}

#[test]
fn limits_are_checked() {
    let node = |limit: &str| format!("nodes: [{{ id: a, kind: noop, limit: {limit} }}]");
    valid(&format!("limits: {{ api: {{ per_second: 10 }} }}\n{}", node("api")));
    valid(&format!(
        "limits: {{ api: {{ per_second: 0.5, burst: 2, max_concurrency: 4 }} }}\n{}",
        node("{ name: api, key: \"{{ input.tenant }}\" }")
    ));
    valid(&format!(
        "limits: {{ api: {{ max_concurrency: 1 }} }}\n{}",
        node("{ name: api }")
    ));
    check(&node("api"), "nodes[0].limit: unknown limit `api` (node `a`)");
    check(
        &format!("limits: {{ crm_api: {{ per_second: 1 }} }}\n{}", node("crm_apy")),
        "did you mean `crm_api`?",
    );
    check(
        "limits: { api: {} }\nnodes: [{ id: a, kind: noop }]",
        "limits.api: a limit needs at least one of per_second, burst, max_concurrency",
    );
    check(
        "limits: { api: { burst: 3 } }\nnodes: [{ id: a, kind: noop }]",
        "limits.api: `burst` needs `per_second`",
    );
    for (spec, expected) in [
        ("{ per_second: 0 }", "limits.api.per_second: must be a number above 0"),
        ("{ per_second: -3 }", "limits.api.per_second: must be a number above 0"),
        ("{ per_second: 2e9 }", "limits.api.per_second: must be at most 1e9"),
        ("{ per_second: 1, burst: 0 }", "limits.api.burst: must be at least 1"),
        (
            "{ max_concurrency: 0 }",
            "limits.api.max_concurrency: must be at least 1",
        ),
        ("{ per_second: 1, typo: 2 }", "unknown field `typo`"),
    ] {
        check(
            &format!("limits: {{ api: {spec} }}\nnodes: [{{ id: a, kind: noop }}]"),
            expected,
        );
    }
    check(
        &format!(
            "limits: {{ api: {{ per_second: 1 }} }}\n{}",
            node("{ name: api, key: \"{{ input.tenant \" }")
        ),
        "nodes[0].limit.key: invalid template",
    );
    check(
        &format!(
            "limits: {{ api: {{ per_second: 1 }} }}\n{}",
            node("{ name: api, key: \"{{ nodes.ghost.output }}\" }")
        ),
        "no node has the id `ghost`",
    );
}

#[test]
fn unknown_strategy_kinds_are_named() {
    check(
        "strategy: { kind: paralel }\nnodes: [{ id: a, kind: noop }]",
        "strategy.kind: unknown strategy kind `paralel`; did you mean `parallel`?",
    );
    check(
        "strategy: { kind: parallel, max_concurrency: \"4\" }\nnodes: [{ id: a, kind: noop }]",
        "strategy.max_concurrency: must be a whole number, not a string",
    );
}
