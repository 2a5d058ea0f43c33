//! `flow run`: exit codes, the report (to a file or alone on stdout), `--input`,
//! and the strategy flags.

use serde_json::{Value, json};

use crate::support::{example, flow, read_json, tempdir, write};

const OK: &str = "name: ok
input: { who: file }
nodes:
  - { id: a, kind: transform, config: { output: { who: '{{ input.who }}', n: '{{ input.n | default(0) }}' } } }
  - { id: b, kind: delay, config: { ms: 30 } }
  - { id: c, kind: delay, config: { ms: 30 } }
  - { id: skipped, kind: noop }
edges: [{ from: a, to: b }, { from: a, to: c }, { from: a, to: skipped, when: 'false' }]
";

const FAILING: &str = "name: failing
nodes:
  - { id: a, kind: fail, config: { message: 'service down' } }
  - { id: b, kind: noop }
edges: [{ from: a, to: b }]
";

/// Runs `flow run <file> <args> --report -` and returns the exit code and the report.
fn run(content: &str, args: &[&str]) -> (Option<i32>, Value, String) {
    let dir = tempdir();
    let path = write(&dir, "w.yaml", content);
    let mut all = vec!["run".to_owned(), path.display().to_string()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    all.extend(["--report".to_owned(), "-".to_owned()]);
    let out = flow(&all);
    let report = out.report();
    (out.code, report, out.stderr)
}

#[test]
fn exit_0_when_the_run_succeeds_and_1_when_it_fails() {
    let (code, report, stderr) = run(OK, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(report["status"], "succeeded");
    assert!(stderr.contains("run succeeded"), "{stderr}");
    let (code, report, stderr) = run(FAILING, &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(report["status"], "failed");
    assert_eq!(report["nodes"]["a"]["error"], "service down");
    assert!(
        stderr.contains("run failed") && stderr.contains("service down"),
        "{stderr}"
    );
}

#[test]
fn report_dash_prints_only_the_report_on_stdout() {
    let (_, report, _) = run(OK, &["--quiet"]);
    assert_eq!(report["workflow"], "ok");
    let (_, report, _) = run(OK, &[]);
    assert_eq!(report["workflow"], "ok", "with the progress display too");
}

#[test]
fn the_report_shape() {
    let dir = tempdir();
    let path = write(&dir, "w.yaml", OK);
    let report_path = dir.path().join("out").join("report.json");
    std::fs::create_dir_all(dir.path().join("out")).unwrap_or_else(|e| panic!("{e}"));
    let out = flow([
        "run".as_ref(),
        path.as_os_str(),
        "--report".as_ref(),
        report_path.as_os_str(),
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        !out.stdout.trim_start().starts_with('{'),
        "the report went to the file, not stdout"
    );
    let report = read_json(&report_path);
    for key in ["workflow", "strategy", "status", "duration_ms", "nodes"] {
        assert!(report.get(key).is_some(), "{key}: {report}");
    }
    assert_eq!(report["strategy"], "parallel");
    assert!(report["duration_ms"].as_f64().is_some_and(|d| d > 0.0));
    let nodes = report["nodes"]
        .as_object()
        .map(|m| m.keys().cloned().collect::<Vec<_>>());
    assert_eq!(nodes, Some(vec!["a".into(), "b".into(), "c".into(), "skipped".into()]));
    let a = &report["nodes"]["a"];
    assert_eq!(a["status"], "succeeded");
    assert_eq!(a["attempts"], 1);
    assert_eq!(a["output"], json!({ "who": "file", "n": 0 }));
    assert_eq!(a["error"], Value::Null);
    assert!(a["started_ms"].is_number() && a["finished_ms"].is_number());
    let skipped = &report["nodes"]["skipped"];
    assert_eq!(skipped["status"], "skipped");
    assert_eq!(
        (&skipped["started_ms"], &skipped["finished_ms"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(skipped["attempts"], 0);
}

#[test]
fn report_to_a_missing_folder_is_a_usage_error() {
    let dir = tempdir();
    let path = write(&dir, "w.yaml", OK);
    let target = dir.path().join("nope").join("r.json");
    let out = flow([
        "run".as_ref(),
        path.as_os_str(),
        "--report".as_ref(),
        target.as_os_str(),
    ]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("does not exist"), "{out:?}");
}

#[test]
fn input_as_json_or_from_a_file() {
    let (code, report, _) = run(OK, &["--input", r#"{"who": "flag", "n": 5}"#]);
    assert_eq!(code, Some(0));
    assert_eq!(report["nodes"]["a"]["output"], json!({ "who": "flag", "n": 5 }));

    let dir = tempdir();
    let input = write(&dir, "input.json", r#"{"who": "file-input"}"#);
    let (code, report, _) = run(OK, &["--input", &format!("@{}", input.display())]);
    assert_eq!(code, Some(0));
    assert_eq!(report["nodes"]["a"]["output"]["who"], "file-input");
}

#[test]
fn bad_input_is_a_usage_error() {
    let dir = tempdir();
    let path = write(&dir, "w.yaml", OK);
    let missing = format!("@{}", dir.path().join("missing.json").display());
    for input in ["{not json", missing.as_str()] {
        let out = flow(["run".as_ref(), path.as_os_str(), "--input".as_ref(), input.as_ref()]);
        assert_eq!(out.code, Some(2), "{input}: {out:?}");
        assert_eq!(out.stdout, "");
        assert!(out.stderr.contains("--input"), "{out:?}");
    }
}

#[test]
fn strategy_flags_replace_the_file() {
    let (code, report, _) = run(OK, &["--strategy", "sequential"]);
    assert_eq!((code, &report["strategy"]), (Some(0), &json!("sequential")));
    let (b, c) = (&report["nodes"]["b"], &report["nodes"]["c"]);
    let overlap =
        b["started_ms"].as_f64() < c["finished_ms"].as_f64() && c["started_ms"].as_f64() < b["finished_ms"].as_f64();
    assert!(!overlap, "sequential never overlaps: {b} {c}");

    let (code, report, _) = run(OK, &["--strategy", "all-settled", "--max-concurrency", "1"]);
    assert_eq!((code, &report["strategy"]), (Some(0), &json!("all-settled")));
    let (code, report, _) = run(
        OK,
        &["--strategy", "rate-limited", "--per-second", "100", "--burst", "2"],
    );
    assert_eq!((code, &report["strategy"]), (Some(0), &json!("rate-limited")));
    let file = format!("strategy: {{ kind: sequential }}\n{OK}");
    let (_, report, _) = run(&file, &[]);
    assert_eq!(report["strategy"], "sequential", "the file's strategy without flags");
    let (_, report, _) = run(&file, &["--strategy", "parallel"]);
    assert_eq!(report["strategy"], "parallel");
}

#[test]
fn bad_strategy_flags_are_usage_errors() {
    let dir = tempdir();
    let path = write(&dir, "w.yaml", OK);
    let cases: [(&[&str], &str); 5] = [
        (&["--strategy", "paralel"], "unknown strategy `paralel`"),
        (&["--max-concurrency", "0"], "max_concurrency"),
        (&["--per-second", "5"], "per_second"),
        (&["--strategy", "rate-limited"], "per_second"),
        (
            &["--strategy", "sequential", "--max-concurrency", "2"],
            "max_concurrency",
        ),
    ];
    for (flags, expected) in cases {
        let mut args = vec!["run".to_owned(), path.display().to_string()];
        args.extend(flags.iter().map(|f| (*f).to_owned()));
        let out = flow(&args);
        assert_eq!(out.code, Some(2), "{flags:?}: {out:?}");
        assert_eq!(out.stdout, "", "{flags:?}");
        assert!(out.stderr.contains(expected), "{flags:?}: {out:?}");
    }
}

#[test]
fn the_examples_run() {
    for (name, code) in [
        ("all-settled.yaml", 1),
        ("conditional.json", 0),
        ("diamond.yaml", 0),
        ("parallel-fanout.yaml", 0),
        ("rate-limited.yaml", 0),
        ("sequential.yaml", 0),
        ("for-each.yaml", 0),
    ] {
        let path = example(name);
        let out = flow([
            "run".as_ref(),
            path.as_os_str(),
            "--quiet".as_ref(),
            "--report".as_ref(),
            "-".as_ref(),
        ]);
        assert_eq!(out.code, Some(code), "{name}: {out:?}");
        let report = out.report();
        assert!(report["nodes"].as_object().is_some_and(|n| !n.is_empty()), "{name}");
    }
    let out = flow([
        "run".as_ref(),
        example("diamond.yaml").as_os_str(),
        "--report".as_ref(),
        "-".as_ref(),
    ]);
    assert_eq!(
        out.report()["nodes"]["join"]["output"],
        json!({ "user": "ada", "total_wait": 250 })
    );
}

#[test]
fn secrets_do_not_leak_into_the_report() {
    let dir = tempdir();
    let path = write(
        &dir,
        "w.yaml",
        "name: s\nsecrets: [FLOW_CLI_IT_TOKEN]\nnodes:\n  - { id: t, kind: transform, config: { output: 'token {{ env.FLOW_CLI_IT_TOKEN }}' } }\n  - { id: f, kind: fail, config: { message: 'bad token {{ env.FLOW_CLI_IT_TOKEN }}' } }\n",
    );
    let output = crate::support::command()
        .args(["run".as_ref(), path.as_os_str(), "--report".as_ref(), "-".as_ref()])
        .env("FLOW_CLI_IT_TOKEN", "hunter2-secret")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        !stdout.contains("hunter2-secret") && !stderr.contains("hunter2-secret"),
        "{stdout}\n{stderr}"
    );
}

#[test]
fn the_workflow_output_is_rendered_when_the_run_succeeds() {
    let with_output = format!(
        "{OK}output: {{ greeting: 'hello {{{{ nodes.a.output.who }}}}', slept: '{{{{ nodes.b.output.slept_ms }}}}' }}\n"
    );
    let (code, report, stderr) = run(&with_output, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(report["output"], json!({ "greeting": "hello file", "slept": 30 }));

    // None written, or the run failed: `null`.
    let (_, report, _) = run(OK, &[]);
    assert_eq!(report["output"], Value::Null, "{report}");
    let failing = format!("{FAILING}output: '{{{{ nodes.a.output }}}}'\n");
    let (code, report, _) = run(&failing, &[]);
    assert_eq!(code, Some(1));
    assert_eq!(report["output"], Value::Null, "{report}");

    // A template that fails at the end fails the run, and says where.
    let broken = format!("{OK}output: {{ n: '{{{{ input.missing }}}}' }}\n");
    let (code, report, stderr) = run(&broken, &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(report["status"], "failed");
    let error = report["output_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("output.n") && error.contains("input.missing"),
        "{report}"
    );
    assert!(stderr.contains("output could not be rendered"), "{stderr}");
}

#[test]
fn an_output_that_reads_an_unknown_node_is_refused_before_it_runs() {
    let dir = tempdir();
    let path = write(&dir, "w.yaml", format!("{OK}output: '{{{{ nodes.nope.output }}}}'\n"));
    let out = flow(["run".as_ref(), path.as_os_str()]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("output: refers to `nodes.nope`"), "{out:?}");
    assert!(out.stderr.contains("w.yaml:9:"), "the line: {out:?}");
}
