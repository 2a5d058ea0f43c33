//! The runtime over a real SQLite journal: submit (and its idempotency key),
//! look up, list, cancel, retry; every refusal a typed error.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use flow_engine::journal::{Owner, RunFilter, SqliteJournal, SyncLevel, Writer};
use flow_engine::{Engine, Format, ResumeError, RunStatus};
use flow_runtime::{Error, Runtime, Submit, Submitted};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const QUICK: &str = "name: quick\ninput: { who: world }\nnodes:\n  - { id: hello, kind: transform, config: { output: 'hello {{ input.who }}' } }\n";
const SLOW: &str = "name: slow\nnodes:\n  - { id: nap, kind: delay, config: { ms: 30000 } }\n";

fn runtime(dir: &tempfile::TempDir) -> (Arc<Runtime>, Engine) {
    let journal = SqliteJournal::open(dir.path().join("runs.db"), SyncLevel::Normal).expect("a journal");
    let writer = Writer::start(Arc::new(journal), Owner::this_process()).expect("a writer");
    let engine = Engine::new();
    (Arc::new(Runtime::new(engine.clone(), writer)), engine)
}

fn started(submitted: Submitted) -> (String, flow_runtime::Live) {
    match submitted {
        Submitted::Started { run_id, live } => (run_id, live),
        Submitted::Replayed { run_id } => panic!("replayed {run_id}, expected a new run"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitted_run_is_found_listed_and_its_key_replays_it() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (runtime, engine) = runtime(&dir);
    let quick = engine.parse(QUICK, Format::Yaml).expect("valid");
    let keyed = || Submit {
        input: Some(json!({ "who": "ada" })),
        idempotency_key: Some("k-1".into()),
        ..Submit::default()
    };
    let (run_id, live) = started(runtime.submit(&quick, keyed()).await.expect("submitted"));
    let report = live
        .wait(Duration::from_secs(20), &CancellationToken::new())
        .await
        .expect("the run ends");
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(report.node("hello").map(|n| n.output.clone()), Some(json!("hello ada")));

    match runtime.submit(&quick, keyed()).await.expect("replayed") {
        Submitted::Replayed { run_id: again } => assert_eq!(again, run_id),
        Submitted::Started { run_id, .. } => panic!("a second run {run_id} for one key"),
    }

    let view = runtime.lookup(&run_id).await.expect("found");
    assert_eq!(view.report.status, RunStatus::Succeeded);
    assert_eq!(view.row.status, RunStatus::Succeeded);
    let rows = runtime
        .list(&RunFilter {
            status: Some(RunStatus::Succeeded),
            ..RunFilter::default()
        })
        .await
        .expect("listed");
    assert_eq!(
        rows.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
        [run_id.as_str()]
    );

    assert!(matches!(runtime.lookup("nope").await, Err(Error::RunNotFound(_))));
    assert!(matches!(
        runtime.cancel(&run_id).await,
        Err(Error::NotUnderWay {
            status: RunStatus::Succeeded,
            ..
        })
    ));
    assert!(matches!(
        runtime.retry(&run_id).await,
        Err(Error::Resume(ResumeError::Finished {
            status: RunStatus::Succeeded,
            ..
        }))
    ));
    assert!(matches!(
        runtime.retry("nope").await,
        Err(Error::Resume(ResumeError::NotFound { .. }))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_run_is_cancelled_and_a_stopped_runtime_starts_nothing() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let (runtime, engine) = runtime(&dir);
    let slow = engine.parse(SLOW, Format::Yaml).expect("valid");
    let (run_id, live) = started(runtime.submit(&slow, Submit::default()).await.expect("submitted"));
    assert_eq!(runtime.in_flight(), 1);
    assert!(matches!(runtime.retry(&run_id).await, Err(Error::StillRunning(_))));
    runtime.cancel(&run_id).await.expect("cancelled");
    let report = live
        .wait(Duration::from_secs(20), &CancellationToken::new())
        .await
        .expect("the run ends");
    assert_eq!(report.status, RunStatus::Cancelled);

    let bad = Submit {
        strategy: Some(serde_json::from_value(json!({ "kind": "nope" })).expect("a spec")),
        ..Submit::default()
    };
    assert!(matches!(runtime.submit(&slow, bad).await, Err(Error::BadInput(_))));
    runtime.stop();
    assert!(matches!(
        runtime.submit(&slow, Submit::default()).await,
        Err(Error::Stopping)
    ));
}

/// A folder source: valid files by their names, an invalid one kept with its
/// problems, a second file of one name listed under its file name; a reload
/// sees a new file; submitting by name starts the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_source_finds_workflows_by_name() {
    use flow_runtime::{Folder, WorkflowSource};
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("a.yaml", "name: alpha\nnodes: [{ id: x, kind: noop }]\n");
    write("b.yaml", "name: alpha\nnodes: [{ id: y, kind: noop }]\n");
    write("bad.yaml", "name: broken\nnodes: [{ id: x, kind: nope }]\n");
    write("notes.txt", "not a workflow");
    let engine = Engine::new();
    let folder = Arc::new(Folder::load(&engine, dir.path()).unwrap());
    let names: Vec<String> = folder.entries().keys().cloned().collect();
    assert_eq!(names, ["alpha", "b", "broken"]);
    assert!(folder.entries()["b"].problems[0].contains("the name `alpha` is taken by a.yaml"));
    assert_eq!(folder.entries()["alpha"].origin, "a.yaml");

    let journal_dir = tempfile::tempdir().unwrap();
    let journal = SqliteJournal::open(journal_dir.path().join("runs.db"), SyncLevel::Normal).unwrap();
    let writer = Writer::start(Arc::new(journal), Owner::this_process()).unwrap();
    let runtime = Arc::new(Runtime::new(engine.clone(), writer).with_source(folder.clone()));
    match runtime.workflow("alpah") {
        Err(flow_runtime::Error::WorkflowNotFound { did_you_mean, .. }) => {
            assert_eq!(did_you_mean.as_deref(), Some("alpha"));
        }
        other => panic!("{other:?}"),
    }
    let invalid = runtime.workflow("broken").unwrap_err().to_string();
    assert!(
        invalid.starts_with("workflow `broken` is invalid and cannot run: "),
        "{invalid}"
    );
    assert!(invalid.contains("nope"), "{invalid}");
    let (_, live) = started(runtime.submit_named("alpha", Submit::default()).await.unwrap());
    let report = live
        .wait(Duration::from_secs(10), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.workflow, "alpha");

    write("c.yaml", "name: gamma\nnodes: [{ id: z, kind: noop }]\n");
    assert!(runtime.workflow("gamma").is_err());
    runtime.source().reload().unwrap();
    assert!(runtime.workflow("gamma").is_ok());
    // One file alone is a source too.
    let one = Folder::load(&engine, &dir.path().join("c.yaml")).unwrap();
    assert_eq!(one.entries().keys().collect::<Vec<_>>(), ["gamma"]);
}

/// A subscription gets a run's records in order, live ones included, and ends
/// with the run; one from past the end ends at once; an unknown run is an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_follows_a_run_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let (runtime, engine) = runtime(&dir);
    let steps = engine
        .parse(
            "name: steps\nnodes:\n  - { id: a, kind: delay, config: { ms: 100 } }\n  - { id: b, kind: noop }\nedges: [{ from: a, to: b }]\n",
            Format::Yaml,
        )
        .unwrap();
    let (run_id, _live) = started(runtime.submit(&steps, Submit::default()).await.unwrap());
    // Subscribed while `a` sleeps: the rest arrives live.
    let mut rx = runtime.subscribe(&run_id, 0).await.unwrap();
    let mut seen = Vec::new();
    while let Some((seq, record)) = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await.unwrap() {
        seen.push((seq, record.kind()));
    }
    let seqs: Vec<u64> = seen.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "{seen:?}");
    assert_eq!(seen.first().map(|s| s.1), Some("run_started"));
    assert_eq!(seen.last().map(|s| s.1), Some("run_finished"));
    // From the middle: the rest; from the end: nothing, and closed.
    let mut rest = runtime.subscribe(&run_id, 2).await.unwrap();
    assert_eq!(rest.recv().await.map(|(s, _)| s), Some(3));
    let last = seqs.len() as u64;
    for after in [last, last + 100] {
        let mut none = runtime.subscribe(&run_id, after).await.unwrap();
        let next = tokio::time::timeout(Duration::from_secs(5), none.recv()).await;
        assert!(next.unwrap().is_none(), "from {after}");
    }
    assert!(matches!(
        runtime.subscribe("no-such-run", 0).await,
        Err(Error::RunNotFound(_))
    ));
}
