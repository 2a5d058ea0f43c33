//! The `run` and `node` tracing spans, seen by a small recording subscriber.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use flow_engine::{Engine, RunOptions};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Metadata, Subscriber};

#[derive(Debug, Clone, Default)]
struct Span {
    name: &'static str,
    parent: Option<u64>,
    fields: BTreeMap<&'static str, String>,
    entered: usize,
}

#[derive(Default)]
struct Log {
    next: AtomicU64,
    spans: Mutex<BTreeMap<u64, Span>>,
}

struct Fields<'a>(&'a mut BTreeMap<&'static str, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name(), value.to_owned());
    }
}

/// Shares its log with the test, which reads it after the run.
#[derive(Clone, Default)]
struct Recorder(Arc<Log>);

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let id = self.0.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut span = Span {
            name: attrs.metadata().name(),
            parent: attrs.parent().map(Id::into_u64),
            ..Span::default()
        };
        attrs.record(&mut Fields(&mut span.fields));
        self.0.spans.lock().unwrap_or_else(|e| e.into_inner()).insert(id, span);
        Id::from_u64(id)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, id: &Id) {
        if let Some(span) = self
            .0
            .spans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&id.into_u64())
        {
            span.entered += 1;
        }
    }
    fn exit(&self, _: &Id) {}
}

#[test]
fn each_attempt_runs_inside_a_node_span_under_the_run_span() {
    let recorder = Recorder::default();
    let dispatch = tracing::Dispatch::new(recorder.clone());
    // While only one dispatcher exists, tracing-core asks the registering thread's
    // default for a callsite's interest: a callsite first hit by another test (whose
    // thread has no subscriber) would be cached as "never". A second live dispatcher
    // makes it ask every dispatcher.
    let _second = tracing::Dispatch::new(recorder.clone());
    tracing::dispatcher::with_default(&dispatch, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let engine = Engine::new();
            let workflow = engine
                .parse_yaml(
                    r#"
name: traced
nodes:
  - { id: quick, kind: noop }
  - { id: slow, kind: delay, config: { ms: 5 } }
  - id: flaky
    kind: fail
    retry: { max_attempts: 2, backoff_ms: 1 }
"#,
                )
                .expect("a valid workflow");
            let handle = engine.start(&workflow, RunOptions::new()).expect("the run starts");
            handle.wait().await.expect("a report");
        });
    });
    let spans = recorder.0.spans.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let runs: Vec<(&u64, &Span)> = spans.iter().filter(|(_, s)| s.name == "run").collect();
    assert_eq!(runs.len(), 1, "{spans:#?}");
    let (run_id, run) = runs[0];
    assert_eq!(run.fields.get("workflow").map(String::as_str), Some("traced"));
    assert!(run.entered > 0, "the run span is entered");

    let mut nodes: Vec<String> = spans
        .values()
        .filter(|s| s.name == "node")
        .map(|s| {
            assert_eq!(s.parent, Some(*run_id), "a node span's parent is the run span");
            assert!(s.entered > 0, "the node span is entered while the attempt runs");
            format!(
                "{} {} {}",
                s.fields.get("node").map_or("?", String::as_str),
                s.fields.get("kind").map_or("?", String::as_str),
                s.fields.get("attempt").map_or("?", String::as_str)
            )
        })
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["flaky fail 1", "flaky fail 2", "quick noop 1", "slow delay 1"]);
}
