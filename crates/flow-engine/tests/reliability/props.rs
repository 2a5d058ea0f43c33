//! Property tests: arbitrary JSON documents, workflow-shaped documents with random
//! fields, and token soups never panic the parser, the validator or the template
//! compiler; a document that validates runs to a report that names every node.
//! (The same bodies run under libFuzzer in `fuzz/`.)

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use flow_engine::core::Expr;
use flow_engine::{Engine, RunStatus, Workflow};
use proptest::prelude::*;
use serde_json::{Map, Value};

use crate::support::engine;

/// Pieces of templates, YAML and JSON, so random text reaches past the first
/// syntax check.
const TOKENS: &[&str] = &[
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "#}",
    "input",
    "nodes",
    "env",
    "output",
    ".",
    "[",
    "]",
    "(",
    ")",
    "|",
    "for ",
    " in ",
    "if ",
    "endif",
    "endfor",
    "set ",
    " = ",
    "'",
    "\"",
    "~",
    "+",
    "*",
    "range(9)",
    "length",
    " ",
    "a",
    "0",
    "99999999999999999999",
    "-",
    "\\",
    "\n",
    "é",
    "\u{0}",
    "macro ",
    "endmacro",
    "loop",
    "namespace()",
    ":",
    ",",
    "- ",
    "&a ",
    "*a",
    "!!",
    "---",
    "null",
    "true",
    "1e999",
    "name",
    "kind",
    "id",
    "edges",
    "from",
    "to",
    "when",
];

const FIELDS: &[&str] = &[
    "name",
    "description",
    "strategy",
    "input",
    "secrets",
    "nodes",
    "edges",
    "id",
    "kind",
    "config",
    "retry",
    "timeout_ms",
    "trigger",
    "continue_on_error",
    "from",
    "to",
    "when",
    "max_attempts",
    "backoff_ms",
    "factor",
    "max_backoff_ms",
    "jitter",
    "max_concurrency",
    "per_second",
    "burst",
    "fail_fast",
    "ms",
    "output",
    "message",
    "rules",
    "data",
];

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..24).prop_map(|t| t.concat())
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z_]{0,8}",
        3 => soup(),
        1 => any::<String>(),
        1 => prop::sample::select(FIELDS).prop_map(str::to_owned),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (0u64..200).prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..8).prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

fn one_of(names: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop::sample::select(names).prop_map(Value::from),
        1 => json(),
    ]
}

/// An object with each of `fields` present or not.
fn object(fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> impl Strategy<Value = Value> {
    let parts: Vec<_> = fields
        .into_iter()
        .map(|(name, value)| prop::option::weighted(0.7, value).prop_map(move |v| v.map(|v| (name, v))))
        .collect();
    parts.prop_map(|parts| {
        Value::Object(
            parts
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<Map<String, Value>>(),
        )
    })
}

const IDS: &[&str] = &["a", "b", "c", "d", "", "a b"];
const KINDS: &[&str] = &["noop", "transform", "fail", "validate", "delay", "nope"];

fn node() -> impl Strategy<Value = Value> {
    let template = prop_oneof![text(), soup()].prop_map(Value::from);
    let config = prop_oneof![
        json(),
        (template.clone(), json()).prop_map(|(t, j)| serde_json::json!({ "output": { "t": t, "j": j } })),
        (0u64..5).prop_map(|ms| serde_json::json!({ "ms": ms })),
        json().prop_map(|rules| serde_json::json!({ "data": "{{ input }}", "rules": rules })),
    ];
    let retry = prop_oneof![
        ((1u64..4), (0u64..5))
            .prop_map(|(n, b)| serde_json::json!({ "max_attempts": n, "backoff_ms": b, "max_backoff_ms": 5 })),
        json(),
    ];
    object(vec![
        ("id", one_of(IDS).boxed()),
        ("kind", one_of(KINDS).boxed()),
        ("config", config.boxed()),
        ("retry", retry.boxed()),
        ("timeout_ms", number().boxed()),
        ("trigger", one_of(&["all_success", "all_done", "one_success"]).boxed()),
        ("continue_on_error", any::<bool>().prop_map(Value::Bool).boxed()),
    ])
}

fn edge() -> impl Strategy<Value = Value> {
    let when = prop_oneof![text(), soup(), Just("nodes.a.status == 'succeeded'".to_owned())].prop_map(Value::from);
    object(vec![
        ("from", one_of(IDS).boxed()),
        ("to", one_of(IDS).boxed()),
        ("when", when.boxed()),
    ])
}

fn workflow_doc() -> impl Strategy<Value = Value> {
    let strategy = object(vec![
        (
            "kind",
            one_of(&["sequential", "parallel", "all-settled", "rate-limited"]).boxed(),
        ),
        ("max_concurrency", number().boxed()),
        ("per_second", number().boxed()),
        ("burst", number().boxed()),
        ("fail_fast", any::<bool>().prop_map(Value::Bool).boxed()),
    ]);
    object(vec![
        ("name", prop_oneof![Just(Value::from("t")), json()].boxed()),
        ("strategy", strategy.boxed()),
        ("input", json().boxed()),
        (
            "nodes",
            prop::collection::vec(node(), 0..6).prop_map(Value::Array).boxed(),
        ),
        (
            "edges",
            prop::collection::vec(edge(), 0..6).prop_map(Value::Array).boxed(),
        ),
        (
            "secrets",
            prop::collection::vec(text(), 0..2).prop_map(|s| s.into()).boxed(),
        ),
    ])
}

fn shared_engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| engine().0)
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => panic!("{e}"),
        }
    })
}

/// Parses `text` both ways; an error must render. Returns the workflow, if valid.
fn parse(text: &str) -> Option<Arc<Workflow>> {
    let engine = shared_engine();
    let mut valid = None;
    for result in [engine.parse_json(text), engine.parse_yaml(text)] {
        match result {
            Ok(wf) => valid = Some(wf),
            Err(flow_engine::Error::Workflow(e)) => {
                let rendered = e.render("t.yaml", text);
                assert!(rendered.contains("error"), "{rendered}");
            }
            Err(other) => panic!("not a workflow error: {other}"),
        }
    }
    valid
}

/// Whether running `wf` stays short: no sleeps, and retries that wait little.
fn quick(wf: &Workflow) -> bool {
    wf.nodes().iter().all(|n| {
        let retry = n.retry();
        let waits: Duration = (1..retry.max_attempts).map(|a| retry.delay(a, 1.0)).sum();
        n.kind_name() != "delay" && retry.max_attempts <= 10 && waits <= Duration::from_millis(200)
    })
}

/// Runs a valid workflow: the report names every node, in file order.
fn run(wf: &Arc<Workflow>) {
    if !quick(wf) {
        return;
    }
    let engine = shared_engine();
    let report = runtime().block_on(async {
        tokio::time::timeout(Duration::from_secs(20), engine.run(wf, flow_engine::RunOptions::new())).await
    });
    let report = match report {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return assert!(matches!(e, flow_engine::Error::Strategy(_)), "{e}"),
        Err(_) => panic!("a run of a valid workflow hung"),
    };
    assert_ne!(report.status, RunStatus::Cancelled);
    let ids: Vec<&str> = report.nodes.iter().map(|(id, _)| id).collect();
    let expected: Vec<&str> = wf.nodes().iter().map(|n| n.id()).collect();
    assert_eq!(ids, expected);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_panics_the_parser_or_the_validator(doc in json()) {
        let text = doc.to_string();
        if let Some(wf) = parse(&text) {
            run(&wf);
        }
    }

    #[test]
    fn workflow_shaped_documents_never_panic_and_valid_ones_report_every_node(doc in workflow_doc()) {
        let compact = doc.to_string();
        if let Some(wf) = parse(&compact) {
            run(&wf);
        }
        if let Ok(pretty) = serde_json::to_string_pretty(&doc) {
            parse(&pretty);
        }
    }

    #[test]
    fn token_soup_never_panics_the_parser(text in prop_oneof![soup(), any::<String>()]) {
        parse(&text);
        parse(&format!("name: t\nnodes:\n  - {{ id: a, kind: noop, config: {text} }}\n"));
    }

    #[test]
    fn any_text_never_panics_the_template_compiler(source in prop_oneof![soup(), text(), any::<String>()]) {
        if let Ok(expr) = Expr::compile(&source) {
            let _ = expr.references();
        }
        let doc = serde_json::json!({
            "name": "t",
            "input": { "n": 1, "items": [1, 2, 3] },
            "nodes": [
                { "id": "a", "kind": "transform", "config": { "output": { "v": 1 } } },
                { "id": "b", "kind": "transform", "config": { "output": source } },
            ],
            "edges": [{ "from": "a", "to": "b", "when": source }],
        });
        if let Some(wf) = parse(&doc.to_string()) {
            run(&wf);
        }
    }
}
