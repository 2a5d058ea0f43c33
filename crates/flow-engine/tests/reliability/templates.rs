//! Hostile templates: valid syntax, so validation accepts them, but written to
//! loop for hours or to allocate without bound. Rendering is budgeted, so each
//! fails its own node quickly instead of hanging the run or exhausting memory.

use std::time::{Duration, Instant};

use flow_engine::strategy::StrategyKind;
use flow_engine::{NodeStatus, RunOptions};

use crate::support::{engine, error, memory_turn, node, rss_kib, run, strategy, workflow};

/// Each template, written as a YAML double-quoted string.
const HOSTILE: &[(&str, &str)] = &[
    (
        "nested-loops",
        r#"{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}"#,
    ),
    (
        "string-doubling",
        r#"{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}"#,
    ),
    // Not here: doubling a *list* (`ns.l = ns.l + ns.l`) 33 times or more. minijinja
    // 3.1 keeps `+` of lists lazy up to a depth of 32, then builds the whole list
    // without charging fuel, so that template still exhausts memory (see
    // docs/reliability.md, "Known gaps").
    ("huge-repeat-expression", r#"{{ 'abc' * 50000000 }}"#),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_templates_fail_their_node_quickly() {
    let _turn = memory_turn().await;
    let (engine, _) = engine();
    let mut body = String::from("nodes:\n  - { id: healthy, kind: delay, config: { ms: 10 } }\n");
    for (id, template) in HOSTILE {
        let quoted = template.replace('\\', "\\\\").replace('"', "\\\"");
        body.push_str(&format!(
            "  - {{ id: {id}, kind: transform, config: {{ output: \"{quoted}\" }} }}\n"
        ));
    }
    let wf = workflow(&engine, &body);
    let before = rss_kib();
    let started = Instant::now();
    let report = run(
        &engine,
        &wf,
        RunOptions::new().strategy(strategy(StrategyKind::AllSettled)),
    )
    .await;
    let took = started.elapsed();
    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    eprintln!("hostile templates refused in {took:?}; memory grew {grown_mib} MiB");
    assert_eq!(node(&report, "healthy").status, NodeStatus::Succeeded);
    for (id, _) in HOSTILE {
        assert_eq!(node(&report, id).status, NodeStatus::Failed, "{id}");
        assert!(
            error(&report, id).starts_with("nodes[") && error(&report, id).contains("].config.output: "),
            "{id}: {}",
            error(&report, id)
        );
    }
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert!(grown_mib < 1024, "memory grew {grown_mib} MiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_when_condition_fails_instead_of_hanging() {
    let (engine, _) = engine();
    let wf = workflow(
        &engine,
        "nodes:
  - { id: a, kind: noop }
  - { id: b, kind: noop }
edges:
  - { from: a, to: b, when: \"((range(100000) | list) * 1000) | join | length > 0\" }",
    );
    let started = Instant::now();
    let report = run(&engine, &wf, RunOptions::new()).await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(node(&report, "a").status, NodeStatus::Succeeded);
    assert_eq!(node(&report, "b").status, NodeStatus::Failed);
    assert!(
        error(&report, "b").contains("could not be evaluated"),
        "{}",
        error(&report, "b")
    );
}
