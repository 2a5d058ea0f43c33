//! Stopping and crashing: SIGTERM lets runs under way finish within `--grace`
//! and leaves the others `interrupted` for the next start; a server killed
//! with SIGKILL in the middle of a run finishes it after a restart without
//! running settled nodes again.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Counter, Dirs, Flow, Start, runs_list};
use crate::workflows::{QUICK, crash, steps};

fn run_id(value: &serde_json::Value) -> String {
    value["run_id"].as_str().unwrap_or_default().to_owned()
}

/// The runs `flow runs list` shows.
fn listed(dirs: &Dirs) -> Vec<serde_json::Value> {
    runs_list(&dirs.journal)
}

fn listed_status(dirs: &Dirs, run_id: &str) -> String {
    let rows = listed(dirs);
    let row = rows
        .iter()
        .find(|r| r["run_id"] == run_id)
        .unwrap_or_else(|| panic!("run {run_id} is not listed: {rows:?}"));
    row["status"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn sigterm_lets_a_short_run_finish() {
    let dirs = Dirs::with(&[("short.yaml", &steps("short", 300))]);
    let mut flow = Flow::start_with(
        &dirs,
        Start {
            args: &["--grace", "20s"],
            ..Start::default()
        },
    );
    let id = run_id(&flow.submit("short", "", &json!({})).await);
    flow.wait_report(&id, "node `one` running", |r| r["nodes"]["one"]["status"] == "running")
        .await;
    let signalled = Instant::now();
    flow.signal("TERM", 15);
    let status = flow.wait_exit(Duration::from_secs(15)).await;
    let took = signalled.elapsed();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", flow.stderr());
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(10),
        "exited {took:?} after SIGTERM: it should wait for the run (~0.5 s), not for the grace"
    );
    assert!(flow.stderr().contains("stopping"), "{}", flow.stderr());
    assert_eq!(listed_status(&dirs, &id), "succeeded");
}

#[tokio::test]
async fn sigterm_leaves_a_long_run_for_the_next_start() {
    let dirs = Dirs::with(&[("long.yaml", &steps("long", 1500)), ("quick.yaml", QUICK)]);
    let mut flow = Flow::start_with(
        &dirs,
        Start {
            args: &["--grace", "300ms"],
            ..Start::default()
        },
    );
    let id = run_id(&flow.submit("long", "", &json!({})).await);
    flow.wait_report(&id, "node `one` running", |r| r["nodes"]["one"]["status"] == "running")
        .await;
    // Neither a client watching the run's events nor one waiting for another
    // run's end (`?wait=60`) holds the server past its grace.
    let mut watching = flow.open_events(&id, None).await;
    assert!(watching.next(Duration::from_secs(5)).await.is_some());
    let waiting = tokio::spawn(
        flow.request(reqwest::Method::POST, "/api/v1/workflows/long/runs?wait=60")
            .json(&json!({}))
            .send(),
    );
    let started = Instant::now();
    while listed(&dirs).len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the waiting run did not start"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let signalled = Instant::now();
    flow.signal("TERM", 15);
    let status = flow.wait_exit(Duration::from_secs(10)).await;
    let took = signalled.elapsed();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", flow.stderr());
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(5),
        "exited {took:?} after SIGTERM with --grace 300ms"
    );
    // (Had the server waited for the runs, they would have succeeded: they
    // are `interrupted` below.)
    assert!(
        flow.stderr()
            .contains("2 runs still under way are left for the next start"),
        "{}",
        flow.stderr()
    );
    drop(watching);
    // The waiting client got its answer (the run as started) before the end.
    let waited = waiting
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("the waiting request got no answer: {e}"));
    assert_eq!(waited.status(), 201);
    let waited: serde_json::Value = waited.json().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(waited["status"], "running", "{waited}");
    assert_eq!(listed_status(&dirs, &id), "interrupted");
    assert_eq!(listed_status(&dirs, &run_id(&waited)), "interrupted");

    // The next start takes it over and finishes it.
    let flow = Flow::start(&dirs);
    let report = flow.wait_status(&id, "succeeded").await;
    assert!(
        flow.stderr().contains(&format!("resuming run {id}")),
        "{}",
        flow.stderr()
    );
    assert_eq!(
        report["nodes"]["two"]["output"],
        json!({ "slept_ms": 1500 }),
        "{report}"
    );
    let kinds: Vec<String> = flow.events(&id, None).await.into_iter().map(|e| e.event).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "run_resumed").count(), 1, "{kinds:?}");
    assert_eq!(kinds.last().map(String::as_str), Some("run_finished"), "{kinds:?}");
    // It serves as usual.
    let quick = flow.run_to_end("quick", &json!({})).await;
    assert_eq!(quick["status"], "succeeded");
}

#[tokio::test]
async fn sigkill_in_the_middle_of_a_run() {
    let counter = Counter::start();
    let dirs = Dirs::with(&[("crash.yaml", &counter.fill(&crash(1000)))]);
    let mut flow = Flow::start(&dirs);
    let id = run_id(&flow.submit("crash", "", &json!({})).await);
    let before = flow
        .wait_report(&id, "node `slow` running", |r| {
            r["nodes"]["slow"]["status"] == "running"
        })
        .await;
    assert_eq!(before["nodes"]["each"]["status"], "succeeded", "{before}");
    flow.kill();
    assert_eq!(listed_status(&dirs, &id), "interrupted");
    let settled: Vec<String> = ["start", "each:0", "each:1", "each:2"]
        .iter()
        .map(|k| format!("{id}:{k}"))
        .collect();
    let keys = counter.log.of_run(&id);
    assert_eq!(
        keys,
        settled.iter().map(|k| (k.clone(), 1)).collect(),
        "before the kill"
    );

    let flow = Flow::start(&dirs);
    let report = flow.wait_status(&id, "succeeded").await;
    assert!(
        flow.stderr().contains(&format!("resuming run {id}")),
        "{}",
        flow.stderr()
    );
    assert_eq!(
        report["nodes"]["finish"]["output"]["body"],
        json!({ "name": "finish" }),
        "{report}"
    );
    assert_eq!(report["nodes"]["each"]["items"]["succeeded"], 3, "{report}");
    let keys = counter.log.of_run(&id);
    let expected = settled
        .iter()
        .cloned()
        .chain([format!("{id}:finish")])
        .map(|k| (k, 1))
        .collect();
    assert_eq!(keys, expected, "every request exactly once");
    let events = flow.events(&id, None).await;
    let started = |node: &str| {
        events
            .iter()
            .filter(|e| e.event == "node_started" && e.data.to_string().contains(&format!("\"{node}\"")))
            .count()
    };
    assert_eq!(started("start"), 1, "{events:?}");
    assert_eq!(started("each"), 3, "{events:?}");
    assert_eq!(started("slow"), 2, "started, killed, started again: {events:?}");
    assert_eq!(started("finish"), 1, "{events:?}");
    assert_eq!(events.iter().filter(|e| e.event == "run_resumed").count(), 1);
}

/// Two servers on one journal. One is killed with SIGKILL in the middle of a
/// run and left unreaped (a zombie, as a supervisor that has not waited yet
/// leaves it): the other, up all along, takes the run over within seconds
/// and finishes it, each request of the run made once.
#[tokio::test]
async fn a_surviving_server_finishes_a_killed_servers_run() {
    let counter = Counter::start();
    let dirs = Dirs::with(&[("crash.yaml", &counter.fill(&crash(1000)))]);
    let survivor = Flow::start(&dirs);
    let mut doomed = Flow::start(&dirs);
    let id = run_id(&doomed.submit("crash", "", &json!({})).await);
    doomed
        .wait_report(&id, "node `slow` running", |r| {
            r["nodes"]["slow"]["status"] == "running"
        })
        .await;
    // SIGKILL, not waited for: the process stays a zombie for now.
    let status = std::process::Command::new("kill")
        .args(["-KILL", &doomed.pid().to_string()])
        .status();
    assert!(status.is_ok_and(|s| s.success()));
    let report = survivor.wait_status(&id, "succeeded").await;
    assert!(
        survivor.stderr().contains(&format!("resuming run {id}")),
        "{}",
        survivor.stderr()
    );
    assert_eq!(report["nodes"]["each"]["items"]["succeeded"], 3, "{report}");
    let keys = counter.log.of_run(&id);
    assert!(keys.values().all(|&n| n == 1), "every request once: {keys:?}");
    assert!(keys.contains_key(&format!("{id}:finish")), "{keys:?}");
    doomed.kill();
}
