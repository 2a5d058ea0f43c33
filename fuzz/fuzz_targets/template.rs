//! Any text as a template (a node's config string) and as an expression (an
//! edge's `when:`): compiling, finding its references and rendering it against a
//! small context must return, never panic or hang.
#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;

use flow_core::{Context, Expr, Limits, NodeSpec, Workflow, WorkflowSpec};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(expr) = Expr::compile(source) {
        let _ = expr.references();
    }
    let spec = WorkflowSpec {
        name: "fuzz".into(),
        description: None,
        strategy: None,
        input: Some(json!({ "n": 1, "items": [1, 2, 3], "who": "you" })),
        limits: Default::default(),
        secrets: Vec::new(),
        nodes: vec![NodeSpec {
            id: "a".into(),
            kind: "transform".into(),
            config: json!({ "output": source }),
            description: None,
            retry: None,
            timeout_ms: None,
            trigger: Default::default(),
            continue_on_error: false,
            ..Default::default()
        }],
        edges: Vec::new(),
    };
    let registry = flow_nodes::registry();
    let Ok(workflow) = Workflow::compile(spec, &registry, &Limits::default()) else {
        return;
    };
    let workflow = Arc::new(workflow);
    let context = Context::new(workflow.clone(), workflow.input().clone(), BTreeMap::new());
    let node = &workflow.nodes()[0];
    let _ = node.config().render(&context);
});
