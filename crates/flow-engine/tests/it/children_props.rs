//! Random parents whose nodes run random child workflows (`workflow` nodes,
//! children from the property test of [`crate::props`]): the parent's report
//! agrees with the model, where a `workflow` node fails exactly when its
//! child has a failure that is not tolerated; every child node runs at most
//! once per child run; each node that ran a child names it.

use std::sync::Arc;

use flow_engine::strategy::{StrategyConfig, StrategyKind};
use flow_engine::{Engine, NodeStatus, RegisteredCatalog, RunOptions};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::props::{Case, case, document};
use crate::support::{Probe, configured};

/// A child's document: named `c<k>`, its node ids `c<k>n<i>` (so the probe
/// counts them apart from the parent's).
fn child_document(k: usize, case: &Case) -> String {
    let mut doc: Value = serde_json::from_str(&document(case)).unwrap_or_default();
    doc["name"] = json!(format!("c{k}"));
    let rename = |v: &mut Value| {
        if let Some(id) = v.as_str() {
            *v = json!(format!("c{k}{id}"));
        }
    };
    for node in doc["nodes"].as_array_mut().into_iter().flatten() {
        rename(&mut node["id"]);
    }
    for edge in doc["edges"].as_array_mut().into_iter().flatten() {
        rename(&mut edge["from"]);
        rename(&mut edge["to"]);
    }
    doc.to_string()
}

/// Whether a child run of `case` fails: a failure not tolerated, in the
/// model (a fail-fast strategy cancels the rest then, which changes no
/// verdict).
fn child_fails(case: &Case) -> bool {
    case.expected()
        .iter()
        .enumerate()
        .any(|(i, s)| case.hard_failure(i, *s))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn parents_with_child_workflows_agree_with_the_model(
        parent in case(),
        kids in prop::collection::vec(case(), 1..=3),
        picks in prop::collection::vec(prop::option::weighted(0.4, 0usize..3), 12),
    ) {
        let probe = Probe::default();
        let catalog = Arc::new(RegisteredCatalog::new());
        let engine = Engine::builder().register("probe", probe.clone()).catalog(catalog.clone()).build();
        for (k, kid) in kids.iter().enumerate() {
            let child = engine.parse_json(&child_document(k, kid));
            prop_assert!(child.is_ok(), "{:?}", child.err());
            if let Ok(child) = child {
                catalog.register(child);
            }
        }
        // Plain nodes that become `workflow` nodes, and which child each runs.
        let mut model = parent.clone();
        let mut doc: Value = serde_json::from_str(&document(&parent)).unwrap_or_default();
        let mut calls: Vec<(usize, usize)> = Vec::new();
        for (j, node) in parent.nodes.iter().enumerate() {
            let Some(k) = picks[j].map(|k| k % kids.len()) else { continue };
            if node.each.is_some() {
                continue;
            }
            doc["nodes"][j]["kind"] = json!("workflow");
            doc["nodes"][j]["config"] = json!({ "workflow": format!("c{k}"), "input": kids[k].input() });
            model.nodes[j].fail = child_fails(&kids[k]);
            calls.push((j, k));
        }
        let workflow = engine.parse_json(&doc.to_string());
        prop_assert!(workflow.is_ok(), "{:?}", workflow.err());
        let Ok(workflow) = workflow else { return Ok(()) };
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
        prop_assert!(runtime.is_ok());
        let Ok(runtime) = runtime else { return Ok(()) };
        let options = RunOptions::new()
            .input(parent.input())
            .strategy(configured(StrategyConfig::new(StrategyKind::AllSettled)));
        let report = runtime.block_on(async { engine.run(&workflow, options).await });
        prop_assert!(report.is_ok(), "{:?}", report.err());
        let Ok(report) = report else { return Ok(()) };

        let expected = model.expected();
        for (j, want) in expected.iter().enumerate() {
            let got = report.nodes.get(&format!("n{j}")).map(|n| n.status);
            prop_assert_eq!(got, Some(*want), "node n{} of {}", j, doc);
        }
        // Each child node ran at most once per child run that was started.
        for (k, kid) in kids.iter().enumerate() {
            let started = calls
                .iter()
                .filter(|(j, kk)| *kk == k && matches!(expected[*j], NodeStatus::Succeeded | NodeStatus::Failed))
                .count() as u32;
            for (i, node) in kid.nodes.iter().enumerate() {
                // A `for_each` node's attempts are its items'.
                let per_run = node.each.as_ref().map_or(1, |e| e.items.len() as u32);
                let runs = probe.runs(&format!("c{k}n{i}"));
                prop_assert!(
                    runs <= started * per_run,
                    "c{}n{} ran {} times in {} child runs", k, i, runs, started
                );
            }
        }
        for (j, _) in &calls {
            let node = report.nodes.get(&format!("n{j}"));
            let ran = matches!(expected[*j], NodeStatus::Succeeded | NodeStatus::Failed);
            prop_assert_eq!(node.and_then(|n| n.child_run_id.as_ref()).is_some(), ran, "n{}", j);
        }
    }
}
