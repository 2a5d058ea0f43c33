//! Nodes that wait: `wait` for a time, `signal` for a signal sent to the run.
//! In memory, and journaled: a run resumed in the middle of a wait waits until
//! the same instant, and a signal taken before a restart is not taken again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flow_engine::core::Record;
use flow_engine::journal::{Entry, Journal, LEASE, Owner, SqliteJournal, SyncLevel, Writer, now_ms};
use flow_engine::{Engine, NodeStatus, ResumeOptions, RunOptions, RunStatus};
use serde_json::json;

fn engine() -> Engine {
    Engine::builder().build()
}

fn parse(engine: &Engine, yaml: &str) -> Arc<flow_engine::Workflow> {
    engine.parse_yaml(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

fn sqlite(dir: &std::path::Path, name: &str) -> Arc<dyn Journal> {
    Arc::new(SqliteJournal::open(dir.join(name), SyncLevel::Normal).unwrap_or_else(|e| panic!("{e}")))
}

fn writer(journal: &Arc<dyn Journal>, owner: Owner) -> Writer {
    Writer::start(journal.clone(), owner).unwrap_or_else(|e| panic!("{e}"))
}

/// An owner whose process has exited: its runs read as interrupted.
fn dead_owner() -> Owner {
    let mut child = std::process::Command::new("true")
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `true`: {e}"));
    let _ = child.wait();
    Owner {
        pid: child.id(),
        ..Owner::this_process()
    }
}

/// Polls `journal` until run `run_id` has a record `pick` accepts; the records so far.
async fn records_until(journal: &Arc<dyn Journal>, run_id: &str, pick: impl Fn(&Record) -> bool) -> Vec<Record> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let records: Vec<Record> = journal
            .records_after(run_id, 0)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        if records.iter().any(&pick) {
            return records;
        }
        assert!(Instant::now() < deadline, "no such record: {records:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A copy of `records` in a fresh journal, as a process that died left them;
/// the run resumed from there.
async fn resume_copy(engine: &Engine, dir: &std::path::Path, run_id: &str, records: &[Record]) -> flow_engine::Report {
    let journal = sqlite(dir, "copy.db");
    let owner = dead_owner();
    let lease = now_ms() + LEASE.as_millis() as i64;
    journal
        .create(run_id, "w", &records[0], &owner, lease)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let entries: Vec<Entry> = records[1..]
        .iter()
        .enumerate()
        .map(|(i, record)| Entry {
            run_id: Arc::from(run_id),
            seq: i as u64 + 2,
            record: record.clone(),
        })
        .collect();
    journal.append(&owner, &entries).await.unwrap_or_else(|e| panic!("{e}"));
    let resumed = engine
        .resume(&writer(&journal, Owner::this_process()), run_id, ResumeOptions::new())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    resumed.handle.wait().await.unwrap_or_else(|e| panic!("{e}"))
}

/// `wf` started on `journal`, parked when it waits: its id and report.
async fn start_parked(
    engine: &Engine,
    wf: &Arc<flow_engine::Workflow>,
    journal: &Arc<dyn Journal>,
) -> (String, flow_engine::Report) {
    let handle = engine
        .start(
            wf,
            RunOptions::new()
                .journal(writer(journal, Owner::this_process()))
                .park_when_waiting(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let run_id = handle.run_id().to_owned();
    let parked = handle.wait().await.unwrap_or_else(|e| panic!("{e}"));
    (run_id, parked)
}

#[tokio::test]
async fn a_wait_waits_in_memory() {
    let engine = engine();
    let wf = parse(
        &engine,
        "name: w\nnodes:\n  - { id: nap, kind: wait, config: { for: 300ms } }\n  - { id: at, kind: wait, config: { until: \"2001-01-01T00:00:00Z\" } }\n",
    );
    let started = Instant::now();
    let report = engine
        .run(&wf, RunOptions::new())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(290),
        "{:?}",
        started.elapsed()
    );
    let nap = &report.nodes.get("nap").unwrap_or_else(|| panic!("nap")).output;
    assert!(nap["waited_ms"].as_i64().unwrap_or(0) >= 290, "{nap}");
    let woke = nap["woke_at"].as_str().unwrap_or_default();
    assert!(flow_nodes::parse_instant(woke).is_ok(), "{nap}");
    // An instant in the past: no wait at all.
    let at = &report.nodes.get("at").unwrap_or_else(|| panic!("at")).output;
    assert!(at["woke_at"].as_str().is_some(), "{at}");
}

#[tokio::test]
async fn signals_in_memory_are_taken_oldest_first_and_once() {
    let engine = engine();
    let wf = parse(
        &engine,
        "name: s
nodes:
  - { id: first, kind: signal, config: { name: approval } }
  - { id: second, kind: signal, config: { name: approval } }
  - { id: late, kind: signal, config: { name: other, timeout: 200ms } }
edges: [{ from: first, to: second }]
",
    );
    let handle = engine.start(&wf, RunOptions::new()).unwrap_or_else(|e| panic!("{e}"));
    // Sent before any node waits: kept, never lost.
    handle.signals().send("approval", json!({ "n": 1 }));
    handle.signals().send("approval", json!({ "n": 2 }));
    let report = handle.wait().await.unwrap_or_else(|e| panic!("{e}"));
    let node = |id: &str| report.nodes.get(id).unwrap_or_else(|| panic!("{id}")).clone();
    assert_eq!(node("first").output, json!({ "n": 1 }));
    assert_eq!(node("second").output, json!({ "n": 2 }));
    assert_eq!(node("late").status, NodeStatus::Failed);
    assert_eq!(node("late").error.as_deref(), Some("no signal `other` within 200ms"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_waits_until_the_same_instant() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let engine = engine();
    let wf = parse(
        &engine,
        "name: w\nnodes:\n  - { id: first, kind: noop }\n  - { id: nap, kind: wait, config: { for: 3s } }\nedges: [{ from: first, to: nap }]\n",
    );
    let journal = sqlite(dir.path(), "run.db");
    let live = engine
        .start(&wf, RunOptions::new().journal(writer(&journal, Owner::this_process())))
        .unwrap_or_else(|e| panic!("{e}"));
    let run_id = live.run_id().to_owned();
    let records = records_until(&journal, &run_id, |r| matches!(r, Record::NodeWaiting { .. })).await;
    live.cancel();
    let until = records
        .iter()
        .find_map(|r| match r {
            Record::NodeWaiting { waiting, .. } => waiting.until_ms,
            _ => None,
        })
        .unwrap_or_else(|| panic!("no instant: {records:?}"));
    // A second later, the process that ran it is gone; another resumes it.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let resumed_at = Instant::now();
    let report = resume_copy(&engine, dir.path(), &run_id, &records).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    let nap = &report.nodes.get("nap").unwrap_or_else(|| panic!("nap")).output;
    let woke = flow_nodes::parse_instant(nap["woke_at"].as_str().unwrap_or_default()).unwrap_or(0);
    assert!(
        woke >= until && woke < until + 1500,
        "woke at {woke}, due {until}: {nap}"
    );
    // Not the whole 3 s again.
    assert!(
        resumed_at.elapsed() < Duration::from_millis(2700),
        "{:?}",
        resumed_at.elapsed()
    );
    assert!(
        nap["waited_ms"].as_i64().unwrap_or(0) >= 2900,
        "counted from the wait's start: {nap}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journaled_signal_is_taken_once_across_a_restart() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let engine = engine();
    let wf = parse(
        &engine,
        "name: s
nodes:
  - { id: first, kind: signal, config: { name: approval } }
  - { id: hold, kind: wait, config: { for: 3s } }
  - { id: second, kind: signal, config: { name: approval } }
edges: [{ from: first, to: hold }, { from: hold, to: second }]
",
    );
    let journal = sqlite(dir.path(), "run.db");
    let live = engine
        .start(&wf, RunOptions::new().journal(writer(&journal, Owner::this_process())))
        .unwrap_or_else(|e| panic!("{e}"));
    let run_id = live.run_id().to_owned();
    records_until(
        &journal,
        &run_id,
        |r| matches!(r, Record::NodeWaiting { node, .. } if node == "first"),
    )
    .await;
    // Written to the journal by anyone; the bell makes the run look at once.
    let one = journal
        .send_signal(&run_id, "approval", &json!({ "n": 1 }))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    live.signals().ring();
    let records = records_until(
        &journal,
        &run_id,
        |r| matches!(r, Record::NodeWaiting { node, .. } if node == "hold"),
    )
    .await;
    live.cancel();
    let taken: Vec<u64> = records
        .iter()
        .filter_map(|r| match r {
            Record::SignalReceived { id, name, .. } if name == "approval" => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(taken, vec![one]);
    // Resumed by another process from a copy of the records (its signals
    // table has the same two signals, numbered alike): the signal `first`
    // took is not taken again; `second` gets the next one.
    let copy_dir = dir.path().join("copy");
    std::fs::create_dir_all(&copy_dir).unwrap_or_else(|e| panic!("{e}"));
    let copied = sqlite(&copy_dir, "copy.db");
    let (engine2, records2, run2, dir2) = (engine.clone(), records.clone(), run_id.clone(), copy_dir.clone());
    let task = tokio::spawn(async move { resume_copy(&engine2, &dir2, &run2, &records2).await });
    records_until(&copied, &run_id, |r| matches!(r, Record::RunResumed { .. })).await;
    for n in [1, 2] {
        copied
            .send_signal(&run_id, "approval", &json!({ "n": n }))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let report = task.await.unwrap_or_else(|e| panic!("{e}"));
    let node = |id: &str| report.nodes.get(id).unwrap_or_else(|| panic!("{id}")).clone();
    assert_eq!(node("first").output, json!({ "n": 1 }));
    assert_eq!(node("second").output, json!({ "n": 2 }), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_run_is_parked_then_woken_when_due() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let engine = engine();
    let wf = parse(
        &engine,
        "name: w\nnodes:\n  - { id: first, kind: noop }\n  - { id: nap, kind: wait, config: { for: 2s } }\n  - { id: last, kind: noop }\nedges: [{ from: first, to: nap }, { from: nap, to: last }]\n",
    );
    let journal = sqlite(dir.path(), "run.db");
    let (run_id, parked) = start_parked(&engine, &wf, &journal).await;
    assert_eq!(parked.status, RunStatus::Waiting, "{parked:?}");
    let nap = parked.nodes.get("nap").unwrap_or_else(|| panic!("nap"));
    assert_eq!(nap.status, NodeStatus::Waiting);
    assert!(
        nap.waiting_for.as_ref().is_some_and(|w| w.get("until").is_some()),
        "{nap:?}"
    );
    assert_eq!(parked.nodes.get("last").map(|n| n.status), Some(NodeStatus::Pending));
    // Held by nobody, due in about 2 s.
    let row = journal
        .row(&run_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("row"));
    assert_eq!(row.status, RunStatus::Waiting);
    assert!(row.owner.is_none(), "{row:?}");
    assert!(journal.due(now_ms(), 10).await.unwrap_or_default().is_empty());
    let next = journal
        .next_wake()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no timer"));
    tokio::time::sleep(Duration::from_millis((next - now_ms()).max(0) as u64 + 50)).await;
    assert_eq!(
        journal.due(now_ms(), 10).await.unwrap_or_default(),
        vec![run_id.clone()]
    );
    // Woken by another process (this test, as a server would); of two wakers, one.
    let waker = writer(&journal, Owner::this_process());
    let resumed = engine
        .resume(&waker, &run_id, ResumeOptions::new().park_when_waiting())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let again = engine.resume(&waker, &run_id, ResumeOptions::new()).await;
    assert!(again.is_err(), "a run is woken once");
    let report = resumed.handle.wait().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    let nap = &report.nodes.get("nap").unwrap_or_else(|| panic!("nap")).output;
    assert!(nap["waited_ms"].as_i64().unwrap_or(0) >= 1900, "{nap}");
    let kinds: Vec<&'static str> = journal
        .records_after(&run_id, 0)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|(_, r)| r.kind())
        .collect();
    for kind in ["node_waiting", "run_waiting", "run_woken", "run_finished"] {
        assert!(kinds.contains(&kind), "no {kind}: {kinds:?}");
    }
    assert_eq!(
        kinds.iter().filter(|k| **k == "node_started").count(),
        4,
        "first, nap twice (parked, woken), last: {kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_run_is_due_when_a_signal_comes() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let engine = engine();
    let wf = parse(
        &engine,
        "name: s\nnodes:\n  - { id: go, kind: signal, config: { name: go } }\n",
    );
    let journal = sqlite(dir.path(), "run.db");
    let (run_id, parked) = start_parked(&engine, &wf, &journal).await;
    assert_eq!(parked.status, RunStatus::Waiting);
    assert_eq!(
        journal.next_wake().await.unwrap_or_else(|e| panic!("{e}")),
        None,
        "no timer: only a signal wakes it"
    );
    journal
        .send_signal(&run_id, "go", &json!("now"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        journal.due(now_ms() + 1, 10).await.unwrap_or_default(),
        vec![run_id.clone()]
    );
    let resumed = engine
        .resume(
            &writer(&journal, Owner::this_process()),
            &run_id,
            ResumeOptions::new().park_when_waiting(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let report = resumed.handle.wait().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(report.nodes.get("go").map(|n| n.output.clone()), Some(json!("now")));
}

/// One node of a generated chain.
#[derive(Debug, Clone)]
enum Step {
    Noop,
    Wait(u64),
    Signal(&'static str),
}

fn chain_yaml(steps: &[Step]) -> String {
    let mut yaml = String::from("name: chain\nnodes:\n");
    for (i, step) in steps.iter().enumerate() {
        let line = match step {
            Step::Noop => format!("  - {{ id: n{i}, kind: noop }}\n"),
            Step::Wait(ms) => format!("  - {{ id: n{i}, kind: wait, config: {{ for: {ms}ms }} }}\n"),
            Step::Signal(name) => format!("  - {{ id: n{i}, kind: signal, config: {{ name: {name} }} }}\n"),
        };
        yaml.push_str(&line);
    }
    if steps.len() > 1 {
        yaml.push_str("edges:\n");
        for i in 1..steps.len() {
            yaml.push_str(&format!("  - {{ from: n{}, to: n{i} }}\n", i - 1));
        }
    }
    yaml
}

/// The signals a chain takes, in the order sent: one per `signal` node, of
/// its name, numbered in its payload.
fn signals_for(steps: &[Step]) -> Vec<(&'static str, serde_json::Value)> {
    steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            Step::Signal(name) => Some((*name, json!({ "for": i }))),
            _ => None,
        })
        .collect()
}

/// A chain run whole, then cut after each record and resumed by another
/// process (the signals sent again in the same order, as its journal has
/// them): the same report; each signal taken by one node, once; none lost.
async fn check_chain(steps: Vec<Step>) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let engine = engine();
    let yaml = chain_yaml(&steps);
    let wf = parse(&engine, &yaml);
    let signals = signals_for(&steps);
    let whole_journal = sqlite(dir.path(), "whole.db");
    let live = engine
        .start(
            &wf,
            RunOptions::new().journal(writer(&whole_journal, Owner::this_process())),
        )
        .map_err(|e| e.to_string())?;
    let run_id = live.run_id().to_owned();
    for (name, payload) in &signals {
        whole_journal
            .send_signal(&run_id, name, payload)
            .await
            .map_err(|e| e.to_string())?;
    }
    live.signals().ring();
    let whole = live.wait().await.map_err(|e| e.to_string())?;
    if whole.status != RunStatus::Succeeded {
        return Err(format!("the whole run {}\n{yaml}", whole.status));
    }
    let records: Vec<Record> = whole_journal
        .records_after(&run_id, 0)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    for cut in 1..records.len() {
        let cut_dir = dir.path().join(format!("cut{cut}"));
        std::fs::create_dir_all(&cut_dir).map_err(|e| e.to_string())?;
        let copy = sqlite(&cut_dir, "copy.db");
        let owner = dead_owner();
        let lease = now_ms() + LEASE.as_millis() as i64;
        copy.create(&run_id, "chain", &records[0], &owner, lease)
            .await
            .map_err(|e| e.to_string())?;
        let entries: Vec<Entry> = records[1..cut]
            .iter()
            .enumerate()
            .map(|(i, record)| Entry {
                run_id: Arc::from(run_id.as_str()),
                seq: i as u64 + 2,
                record: record.clone(),
            })
            .collect();
        if !entries.is_empty() {
            copy.append(&owner, &entries).await.map_err(|e| e.to_string())?;
        }
        for (name, payload) in &signals {
            copy.send_signal(&run_id, name, payload)
                .await
                .map_err(|e| e.to_string())?;
        }
        let resumed = engine
            .resume(&writer(&copy, Owner::this_process()), &run_id, ResumeOptions::new())
            .await
            .map_err(|e| format!("cut {cut}: {e}"))?;
        let report = resumed.handle.wait().await.map_err(|e| e.to_string())?;
        let here = |what: String| format!("cut after {cut} of {} records: {what}\n{yaml}", records.len());
        if report.status != whole.status {
            return Err(here(format!("{} instead of {}", report.status, whole.status)));
        }
        for (id, expected) in whole.nodes.iter() {
            let got = report.nodes.get(id).ok_or_else(|| here(format!("{id} missing")))?;
            let comparable = |v: &serde_json::Value| match v.get("woke_at") {
                Some(_) => serde_json::Value::Null,
                None => v.clone(),
            };
            if comparable(&got.output) != comparable(&expected.output) {
                return Err(here(format!("{id}: {} instead of {}", got.output, expected.output)));
            }
        }
        let taken: Vec<(String, u64)> = copy
            .records_after(&run_id, 0)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter_map(|(_, r)| match r {
                Record::SignalReceived { name, id, .. } => Some((name, id)),
                _ => None,
            })
            .collect();
        let mut unique = taken.clone();
        unique.sort();
        unique.dedup();
        if unique.len() != taken.len() {
            return Err(here(format!("a signal taken twice: {taken:?}")));
        }
        if taken.len() != signals.len() {
            return Err(here(format!(
                "{} signals taken of {}: {taken:?}",
                taken.len(),
                signals.len()
            )));
        }
    }
    Ok(())
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        Just(Step::Noop),
        (0u64..15).prop_map(Step::Wait),
        Just(Step::Signal("a")),
        Just(Step::Signal("b")),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 12, ..proptest::prelude::ProptestConfig::default() })]

    #[test]
    fn a_chain_of_waits_and_signals_cut_anywhere_resumes_to_the_same_end(steps in proptest::collection::vec(step(), 1..7)) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
        runtime
            .block_on(check_chain(steps))
            .map_err(proptest::test_runner::TestCaseError::fail)?;
    }
}
