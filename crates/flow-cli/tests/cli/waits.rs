//! Runs that wait, through the `flow` binary: `wait` nodes, `signal` nodes
//! and `flow signal` from another process, on a SQLite journal.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{command, flow, tempdir, write};

const APPROVAL: &str = r#"name: approval
nodes:
  - { id: open, kind: noop }
  - id: approve
    kind: signal
    config:
      name: approval
      timeout: 60s
      schema: { type: object, required: [approved], properties: { approved: { type: boolean } } }
  - { id: deploy, kind: transform, config: { output: "approved by {{ nodes.approve.output.by }}" } }
edges: [{ from: open, to: approve }, { from: approve, to: deploy }]
"#;

/// A `flow run` in the background, its stderr lines sent on as they come.
struct Background {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Background {
    fn start(args: &[&str]) -> Background {
        let mut child = command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run flow: {e}"));
        let stderr = child.stderr.take().unwrap_or_else(|| panic!("stderr"));
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Background {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first stderr line that contains `text`.
    fn line_with(&mut self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(line) => self.seen.push(line),
                Err(e) => panic!("no line with `{text}` ({e}):\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Waits for the exit; its code and stdout.
    fn finish(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    let mut out = String::new();
                    if let Some(mut stdout) = self.child.stdout.take() {
                        let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
                    }
                    return (status.code(), out);
                }
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = self.child.kill();
                    panic!("flow run did not end:\n{}", self.seen.join("\n"));
                }
            }
        }
    }
}

/// The run id in `flow signal <id> ...` of a waiting run's hint.
fn run_id_of(hint: &str) -> String {
    hint.split("flow signal ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no run id in: {hint}"))
        .to_owned()
}

#[test]
fn a_wait_of_one_second() {
    let dir = tempdir();
    let file = write(
        &dir,
        "nap.yaml",
        "name: nap\nnodes:\n  - { id: nap, kind: wait, config: { for: 1s } }\n  - { id: past, kind: wait, config: { until: \"2020-01-01T00:00:00Z\" } }\n",
    );
    let started = Instant::now();
    let out = flow(["run", &file.to_string_lossy(), "--quiet", "--report", "-"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    let report = out.report();
    assert!(
        report["nodes"]["nap"]["output"]["waited_ms"].as_i64().unwrap_or(0) >= 950,
        "{report}"
    );
    assert!(
        report["nodes"]["nap"]["output"]["woke_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{report}"
    );
    // A bad duration is found before anything runs.
    let bad = write(
        &dir,
        "bad.yaml",
        "name: bad\nnodes:\n  - { id: nap, kind: wait, config: { for: soon } }\n",
    );
    let out = flow(["run", &bad.to_string_lossy()]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("nodes[0].config.for"), "{}", out.stderr);
}

#[test]
fn a_signal_needs_a_journal() {
    let dir = tempdir();
    let file = write(&dir, "approval.yaml", APPROVAL);
    let out = flow(["run", &file.to_string_lossy()]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains("node `approve` waits for a signal"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--journal"), "{}", out.stderr);
}

#[test]
fn flow_signal_reaches_an_attached_run() {
    let dir = tempdir();
    let file = write(&dir, "approval.yaml", APPROVAL);
    let journal = dir.path().join("runs.db").to_string_lossy().into_owned();
    let mut run = Background::start(&["run", &file.to_string_lossy(), "--journal", &journal, "--report", "-"]);
    let hint = run.line_with("waiting for signal `approval`");
    assert!(
        hint.contains("flow signal ") && hint.contains(" approval --data"),
        "{hint}"
    );
    let run_id = run_id_of(&hint);

    // Refused: a payload the node's schema does not take, bad JSON, an unknown run.
    let refused = flow([
        "signal",
        &run_id,
        "approval",
        "--data",
        r#"{"approved": "yes"}"#,
        "--journal",
        &journal,
    ]);
    assert_eq!(refused.code, Some(2), "{refused:?}");
    assert!(
        refused.stderr.contains("schema of node `approve`"),
        "{}",
        refused.stderr
    );
    let bad = flow(["signal", &run_id, "approval", "--data", "{", "--journal", &journal]);
    assert_eq!(bad.code, Some(2), "{bad:?}");
    assert!(bad.stderr.contains("--data: not JSON"), "{}", bad.stderr);
    let unknown = flow(["signal", "no-such-run", "approval", "--journal", &journal]);
    assert_eq!(unknown.code, Some(2), "{unknown:?}");
    assert!(unknown.stderr.contains("no run `no-such-run`"), "{}", unknown.stderr);

    // Sent from a file, by another process: the run goes on.
    let payload = write(&dir, "yes.json", r#"{"approved": true, "by": "grace"}"#);
    let sent = flow([
        "signal",
        &run_id[..13],
        "approval",
        "--data",
        &format!("@{}", payload.display()),
        "--journal",
        &journal,
    ]);
    assert_eq!(sent.code, Some(0), "{sent:?}");
    assert!(sent.stdout.contains("signal `approval` sent to run"), "{sent:?}");
    let (code, stdout) = run.finish();
    assert_eq!(code, Some(0), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(
        report["nodes"]["approve"]["output"],
        json!({ "approved": true, "by": "grace" })
    );
    assert_eq!(report["nodes"]["deploy"]["output"], "approved by grace");

    // The run has ended: no signal reaches it.
    let late = flow([
        "signal",
        &run_id,
        "approval",
        "--data",
        r#"{"approved": true}"#,
        "--journal",
        &journal,
    ]);
    assert_eq!(late.code, Some(2), "{late:?}");
    assert!(late.stderr.contains("has ended (succeeded)"), "{}", late.stderr);
}

#[test]
fn a_signal_sent_before_its_node_waits_is_kept() {
    let dir = tempdir();
    let file = write(
        &dir,
        "later.yaml",
        "name: later\nnodes:\n  - { id: busy, kind: delay, config: { ms: 1500 } }\n  - { id: go, kind: signal, config: { name: go } }\nedges: [{ from: busy, to: go }]\n",
    );
    let journal = dir.path().join("runs.db").to_string_lossy().into_owned();
    let mut run = Background::start(&["run", &file.to_string_lossy(), "--journal", &journal, "--report", "-"]);
    let line = run.line_with("journaled in");
    let run_id = line
        .split("run ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    // `busy` still runs: the signal waits in the journal for `go`.
    let sent = flow(["signal", &run_id, "go", "--data", "42", "--journal", &journal]);
    assert_eq!(sent.code, Some(0), "{sent:?}");
    let (code, stdout) = run.finish();
    assert_eq!(code, Some(0), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(report["nodes"]["go"]["output"], json!(42));
}

#[test]
fn no_signal_within_the_timeout_fails_the_node() {
    let dir = tempdir();
    let file = write(
        &dir,
        "late.yaml",
        "name: late\nnodes:\n  - { id: go, kind: signal, config: { name: go, timeout: 300ms } }\n",
    );
    let journal = dir.path().join("runs.db").to_string_lossy().into_owned();
    let out = flow([
        "run",
        &file.to_string_lossy(),
        "--journal",
        &journal,
        "--quiet",
        "--report",
        "-",
    ]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let report = out.report();
    assert_eq!(report["nodes"]["go"]["status"], "failed");
    assert_eq!(
        report["nodes"]["go"]["error"], "no signal `go` within 300ms",
        "{report}"
    );
}

#[test]
fn a_detached_run_waits_in_the_journal_and_flow_resume_follows_it() {
    let dir = tempdir();
    let file = write(
        &dir,
        "timer.yaml",
        "name: timer\nnodes:\n  - { id: first, kind: noop }\n  - { id: nap, kind: wait, config: { for: 3s } }\nedges: [{ from: first, to: nap }]\n",
    );
    let journal = dir.path().join("runs.db").to_string_lossy().into_owned();
    let started = Instant::now();
    let out = flow([
        "run",
        &file.to_string_lossy(),
        "--journal",
        &journal,
        "--detach",
        "--report",
        "-",
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "it returned once the run waited: {:?}",
        started.elapsed()
    );
    let report = out.report();
    assert_eq!(report["status"], "waiting", "{report}");
    assert_eq!(report["nodes"]["nap"]["status"], "waiting", "{report}");
    assert!(out.stderr.contains("parked in the journal"), "{}", out.stderr);
    let run_id = report["run_id"].as_str().unwrap_or_default().to_owned();
    let listed = flow(["runs", "list", "--journal", &journal, "--status", "waiting", "--json"]);
    assert!(listed.stdout.contains(&run_id), "{listed:?}");
    // Without --journal, --detach means nothing: refused.
    let refused = flow(["run", &file.to_string_lossy(), "--detach"]);
    assert_eq!(refused.code, Some(2), "{refused:?}");
    // `flow resume` takes it and follows it to the end, the wait included.
    let resumed = flow(["resume", &run_id, "--journal", &journal, "--report", "-"]);
    assert_eq!(resumed.code, Some(0), "{resumed:?}");
    let report = resumed.report();
    assert_eq!(report["status"], "succeeded", "{report}");
    assert!(
        report["nodes"]["nap"]["output"]["waited_ms"].as_i64().unwrap_or(0) >= 2900,
        "{report}"
    );
}

#[test]
fn ctrl_c_leaves_a_waiting_run_waiting() {
    let dir = tempdir();
    let file = write(&dir, "approval.yaml", APPROVAL);
    let journal = dir.path().join("runs.db").to_string_lossy().into_owned();
    let mut run = Background::start(&["run", &file.to_string_lossy(), "--journal", &journal, "--report", "-"]);
    let hint = run.line_with("waiting for signal `approval`");
    let run_id = run_id_of(&hint);
    let status = std::process::Command::new("kill")
        .args(["-INT", &run.child.id().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("kill: {e}"));
    assert!(status.success());
    run.line_with("parked in the journal");
    let (code, stdout) = run.finish();
    assert_eq!(code, Some(0), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(report["status"], "waiting", "{report}");
    // Not cancelled: the signal still reaches it, and `flow resume` finishes it.
    let sent = flow([
        "signal",
        &run_id,
        "approval",
        "--data",
        r#"{"approved": true, "by": "ops"}"#,
        "--journal",
        &journal,
    ]);
    assert_eq!(sent.code, Some(0), "{sent:?}");
    let resumed = flow(["resume", &run_id, "--journal", &journal, "--report", "-"]);
    assert_eq!(resumed.code, Some(0), "{resumed:?}");
    assert_eq!(resumed.report()["nodes"]["deploy"]["output"], "approved by ops");
}
