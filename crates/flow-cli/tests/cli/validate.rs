//! Malformed and invalid files: exit 2, the message on stderr, nothing on stdout,
//! never a panic, for both `flow validate` and `flow run`.

use crate::support::{example, flow, tempdir, write};

/// `content` saved as `name` is refused by `validate` and by `run`, with every
/// `expected` fragment in stderr.
#[track_caller]
fn check(name: &str, content: &[u8], expected: &[&str]) {
    let dir = tempdir();
    let path = write(&dir, name, content);
    for command in ["validate", "run"] {
        let out = flow([std::ffi::OsStr::new(command), path.as_os_str()]);
        let shown = format!("flow {command} {name}:\n{out:?}");
        assert_eq!(out.code, Some(2), "{shown}");
        assert_eq!(out.stdout, "", "{shown}");
        assert!(!out.stderr.contains("panicked"), "{shown}");
        for fragment in expected {
            assert!(out.stderr.contains(fragment), "missing `{fragment}`: {shown}");
        }
    }
}

#[test]
fn syntax_errors_show_the_line_and_column() {
    check(
        "bad.yaml",
        b"name: t\nnodes:\n  - id: a\n    kind: noop\n   - id: b\n",
        &["bad.yaml:5:4", "5 |    - id: b", "nothing ran"],
    );
    check(
        "bad.json",
        b"{\n  \"name\": \"t\",\n  \"nodes\": [\n    { \"id\": \"a\", \"kind\": \"noop\" },\n  ]\n}\n",
        &["trailing comma", "bad.json:5:3"],
    );
    check(
        "trunc.json",
        b"{\"name\": \"t\", \"nodes\": [",
        &["EOF while parsing", "trunc.json:1:"],
    );
    check(
        "tab.yaml",
        b"name: t\nnodes:\n\t- { id: a, kind: noop }\n",
        &["tab.yaml:3:"],
    );
}

#[test]
fn every_unknown_field_and_every_later_problem_is_reported_at_once() {
    let yaml = b"name: typos
strategy: { kind: parallel, max_concurency: 4 }
nodes:
  - id: a
    kind: delay
    config: { ms: 10 }
    retyr: { max_attempts: 2 }
  - id: b
    kind: http
    config: { url: \"http://127.0.0.1:1/x\", methd: GET }
    timeout: 100
edges:
  - { from: a, to: b, wen: \"true\" }
";
    check(
        "typos.yaml",
        yaml,
        &[
            "nodes[0].retyr: unknown field `retyr`",
            "typos.yaml:7:5",
            "nodes[1].timeout: unknown field `timeout`",
            "did you mean `timeout_ms`?",
            "typos.yaml:11:5",
            "edges[0].wen: unknown field `wen`",
            "typos.yaml:13:23",
            "strategy.max_concurency: unknown option",
            "nodes[1].config.methd: unknown field",
            "5 problems found; nothing ran",
        ],
    );
    let json = br#"{"name": "t", "nodez": [],
  "nodes": [
    {"id": "a", "kind": "noop", "retyr": {}},
    {"id": "b", "kind": "noop", "tigger": "all_done"}
  ]}"#;
    check(
        "typos.json",
        json,
        &[
            "nodez: unknown field `nodez`",
            "nodes[0].retyr: unknown field",
            "typos.json:3:",
            "nodes[1].tigger: unknown field",
            "typos.json:4:",
            "3 problems found",
        ],
    );
}

#[test]
fn invalid_workflows_name_the_place() {
    check(
        "typo.yaml",
        b"name: t\nnodes:\n  - { id: a, kind: noop, tigger: all_done }\n",
        &["unknown field `tigger`", "did you mean `trigger`?", "typo.yaml:3:"],
    );
    check(
        "kind.yaml",
        b"name: t\nnodes:\n  - { id: a, kind: dealy, config: { ms: 1 } }\n",
        &[
            "nodes[0].kind: unknown node kind `dealy` (node `a`); did you mean `delay`?",
            "kind.yaml:3:1",
        ],
    );
    check(
        "dup.yaml",
        b"name: t\nnodes: [{ id: a, kind: noop }, { id: a, kind: noop }]\n",
        &["nodes[1].id: `a` is already the id of nodes[0]"],
    );
    check(
        "cycle.yaml",
        b"name: t\nnodes: [{ id: a, kind: noop }, { id: b, kind: noop }]\nedges: [{ from: a, to: b }, { from: b, to: a }]\n",
        &["the graph has a cycle: a -> b -> a"],
    );
    check(
        "tmpl.yaml",
        b"name: t\nnodes: [{ id: t, kind: transform, config: { output: '{{ input.x' } }]\n",
        &["nodes[0].config.output: invalid template", "(node `t`)"],
    );
    check(
        "when.yaml",
        b"name: t\nnodes: [{ id: a, kind: noop }, { id: b, kind: noop }]\nedges: [{ from: a, to: b, when: 'x ==' }]\n",
        &["edges[0].when: invalid expression"],
    );
    check(
        "strategy.yaml",
        b"name: t\nstrategy: { kind: rate-limited }\nnodes: [{ id: a, kind: noop }]\n",
        &["strategy.per_second: is required for rate-limited"],
    );
    check(
        "many.yaml",
        b"name: t\nnodes:\n  - { id: a, kind: nop }\n  - { id: b, kind: noop, timeout_ms: 0 }\nedges:\n  - { from: a, to: zz }\n",
        &["nodes[0].kind", "nodes[1].timeout_ms", "edges[0].to", "3 problems found; nothing ran"],
    );
}

#[test]
fn hostile_or_odd_files_are_refused_without_a_panic() {
    check("empty.yaml", b"", &["error"]);
    check("empty.json", b"", &["error"]);
    check("list.yaml", b"[1, 2, 3]\n", &["error"]);
    check(
        "binary.yaml",
        b"name: t\nnodes: \xff\xfe\x00\x01\n",
        &["not valid UTF-8", "binary.yaml:2:8"],
    );
    let deep = format!(
        "name: t\nnodes: [{{ id: a, kind: noop, config: {}{} }}]\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    check("deep.yaml", deep.as_bytes(), &["nested too deeply"]);
    let deep = format!(
        "{{\"name\": \"t\", \"nodes\": [{{\"id\": \"a\", \"kind\": \"noop\", \"config\": {}{}}}]}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    check("deep.json", deep.as_bytes(), &["nested too deeply"]);
    check(
        "anchors.yaml",
        b"name: t\nnodes: &a [{ id: a, kind: noop }, *a]\n",
        &["error"],
    );
}

#[test]
fn unreadable_paths() {
    let dir = tempdir();
    for path in [dir.path().join("missing.yaml"), dir.path().to_path_buf()] {
        for command in ["validate", "run"] {
            let out = flow([std::ffi::OsStr::new(command), path.as_os_str()]);
            assert_eq!(out.code, Some(2), "{out:?}");
            assert_eq!(out.stdout, "");
            assert!(
                out.stderr.contains("cannot read") && !out.stderr.contains("panicked"),
                "{out:?}"
            );
        }
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["frobnicate"],
        vec!["run"],
        vec!["validate"],
        vec!["run", "x.yaml", "--max-concurrency", "many"],
    ] {
        let out = flow(&args);
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
        assert_eq!(out.stdout, "", "{args:?}");
    }
}

#[test]
fn every_example_is_valid() {
    for name in [
        "all-settled.yaml",
        "conditional.json",
        "diamond.yaml",
        "parallel-fanout.yaml",
        "rate-limited.yaml",
        "sequential.yaml",
    ] {
        let path = example(name);
        let out = flow([std::ffi::OsStr::new("validate"), path.as_os_str()]);
        assert_eq!(out.code, Some(0), "{name}: {out:?}");
        assert!(out.stdout.contains(": valid: workflow"), "{name}: {out:?}");
    }
}

#[test]
fn a_name_with_a_control_character_is_refused() {
    check(
        "nul.json",
        br#"{"name": "a\u0000b", "nodes": [{"id": "a", "kind": "noop"}]}"#,
        &["name: must not hold control characters"],
    );
}

#[test]
fn an_input_deeper_than_max_depth_is_refused_before_anything_runs() {
    let dir = tempdir();
    let path = write(&dir, "fine.yaml", "name: fine\nnodes: [{ id: a, kind: noop }]\n");
    let deep = format!("{}1{}", "[".repeat(70), "]".repeat(70));
    let out = flow([
        std::ffi::OsStr::new("run"),
        path.as_os_str(),
        std::ffi::OsStr::new("--input"),
        std::ffi::OsStr::new(&deep),
    ]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("input: nested deeper than the limit of 64 (raise it with --max-depth)"),
        "{out:?}"
    );
    // Raised, it runs.
    let out = flow([
        std::ffi::OsStr::new("run"),
        path.as_os_str(),
        std::ffi::OsStr::new("--input"),
        std::ffi::OsStr::new(&deep),
        std::ffi::OsStr::new("--max-depth"),
        std::ffi::OsStr::new("100"),
        std::ffi::OsStr::new("--quiet"),
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
}
