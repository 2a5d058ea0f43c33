//! Durable runs: a run journaled and cut short at any record resumes to the same
//! end as a run that was never interrupted, without running again what had
//! settled. Random workflows (those of the rules' property test, `for_each`
//! included), every cut point of their record stream.

use std::sync::Arc;

use flow_engine::core::Record;
use flow_engine::journal::{Entry, Journal, LEASE, Owner, SqliteJournal, SyncLevel, Writer, now_ms};
use flow_engine::{Engine, NodeStatus, Report, ResumeOptions, RunOptions, StrategySpec};
use proptest::prelude::*;
use serde_json::Value;

use crate::props::{Case, case, document};
use crate::support::{Probe, engine};

/// An owner whose process has exited: its runs read as interrupted.
fn dead_owner() -> Owner {
    let child = std::process::Command::new("true")
        .spawn()
        .and_then(|mut c| c.wait().map(|_| c.id()));
    let pid = match child {
        Ok(pid) => pid,
        Err(e) => panic!("cannot start `true`: {e}"),
    };
    Owner {
        pid,
        ..Owner::this_process()
    }
}

fn open(dir: &std::path::Path, name: &str) -> Arc<dyn Journal> {
    match SqliteJournal::open(dir.join(name), SyncLevel::Normal) {
        Ok(j) => Arc::new(j),
        Err(e) => panic!("{e}"),
    }
}

fn writer(journal: &Arc<dyn Journal>) -> Writer {
    match Writer::start(journal.clone(), Owner::this_process()) {
        Ok(w) => w,
        Err(e) => panic!("{e}"),
    }
}

/// An output without the probe's attempt number (a unit cut short runs again
/// as its next attempt, which the probe echoes).
fn without_attempt(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "attempt")
                .map(|(k, v)| (k.clone(), without_attempt(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_attempt).collect()),
        other => other.clone(),
    }
}

struct Uninterrupted {
    report: Report,
    records: Vec<Record>,
}

async fn uninterrupted(
    engine: &Engine,
    text: &str,
    input: Value,
    spec: &StrategySpec,
    dir: &std::path::Path,
) -> Uninterrupted {
    let journal = open(dir, "whole.db");
    let wf = match engine.parse_json(text) {
        Ok(wf) => wf,
        Err(e) => panic!("{e}\n{text}"),
    };
    let options = RunOptions::new()
        .input(input)
        .strategy_spec(spec.clone())
        .journal(writer(&journal));
    let report = match engine.run(&wf, options).await {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let stored = match journal.load(&report.run_id).await {
        Ok(Some(s)) => s,
        other => panic!("the run is not in the journal: {other:?}"),
    };
    Uninterrupted {
        report,
        records: stored.records.into_iter().map(|(_, r)| r).collect(),
    }
}

/// Copies the first `cut` records into a fresh journal, as a process that died
/// there would have left them, and resumes the run from it.
async fn resume_after(
    engine: &Engine,
    probe: &Probe,
    whole: &Uninterrupted,
    cut: usize,
    dir: &std::path::Path,
) -> Result<Report, String> {
    let journal = open(dir, &format!("cut{cut}.db"));
    let run_id = whole.report.run_id.as_str();
    let lease = now_ms() + LEASE.as_millis() as i64;
    let owner = dead_owner();
    journal
        .create(run_id, "prop", &whole.records[0], &owner, lease)
        .await
        .map_err(|e| e.to_string())?;
    let entries: Vec<Entry> = whole.records[1..cut]
        .iter()
        .enumerate()
        .map(|(i, record)| Entry {
            run_id: Arc::from(run_id),
            seq: i as u64 + 2,
            record: record.clone(),
        })
        .collect();
    if !entries.is_empty() {
        journal.append(&owner, &entries).await.map_err(|e| e.to_string())?;
    }
    probe.reset();
    let resumed = engine
        .resume(&writer(&journal), run_id, ResumeOptions::new())
        .await
        .map_err(|e| format!("resume after {cut} records: {e}"))?;
    resumed.handle.wait().await.map_err(|e| e.to_string())
}

/// What the records before the cut say ran to the end: node ids, and
/// (node id, item) of items.
fn settled_before(records: &[Record]) -> (Vec<String>, Vec<(String, usize)>) {
    let mut nodes = Vec::new();
    let mut items = Vec::new();
    for record in records {
        match record {
            Record::NodeSettled { node, .. } => nodes.push(node.clone()),
            Record::ItemSettled { node, item, .. } => items.push((node.clone(), item.index)),
            _ => {}
        }
    }
    (nodes, items)
}

fn compare(case_text: &str, whole: &Uninterrupted, cut: usize, resumed: &Report, probe: &Probe) -> Result<(), String> {
    let here = |what: String| {
        format!(
            "cut after {cut} of {} records: {what}\n{case_text}",
            whole.records.len()
        )
    };
    if resumed.status != whole.report.status {
        return Err(here(format!(
            "run {} instead of {}",
            resumed.status, whole.report.status
        )));
    }
    let (settled, items) = settled_before(&whole.records[..cut]);
    for (id, expected) in whole.report.nodes.iter() {
        let Some(got) = resumed.node(id) else {
            return Err(here(format!("{id} is missing")));
        };
        if got.status != expected.status {
            return Err(here(format!("{id} {} instead of {}", got.status, expected.status)));
        }
        if without_attempt(&got.output) != without_attempt(&expected.output) {
            return Err(here(format!(
                "{id} output {} instead of {}",
                got.output, expected.output
            )));
        }
        let item_statuses = |r: &flow_engine::NodeReport| {
            r.item_runs
                .as_ref()
                .map(|runs| runs.iter().map(|i| i.status).collect::<Vec<_>>())
        };
        if item_statuses(got) != item_statuses(expected) {
            return Err(here(format!(
                "{id} items {:?} instead of {:?}",
                item_statuses(got),
                item_statuses(expected)
            )));
        }
        if settled.contains(&id.to_owned()) {
            // Settled before the cut: taken from the journal, not run again.
            if got.attempts != expected.attempts {
                return Err(here(format!(
                    "{id}: {} attempts instead of {}",
                    got.attempts, expected.attempts
                )));
            }
            if probe.runs(id) != 0 {
                return Err(here(format!(
                    "{id} had settled and ran again ({} attempts)",
                    probe.runs(id)
                )));
            }
        }
    }
    // An item settled before the cut does not run again: the probe counts the
    // node's attempts, items included, so compare with the items still to run.
    for (id, expected) in whole.report.nodes.iter() {
        let Some(runs) = &expected.item_runs else { continue };
        if settled.contains(&id.to_owned()) {
            continue;
        }
        let done_before: Vec<usize> = items.iter().filter(|(n, _)| n == id).map(|(_, i)| *i).collect();
        let may_run: u32 = runs
            .iter()
            .filter(|r| !done_before.contains(&r.index))
            .map(|r| r.attempts.max(1))
            .sum();
        if probe.runs(id) > may_run {
            return Err(here(format!(
                "{id}: {} item attempts after the cut, but only {may_run} were left to run",
                probe.runs(id)
            )));
        }
    }
    Ok(())
}

fn strategies() -> Vec<StrategySpec> {
    // Outcomes that do not depend on timing: all-settled runs everything;
    // sequential stops at the first failure, in a fixed order.
    vec![StrategySpec::new("all-settled"), StrategySpec::new("sequential")]
}

fn check_case(case: &Case) -> Result<(), String> {
    let text = document(case);
    let input = case.input();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (engine, probe) = engine();
    for spec in strategies() {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let whole = runtime.block_on(uninterrupted(&engine, &text, input.clone(), &spec, dir.path()));
        let Some(Record::RunFinished { .. }) = whole.records.last() else {
            return Err(format!("the run's last record is not its end\n{text}"));
        };
        // Every cut from "only started" to "all but the end".
        let n = whole.records.len();
        let step = (n / 8).max(1);
        let mut cuts: Vec<usize> = (1..n).step_by(step).chain([n - 1]).collect();
        cuts.dedup();
        for cut in cuts {
            let resumed = runtime.block_on(resume_after(&engine, &probe, &whole, cut, dir.path()))?;
            compare(&format!("{} {text}", spec.kind), &whole, cut, &resumed, &probe)?;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn a_run_cut_anywhere_resumes_to_the_same_end(case in case()) {
        if let Err(broken) = check_case(&case) {
            prop_assert!(false, "{broken}");
        }
    }
}

/// Retrying a failed run runs its failed nodes (and what they hold back)
/// again, and keeps what succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_failed_runs_only_what_failed() {
    let (engine, probe) = engine();
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let journal = open(dir.path(), "runs.db");
    let w = writer(&journal);
    let wf = crate::support::workflow(
        &engine,
        r#"
strategy: { kind: all-settled }
nodes:
  - { id: ok, kind: probe }
  - { id: flaky, kind: probe, config: { fail_attempts: 1 }, retry: { max_attempts: 1 } }
  - { id: after, kind: probe }
  - { id: each, kind: probe, for_each: "{{ [0, 1, 2] }}", config: { fail_attempts: "{{ 1 if item == 1 else 0 }}" } }
edges:
  - { from: flaky, to: after }
"#,
    );
    let report = match engine.run(&wf, RunOptions::new().journal(w.clone())).await {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(report.node("flaky").map(|n| n.status), Some(NodeStatus::Failed));
    assert_eq!(report.node("after").map(|n| n.status), Some(NodeStatus::UpstreamFailed));
    assert_eq!(report.node("each").map(|n| n.status), Some(NodeStatus::Failed));
    probe.reset();
    let refused = engine.resume(&w, &report.run_id, ResumeOptions::new()).await;
    assert!(
        matches!(
            &refused,
            Err(flow_engine::Error::Resume(flow_engine::ResumeError::Finished {
                status: flow_engine::RunStatus::Failed,
                ..
            }))
        ),
        "{refused:?}"
    );
    let resumed = match engine
        .resume(&w, &report.run_id, ResumeOptions::new().retry_failed(true))
        .await
    {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let again = match resumed.handle.wait().await {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(again.status, flow_engine::RunStatus::Succeeded, "{again:#?}");
    assert_eq!(probe.runs("ok"), 0, "succeeded: kept");
    assert_eq!(probe.runs("flaky"), 1);
    assert_eq!(probe.runs("after"), 1);
    assert_eq!(probe.runs("each"), 1, "only the failed item runs again");
    assert_eq!(again.run_id, report.run_id);
}

/// One fact, two forms: every journaled record of a run (past its start) has
/// its event, of the same kind, node, item and attempt, in the same order for
/// each node and item (they run side by side: only a unit's own facts are
/// ordered).
/// Events without a record are those the journal can tell again (nodes
/// skipped or cancelled before they started) or never keeps (ready, limits).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_is_published_as_its_event_in_order() {
    use flow_engine::EventKind;
    let dir = tempfile::tempdir().expect("a temporary folder");
    let journal = open(dir.path(), "runs.db");
    let w = writer(&journal);
    let yaml = r#"
name: facts
input: { list: [1, 2, 3] }
strategy: { kind: all-settled }
nodes:
  - { id: flaky, kind: fail, config: { message: "no" }, retry: { max_attempts: 2, backoff_ms: 1 } }
  - id: each
    kind: transform
    for_each: "{{ input.list }}"
    config: { output: "{{ item }}" }
  - { id: after, kind: noop }
  - { id: never, kind: noop }
edges:
  - { from: each, to: after }
  - { from: each, to: never, when: "false" }
"#;
    let engine = Engine::new();
    let workflow = engine.parse_yaml(yaml).expect("a valid workflow");
    let mut options = RunOptions::new().journal(w.clone());
    let mut events = options.subscribe();
    let handle = engine.start(&workflow, options).expect("the run starts");
    let run_id = handle.run_id().to_owned();
    handle.wait().await.expect("a report");
    w.flush().await.expect("flushed");
    let mut published = Vec::new();
    while let Some(event) = events.recv().await {
        published.push(event.kind);
    }
    let stored = journal.load(&run_id).await.expect("read").expect("the run");
    // (kind, node, item, attempt) of each form.
    let of_record = |r: &Record| -> Option<(String, String, Option<usize>, Option<u32>)> {
        match r {
            Record::NodeStarted {
                node, item, attempt, ..
            } => Some(("started".into(), node.clone(), *item, Some(*attempt))),
            Record::AttemptFailed {
                node, item, attempt, ..
            } => Some(("attempt_failed".into(), node.clone(), *item, Some(*attempt))),
            Record::ItemsListed { node, .. } => Some(("items_listed".into(), node.clone(), None, None)),
            Record::ItemSettled { node, item, .. } => {
                Some(("item_settled".into(), node.clone(), Some(item.index), None))
            }
            Record::NodeSettled { node, .. } => Some(("node_settled".into(), node.clone(), None, None)),
            Record::RunFinished { .. } => Some(("run_finished".into(), String::new(), None, None)),
            _ => None,
        }
    };
    let of_event = |e: &EventKind| -> Option<(String, String, Option<usize>, Option<u32>)> {
        match e {
            EventKind::NodeStarted { node, attempt } => {
                Some(("started".into(), node.to_string(), None, Some(*attempt)))
            }
            EventKind::ItemStarted { node, index, attempt } => {
                Some(("started".into(), node.to_string(), Some(*index), Some(*attempt)))
            }
            EventKind::AttemptFailed {
                node, item, attempt, ..
            } => Some(("attempt_failed".into(), node.to_string(), *item, Some(*attempt))),
            EventKind::ItemsListed { node, .. } => Some(("items_listed".into(), node.to_string(), None, None)),
            EventKind::ItemSettled { node, index, .. } => {
                Some(("item_settled".into(), node.to_string(), Some(*index), None))
            }
            EventKind::NodeSettled { node, .. } => Some(("node_settled".into(), node.to_string(), None, None)),
            EventKind::RunFinished { .. } => Some(("run_finished".into(), String::new(), None, None)),
            _ => None,
        }
    };
    let records: Vec<_> = stored.records.iter().filter_map(|(_, r)| of_record(r)).collect();
    let events: Vec<_> = published.iter().filter_map(of_event).collect();
    // Node by node, the records are the events, with those of the node that
    // never ran left out.
    let never_ran = |e: &(String, String, Option<usize>, Option<u32>)| e.0 == "node_settled" && e.1 == "never";
    let expected: Vec<_> = events.into_iter().filter(|e| !never_ran(e)).collect();
    let units: std::collections::BTreeSet<(String, Option<usize>)> =
        expected.iter().map(|e| (e.1.clone(), e.2)).collect();
    for (node, item) in units {
        let of = |list: &[(String, String, Option<usize>, Option<u32>)]| {
            list.iter()
                .filter(|e| e.1 == node && e.2 == item)
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(of(&records), of(&expected), "the facts of `{node}` item {item:?}");
    }
    assert_eq!(records.len(), expected.len(), "{records:?}\n{expected:?}");
    assert_eq!(records.last().map(|r| r.0.as_str()), Some("run_finished"));
    assert_eq!(expected.last().map(|r| r.0.as_str()), Some("run_finished"));
    assert!(records.iter().any(|r| r.0 == "attempt_failed"), "{records:?}");
    assert!(
        records.iter().filter(|r| r.0 == "item_settled").count() == 3,
        "{records:?}"
    );
}
