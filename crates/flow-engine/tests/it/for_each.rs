//! `for_each`: one unit of work per item, under the run's strategy and the node's
//! own caps; outputs in input order; tolerated failures; the report's `items` and
//! `item_runs`.

use std::time::Instant;

use flow_engine::strategy::{StrategyConfig, StrategyKind};
use flow_engine::{Engine, EventKind, Limits, NodeStatus, RunOptions, RunStatus};
use serde_json::{Value, json};

use crate::support::{capped, configured, engine, node, run_with, strategy, workflow};

/// A `for_each` node `each` of `probe` items over `input.items`, with `extra`
/// fields; the probe reads `ms`, `fail` and `fail_attempts` from each item.
fn probes(extra: &str) -> String {
    format!(
        "nodes:\n  - id: each\n    kind: probe\n    for_each: \"{{{{ input.items }}}}\"\n{extra}    config: {{ ms: \"{{{{ item.ms }}}}\", fail: \"{{{{ item.fail }}}}\", fail_attempts: \"{{{{ item.fail_attempts }}}}\" }}\n"
    )
}

fn items(list: &[(u64, bool)]) -> Value {
    let items: Vec<Value> = list
        .iter()
        .map(|(ms, fail)| json!({ "ms": ms, "fail": fail, "fail_attempts": 0 }))
        .collect();
    json!({ "items": items })
}

fn statuses(report: &flow_engine::Report, id: &str) -> Vec<NodeStatus> {
    let runs = node(report, id).item_runs.as_ref().expect("item_runs");
    runs.iter().map(|r| r.status).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_keep_the_input_order_whatever_order_items_finish_in() {
    let body = "nodes:
  - id: each
    kind: delay
    for_each: \"{{ input.waits }}\"
    as: wait
    config: { ms: \"{{ wait }}\" }
  - { id: after, kind: transform, config: { output: \"{{ nodes.each.output | map(attribute='slept_ms') | list }}\" } }
edges:
  - { from: each, to: after }
";
    let waits = json!({ "waits": [60, 5, 40, 0, 20] });
    let (report, _) = run_with(body, RunOptions::new().input(waits)).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    assert_eq!(node(&report, "after").output, json!([60, 5, 40, 0, 20]));
    let each = node(&report, "each");
    let counts = each.items.expect("items");
    assert_eq!(
        (counts.total, counts.succeeded, counts.failed, counts.cancelled),
        (5, 5, 0, 0)
    );
    let runs = each.item_runs.as_ref().expect("item_runs");
    assert_eq!(runs.iter().map(|r| r.index).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    // The node spans its items, and items overlapped (parallel).
    let first_start = runs.iter().filter_map(|r| r.started_ms).fold(f64::MAX, f64::min);
    assert_eq!(each.started_ms, Some(first_start));
    assert!(each.finished_ms.unwrap_or(0.0) - first_start < 55.0 + 40.0, "{each:?}");
    // A node without for_each has neither field.
    let json = serde_json::to_value(&report).unwrap_or_default();
    assert!(json["nodes"]["after"].get("items").is_none());
    assert!(json["nodes"]["after"].get("item_runs").is_none());
    assert_eq!(json["nodes"]["each"]["items"]["total"], 5);
    assert_eq!(json["nodes"]["each"]["item_runs"][1]["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_cap_and_the_run_cap_both_hold() {
    let list = items(&[(30, false); 8]);
    // The node's own cap.
    let (report, probe) = run_with(
        &probes("    max_concurrency: 2\n"),
        RunOptions::new().input(list.clone()),
    )
    .await;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(probe.peak(), 2);
    // Two for_each nodes of cap 3 each under a run cap of 4: items count as nodes.
    let body = format!(
        "{}  - id: other\n    kind: probe\n    for_each: \"{{{{ input.items }}}}\"\n    max_concurrency: 3\n    config: {{ ms: \"{{{{ item.ms }}}}\" }}\n",
        probes("    max_concurrency: 3\n")
    );
    let options = RunOptions::new()
        .input(list)
        .strategy(capped(StrategyKind::Parallel, 4));
    let (report, probe) = run_with(&body, options).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    assert_eq!(probe.peak(), 4);
    assert_eq!(probe.runs("each") + probe.runs("other"), 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_item_retries_on_its_own() {
    let list = json!({ "items": [
        { "ms": 0, "fail": false, "fail_attempts": 0 },
        { "ms": 0, "fail": false, "fail_attempts": 2 },
        { "ms": 0, "fail": false, "fail_attempts": 0 },
    ]});
    let extra = "    retry: { max_attempts: 3, backoff_ms: 1 }\n";
    let (report, probe) = run_with(&probes(extra), RunOptions::new().input(list)).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    let runs = node(&report, "each").item_runs.clone().unwrap_or_default();
    assert_eq!(runs.iter().map(|r| r.attempts).collect::<Vec<_>>(), [1, 3, 1]);
    assert_eq!(probe.runs("each"), 5);
    assert_eq!(node(&report, "each").attempts, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tolerated_failures_by_count_and_by_percent() {
    let mut list = vec![(0, false); 10];
    list[3].1 = true;
    list[7].1 = true;
    let check = |tolerated: &'static str, expected: NodeStatus| {
        let list = items(&list);
        async move {
            let extra = format!("    tolerated_failures: {tolerated}\n");
            let options = RunOptions::new()
                .input(list)
                .strategy(strategy(StrategyKind::AllSettled));
            let (report, _) = run_with(&probes(&extra), options).await;
            let each = node(&report, "each");
            assert_eq!(each.status, expected, "tolerated {tolerated}: {each:#?}");
            assert_eq!(each.items.map(|c| c.failed), Some(2));
            each.clone()
        }
    };
    check("2", NodeStatus::Succeeded).await;
    check("\"20%\"", NodeStatus::Succeeded).await;
    check("\"19%\"", NodeStatus::Failed).await;
    let failed = check("1", NodeStatus::Failed).await;
    assert_eq!(
        failed.error.as_deref(),
        Some("2 of 10 items failed (1 tolerated); item 3: each failed on attempt 1")
    );
    // The output holds every item, `null` where one failed.
    assert_eq!(failed.output[3], Value::Null);
    assert_eq!(failed.output[4]["id"], "each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_fails_fast_and_cancels_the_other_items_at_once() {
    let mut list = vec![(5_000, false); 6];
    list[2] = (20, true);
    let started = Instant::now();
    let options = RunOptions::new()
        .input(items(&list))
        .strategy(strategy(StrategyKind::Parallel));
    let (report, _) = run_with(&probes(""), options).await;
    assert!(started.elapsed().as_millis() < 2_000, "{:?}", started.elapsed());
    assert_eq!(report.status, RunStatus::Failed);
    let each = node(&report, "each");
    assert_eq!(each.status, NodeStatus::Failed);
    let statuses = statuses(&report, "each");
    assert_eq!(statuses[2], NodeStatus::Failed);
    assert_eq!(statuses.iter().filter(|s| **s == NodeStatus::Cancelled).count(), 5);
    assert_eq!(each.items.map(|c| (c.failed, c.cancelled)), Some((1, 5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_settled_runs_every_item() {
    let list = items(&[(10, true), (10, false), (10, true), (10, false), (10, false)]);
    let options = RunOptions::new()
        .input(list)
        .strategy(strategy(StrategyKind::AllSettled));
    let (report, probe) = run_with(&probes(""), options).await;
    assert_eq!(probe.runs("each"), 5);
    assert_eq!(node(&report, "each").status, NodeStatus::Failed);
    assert_eq!(
        statuses(&report, "each"),
        [
            NodeStatus::Failed,
            NodeStatus::Succeeded,
            NodeStatus::Failed,
            NodeStatus::Succeeded,
            NodeStatus::Succeeded
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_runs_items_one_at_a_time_in_index_order() {
    let list = items(&[(15, false), (1, false), (10, false), (0, false)]);
    let options = RunOptions::new()
        .input(list)
        .strategy(strategy(StrategyKind::Sequential));
    let (report, probe) = run_with(&probes(""), options).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(probe.peak(), 1);
    let runs = node(&report, "each").item_runs.clone().unwrap_or_default();
    for pair in runs.windows(2) {
        assert!(pair[0].finished_ms <= pair[1].started_ms, "{runs:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_spaces_item_starts() {
    let list = items(&[(0, false); 5]);
    let limited = configured(StrategyConfig {
        per_second: Some(20.0),
        ..StrategyConfig::new(StrategyKind::RateLimited)
    });
    let (report, _) = run_with(&probes(""), RunOptions::new().input(list).strategy(limited)).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    let starts: Vec<f64> = node(&report, "each")
        .item_runs
        .clone()
        .unwrap_or_default()
        .iter()
        .filter_map(|r| r.started_ms)
        .collect();
    for pair in starts.windows(2) {
        assert!(pair[1] - pair[0] >= 45.0, "starts {starts:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_limit_is_shared_with_other_nodes() {
    let body = "limits: { one: { max_concurrency: 1 } }
nodes:
  - id: each
    kind: probe
    for_each: \"{{ input.items }}\"
    limit: one
    config: { ms: \"{{ item.ms }}\" }
  - { id: solo, kind: probe, limit: one, config: { ms: 30 } }
";
    let (report, probe) = run_with(body, RunOptions::new().input(items(&[(30, false); 4]))).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    assert_eq!(probe.peak(), 1, "one at a time across the items and `solo`");
    assert!(node(&report, "each").limit_wait_ms.unwrap_or(0.0) > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_lists_non_lists_and_too_many_items() {
    let (report, _) = run_with(&probes(""), RunOptions::new().input(json!({ "items": [] }))).await;
    let each = node(&report, "each");
    assert_eq!((each.status, each.output.clone()), (NodeStatus::Succeeded, json!([])));
    assert_eq!(each.items.map(|c| c.total), Some(0));

    let (report, _) = run_with(&probes(""), RunOptions::new().input(json!({ "items": { "a": 1 } }))).await;
    let each = node(&report, "each");
    assert_eq!(each.status, NodeStatus::Failed);
    assert_eq!(each.error.as_deref(), Some("for_each must give a list, got an object"));

    let limits = Limits {
        max_items: 3,
        ..Limits::default()
    };
    let engine = Engine::builder().limits(limits).build();
    let wf = workflow(
        &engine,
        "nodes: [{ id: each, kind: noop, for_each: \"{{ input.items }}\" }]",
    );
    let report = engine
        .run(&wf, RunOptions::new().input(json!({ "items": [1, 2, 3, 4] })))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let each = node(&report, "each");
    assert_eq!(each.status, NodeStatus::Failed);
    assert_eq!(
        each.error.as_deref(),
        Some("for_each gave 4 items, over the limit of 3 (max_items)")
    );
}

#[test]
fn names_and_options_are_checked() {
    let (engine, _) = engine();
    let problems = |body: &str| match engine.parse_yaml(&format!("name: t\n{body}")) {
        Ok(_) => panic!("should be invalid: {body}"),
        Err(e) => e.to_string(),
    };
    let each =
        |fields: &str| format!("nodes: [{{ id: each, kind: noop, for_each: \"{{{{ input.items }}}}\", {fields} }}]");
    for name in ["input", "nodes", "env", "index"] {
        let message = problems(&each(&format!("as: {name}")));
        assert!(
            message.contains(&format!("nodes[0].as: `{name}` would hide")),
            "{message}"
        );
    }
    assert!(problems(&each("as: 1x")).contains("nodes[0].as: `1x` is not a name"));
    assert!(problems(&each("max_concurrency: 0")).contains("nodes[0].max_concurrency: must be at least 1"));
    assert!(problems(&each("tolerated_failures: \"ten\"")).contains("nodes[0].tolerated_failures: must be a count"));
    assert!(problems(&each("tolerated_failures: \"120%\"")).contains("nodes[0].tolerated_failures"));
    let plain = problems("nodes: [{ id: a, kind: noop, max_concurrency: 2, as: x }]");
    assert!(
        plain.contains("nodes[0].max_concurrency: only applies to a node with `for_each`"),
        "{plain}"
    );
    assert!(
        plain.contains("nodes[0].as: only applies to a node with `for_each`"),
        "{plain}"
    );
    // The item's name and `index` are known in config, and only there.
    let ok = "nodes: [{ id: t, kind: transform, for_each: \"{{ input.items }}\", as: user, config: { output: \"{{ user.id }}-{{ index }}\" } }]";
    assert!(engine.parse_yaml(&format!("name: t\n{ok}")).is_ok());
    let outside = problems("nodes: [{ id: t, kind: transform, config: { output: \"{{ item }}\" } }]");
    assert!(outside.contains("unknown variable `item`"), "{outside}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_item_has_its_start_and_settle_events() {
    let (engine, _) = engine();
    let wf = workflow(&engine, &probes(""));
    let mut options = RunOptions::new().input(items(&[(0, false), (5, true), (0, false)]));
    let mut rx = options.subscribe();
    let report = engine.run(&wf, options).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.status, RunStatus::Failed);
    let mut started = Vec::new();
    let mut settled = Vec::new();
    while let Some(event) = rx.recv().await {
        match event.kind {
            EventKind::ItemStarted { index, .. } => started.push(index),
            EventKind::ItemSettled { index, status, .. } => settled.push((index, status)),
            EventKind::NodeStarted { node, .. } => panic!("{node}: items are not node starts"),
            _ => {}
        }
    }
    started.sort_unstable();
    settled.sort_by_key(|s| s.0);
    assert_eq!(started, [0, 1, 2]);
    assert_eq!(
        settled,
        [
            (0, NodeStatus::Succeeded),
            (1, NodeStatus::Failed),
            (2, NodeStatus::Succeeded)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_path_reads_the_list_from_json_and_names_what_is_missing() {
    // `{{ input.x.y }}` and `{{ nodes.a.output.z }}` are read straight from the JSON.
    let body = "nodes:
  - { id: a, kind: transform, config: { output: { z: [1, 2, 3] } } }
  - { id: from_node, kind: transform, for_each: \"{{ nodes.a.output.z }}\", config: { output: \"{{ item * 10 }}\" } }
  - { id: from_input, kind: transform, for_each: \"{{ input.x.y }}\", config: { output: \"{{ index }}\" } }
  - { id: missing, kind: transform, for_each: \"{{ input.x.nope }}\", config: { output: 1 } }
  - { id: filtered, kind: transform, for_each: \"{{ input.x.y | reverse | list }}\", config: { output: \"{{ item }}\" } }
edges:
  - { from: a, to: from_node }
";
    let input = json!({ "x": { "y": ["p", "q"] } });
    let (report, _) = run_with(
        body,
        RunOptions::new()
            .input(input)
            .strategy(strategy(StrategyKind::AllSettled)),
    )
    .await;
    assert_eq!(node(&report, "from_node").output, json!([10, 20, 30]));
    assert_eq!(node(&report, "from_input").output, json!([0, 1]));
    assert_eq!(node(&report, "filtered").output, json!(["q", "p"]));
    let missing = node(&report, "missing");
    assert_eq!(missing.status, NodeStatus::Failed);
    assert_eq!(
        missing.error.as_deref(),
        Some("for_each: undefined value (`input.x.nope` is not there)")
    );
}
