//! `flow run`'s progress when stderr is not a terminal: one plain line per event;
//! `--quiet`: only the summary; `--events`: JSON lines; `-v`: tracing spans.

use crate::{example, flow, stderr, stdout, tempdir};

/// The event lines of stderr, without their time column.
fn event_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| {
            let (time, rest) = l.trim_start().split_once(" ms  ")?;
            time.parse::<f64>().ok()?;
            Some(rest.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .collect()
}

#[test]
fn without_a_terminal_each_event_is_one_line_in_order() {
    let dir = tempdir();
    let run = flow(dir.path(), &["run", &example("sequential.yaml").to_string_lossy()]);
    assert!(run.status.success(), "{}", stderr(&run));
    let err = stderr(&run);
    let lines = event_lines(&err);
    assert_eq!(
        lines[..lines.len() - 1],
        [
            "run started workflow `sequential-steps`, 4 nodes, strategy sequential",
            "ready reserve",
            "started reserve",
            "succeeded reserve",
            "ready charge",
            "ready ship",
            "started charge",
            "succeeded charge",
            "started ship",
            "succeeded ship",
            "ready receipt",
            "started receipt",
            "succeeded receipt",
        ],
        "{err}"
    );
    assert!(lines[lines.len() - 1].starts_with("run succeeded in "), "{err}");
    // The summary follows the events.
    let summary = err.find("node ").expect("a summary table");
    assert!(err.rfind("run succeeded in ").is_some_and(|last| last > summary));
    assert!(stdout(&run).is_empty());
}

#[test]
fn retries_and_failures_show_as_they_happen() {
    let dir = tempdir();
    let run = flow(dir.path(), &["run", &example("all-settled.yaml").to_string_lossy()]);
    assert_eq!(run.status.code(), Some(1));
    let lines = event_lines(&stderr(&run));
    let at = |wanted: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(wanted))
            .unwrap_or_else(|| panic!("no `{wanted}` in {lines:#?}"))
    };
    assert!(
        at("retrying flaky: attempt 1 failed: service unavailable; next attempt in 20.0 ms")
            < at("started flaky (attempt 2)")
    );
    assert!(at("started flaky (attempt 3)") < at("failed flaky after 3 attempts: service unavailable"));
    assert!(at("failed flaky") < at("upstream_failed flaky-followup"));
}

#[test]
fn quiet_prints_only_the_summary_and_the_report_stays_alone_on_stdout() {
    let dir = tempdir();
    let run = flow(
        dir.path(),
        &[
            "run",
            &example("diamond.yaml").to_string_lossy(),
            "--quiet",
            "--report",
            "-",
        ],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let err = stderr(&run);
    assert!(event_lines(&err).is_empty(), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("run succeeded in "));
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).expect("stdout is only the report");
    assert_eq!(report["status"], "succeeded");

    // Progress goes to stderr even when the report takes stdout.
    let run = flow(
        dir.path(),
        &["run", &example("diamond.yaml").to_string_lossy(), "--report", "-"],
    );
    assert!(!event_lines(&stderr(&run)).is_empty());
    serde_json::from_slice::<serde_json::Value>(&run.stdout).expect("stdout is only the report");
}

#[test]
fn the_event_log_is_json_lines() {
    let dir = tempdir();
    let log = dir.path().join("events.jsonl");
    let run = flow(
        dir.path(),
        &[
            "run",
            &example("diamond.yaml").to_string_lossy(),
            "--quiet",
            "--events",
            &log.to_string_lossy(),
        ],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let text = std::fs::read_to_string(&log).expect("the log was written");
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"run_started"));
    assert_eq!(kinds.last(), Some(&"run_finished"));
    assert_eq!(kinds.iter().filter(|k| **k == "node_settled").count(), 4);
    assert!(events.iter().all(|e| e["run_id"] == events[0]["run_id"]));

    let run = flow(
        dir.path(),
        &[
            "run",
            &example("diamond.yaml").to_string_lossy(),
            "--events",
            "no/such/folder/e.jsonl",
        ],
    );
    assert_eq!(run.status.code(), Some(2));
    assert!(stderr(&run).contains("--events"));
}

#[test]
fn verbose_shows_the_run_and_node_spans() {
    let dir = tempdir();
    let run = flow(
        dir.path(),
        &["run", &example("diamond.yaml").to_string_lossy(), "-vv", "--quiet"],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let err = stderr(&run);
    // The run id is a UUIDv7, quoted: `run{run_id="0193…" workflow=…}`.
    let start = err.find("run{run_id=\"").expect("a run span") + "run{run_id=\"".len();
    let run_id = &err[start..start + 36];
    assert_eq!(run_id.as_bytes()[14], b'7', "{err}");
    let run = format!(r#"run{{run_id="{run_id}" workflow="diamond-join"}}"#);
    assert!(err.contains(&format!("{run}: close")), "{err}");
    assert!(
        err.contains(&format!(r#"{run}:node{{node="left" kind="delay" attempt=1}}: close"#)),
        "{err}"
    );
    assert!(!err.contains('\u{1b}'), "no colour when stderr is not a terminal");
}
