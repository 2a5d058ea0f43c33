//! `flow serve --dispatch queue`: the server coordinates, a `flow worker`
//! process runs the nodes, through the machine's PostgreSQL (a schema of the
//! test's own; the test fails when PostgreSQL cannot be reached).

use std::process::Stdio;

use serde_json::json;

use crate::support::{Dirs, Flow, Schema, Start, command};

const WORKFLOW: &str = r#"name: queued
input: { n: 2 }
nodes:
  - { id: a, kind: transform, config: { output: { n: "{{ input.n }}" } } }
  - { id: b, kind: delay, config: { ms: 50 } }
  - { id: c, kind: transform, config: { output: { twice: "{{ nodes.a.output.n * 2 }}" } } }
edges:
  - { from: a, to: c }
  - { from: b, to: c }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_dispatch_queue_runs_nodes_on_a_worker() {
    let (url, _schema) = Schema::fresh("t_serve_queue").await;
    let dirs = Dirs::with(&[("queued.yaml", WORKFLOW)]);
    let flow = Flow::start_with(
        &dirs,
        Start {
            journal: Some(&url),
            args: &["--dispatch", "queue"],
            ..Start::default()
        },
    );
    // No worker yet: the run waits in the queue.
    let started = flow.submit("queued", "?wait=1", &json!({ "input": { "n": 21 } })).await;
    let run_id = started["run_id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        started["status"], "running",
        "it cannot have run without a worker: {started}"
    );
    let mut worker = command()
        .args(["worker", "--journal", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start flow worker: {e}"));
    let report = flow.wait_status(&run_id, "succeeded").await;
    let _ = worker.kill();
    let _ = worker.wait();
    assert_eq!(report["nodes"]["c"]["output"], json!({ "twice": 42 }), "{report}");
    assert_eq!(report["nodes"]["b"]["output"], json!({ "slept_ms": 50 }), "{report}");
}
