//! The runtime over a real SQLite journal: submit (and its idempotency key),
//! look up, list, cancel, retry; every refusal a typed error.

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
