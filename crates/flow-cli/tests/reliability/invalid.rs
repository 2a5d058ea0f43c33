//! Broken and hostile workflow files: `flow validate` and `flow run` both refuse
//! each one with exit 2 and a message naming what is wrong. Never a panic, never a
//! hang (each process has a deadline), never a report (nothing ran).
//!
//! The small files are committed in `tests/data/invalid/`, each listed below with a
//! fragment of its expected message; the big ones are generated here.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{flow_with_deadline, tempdir, turn, write};

/// Every file of `tests/data/invalid/` and a fragment of the message it must give.
const CASES: &[(&str, &str)] = &[
    // Syntax.
    ("syntax-empty.json", "EOF while parsing a value"),
    ("syntax-empty.yaml", "missing field `name`"),
    ("syntax-json-comment.json", "key must be a string"),
    ("syntax-json-number-too-large.json", "timeout_ms: number out of range"),
    ("syntax-json-single-quotes.json", "key must be a string"),
    ("syntax-json-trailing-comma.json", "trailing comma"),
    ("syntax-json-trailing-garbage.json", "trailing characters"),
    ("syntax-json-unterminated-string.json", "while parsing a string"),
    ("syntax-yaml-alias-bomb.yaml", "repetition limit exceeded"),
    ("syntax-yaml-bad-indent.yaml", "mapping values are not allowed"),
    ("syntax-yaml-duplicate-key.yaml", "duplicate field `name`"),
    ("syntax-yaml-tab-indent.yaml", "cannot start any token"),
    ("syntax-yaml-top-level-list.yaml", "invalid type: sequence"),
    (
        "syntax-yaml-top-level-scalar.yaml",
        "invalid type: string \"just some words\"",
    ),
    ("syntax-yaml-two-documents.yaml", "more than one document"),
    ("syntax-yaml-unclosed-flow.yaml", "while parsing a flow sequence"),
    ("syntax-yaml-unknown-alias.yaml", "unknown anchor"),
    ("syntax-yaml-unterminated-string.yaml", "while scanning a quoted scalar"),
    // Wrong types.
    (
        "type-continue-on-error-is-text.json",
        "continue_on_error: invalid type: string \"yes\", expected a boolean",
    ),
    (
        "type-delay-ms-is-text.yaml",
        "config.ms: must be a whole number of milliseconds >= 0, not \"soon\"",
    ),
    ("type-edges-is-a-string.yaml", "edges: invalid type: string"),
    (
        "type-name-is-a-list.yaml",
        "name: invalid type: sequence, expected a string",
    ),
    (
        "type-nodes-is-a-map.yaml",
        "nodes: invalid type: map, expected a sequence",
    ),
    ("type-retry-is-a-number.yaml", "retry: invalid type: integer `3`"),
    (
        "type-secrets-is-a-string.yaml",
        "secrets: invalid type: string \"TOKEN\"",
    ),
    ("type-timeout-is-text.yaml", "timeout_ms: invalid type: string \"fast\""),
    ("type-unknown-strategy.yaml", "unknown strategy kind `fastest`"),
    ("type-unknown-trigger.yaml", "did you mean `all_success`?"),
    // Missing fields.
    ("missing-delay-ms.yaml", "nodes[0].config.ms: is required"),
    ("missing-edge-to.yaml", "edges[0]: missing field `to`"),
    ("missing-http-url.yaml", "nodes[0].config.url: is required"),
    ("missing-name.yaml", "missing field `name`"),
    ("missing-node-id.yaml", "nodes[0]: missing field `id`"),
    ("missing-node-kind.yaml", "nodes[0]: missing field `kind`"),
    ("missing-nodes.json", "missing field `nodes`"),
    ("missing-retry-max-attempts.yaml", "missing field `max_attempts`"),
    // Unknown fields.
    (
        "unknown-config-field.yaml",
        "config.msec: unknown field (did you mean `ms`?)",
    ),
    ("unknown-edge-field.json", "edges[0].if: unknown field `if`"),
    ("unknown-node-field.yaml", "did you mean `timeout_ms`?"),
    ("unknown-retry-field.yaml", "did you mean `backoff_ms`?"),
    ("unknown-top-level-field.yaml", "did you mean `nodes`?"),
    // The graph.
    ("cycle-long.yaml", "cycle: n00 -> n01 -> n02"),
    ("cycle-self-loop.yaml", "edge from `a` to itself"),
    ("cycle-two-nodes.yaml", "cycle: a -> b -> a"),
    ("duplicate-edge.yaml", "duplicate edge `a` -> `b`"),
    ("duplicate-node-id.yaml", "`a` is already the id of nodes[0]"),
    (
        "edge-to-unknown-node.yaml",
        "no node has the id `fetchh` (did you mean `fetch`?)",
    ),
    ("empty-node-id.yaml", "nodes[0].id: must not be empty"),
    ("bad-node-id-characters.yaml", "`a b` may only hold letters, digits"),
    ("empty-name.yaml", "name: must not be empty"),
    ("no-nodes.yaml", "a workflow needs at least one node"),
    (
        "unknown-kind.yaml",
        "unknown node kind `htp` (node `a`); did you mean `http`?",
    ),
    ("bad-secret-name.yaml", "`1TOKEN` is not an environment variable name"),
    ("many-problems.yaml", "6 problems found"),
    // Templates.
    ("template-bad-when.yaml", "edges[0].when: invalid expression"),
    (
        "template-syntax-error.yaml",
        "config.output: invalid template: syntax error",
    ),
    ("template-unclosed-block.yaml", "expected end of block"),
    (
        "template-undeclared-secret.yaml",
        "reads `env.TOKEN`, which is not listed under `secrets:`",
    ),
    (
        "template-unknown-node.yaml",
        "no node has the id `user` (did you mean `users`?)",
    ),
    ("template-unknown-variable.yaml", "unknown variable `inputs`"),
    // Numbers.
    (
        "number-attempts-overflow-u32.yaml",
        "integer `4294967296`, expected u32",
    ),
    (
        "number-backoff-above-cap.yaml",
        "the cap must not be below the first wait",
    ),
    ("number-huge-burst.yaml", "strategy.burst: is too large"),
    ("number-huge-timeout.yaml", "timeout_ms: must be at most one day"),
    ("number-nan-factor.yaml", "retry.factor: must be a finite number >= 1"),
    ("number-negative-delay.yaml", "not -1"),
    (
        "number-negative-rate.yaml",
        "strategy.per_second: must be a number above 0",
    ),
    ("number-negative-timeout.yaml", "integer `-5`, expected u64"),
    ("number-timeout-overflows-u64.yaml", "expected u64"),
    ("number-zero-attempts.yaml", "max_attempts: must be at least 1"),
    ("number-zero-concurrency.yaml", "max_concurrency: must be at least 1"),
    ("number-zero-timeout.yaml", "timeout_ms: must be at least 1"),
    // Nesting.
    (
        "depth-config-too-deep.yaml",
        "nodes[0].config: nested deeper than the limit of 64",
    ),
    ("depth-input-too-deep.json", "input: nested deeper than the limit of 64"),
];

/// Long enough for a debug build on a busy machine; a hang is far longer.
const DEADLINE: Duration = Duration::from_secs(30);

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/invalid")
}

/// Runs `flow validate` and `flow run` on `file` (with `extra` flags); returns what
/// was wrong, if anything.
fn check(file: &Path, extra: &[&str], fragment: &str) -> Vec<String> {
    let dir = tempdir();
    let report = dir.path().join("report.json");
    let mut failures = Vec::new();
    let name = file
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    for command in ["validate", "run"] {
        let mut args: Vec<OsString> = vec![command.into(), file.into()];
        args.extend(extra.iter().map(OsString::from));
        if command == "run" {
            args.extend(["--report".into(), report.clone().into_os_string()]);
        }
        let out = flow_with_deadline(&args, DEADLINE);
        if out.elapsed > Duration::from_secs(2) {
            eprintln!("flow {command} {name}: {:?}", out.elapsed);
        }
        let mut wrong = Vec::new();
        if out.code != Some(2) {
            wrong.push(format!("exit {:?}, not 2", out.code));
        }
        if out.stderr.contains("panicked") {
            wrong.push("panicked".to_owned());
        }
        if !out.stderr.contains(fragment) {
            wrong.push(format!("no `{fragment}` in the message"));
        }
        if !out.stderr.contains("error") {
            wrong.push("no `error` in the message".to_owned());
        }
        if !out.stdout.is_empty() {
            wrong.push("printed to stdout".to_owned());
        }
        if report.exists() {
            wrong.push("wrote a report, yet nothing may run".to_owned());
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "flow {command} {name}: {}\n--- stderr:\n{}",
                wrong.join("; "),
                out.stderr
            ));
        }
    }
    failures
}

fn assert_none(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} failure(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn every_committed_file_is_listed_and_vice_versa() {
    let on_disk: BTreeSet<String> = match std::fs::read_dir(data_dir()) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) => panic!("{}: {e}", data_dir().display()),
    };
    let listed: BTreeSet<String> = CASES.iter().map(|(f, _)| (*f).to_owned()).collect();
    assert_eq!(listed.len(), CASES.len(), "a file is listed twice");
    assert_eq!(
        on_disk.difference(&listed).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "files without an expected message"
    );
    assert_eq!(
        listed.difference(&on_disk).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "listed files that do not exist"
    );
    assert!(CASES.len() >= 40, "issue #6 asks for at least 40 files");
}

#[test]
fn every_committed_file_is_refused_with_its_message() {
    let _turn = turn();
    let failures = CASES
        .iter()
        .flat_map(|(file, fragment)| check(&data_dir().join(file), &[], fragment))
        .collect();
    assert_none(failures);
}

/// `nodes:` with `n` nodes, one a line.
fn yaml_nodes(n: usize) -> String {
    let mut text = String::from("name: big\nnodes:\n");
    for i in 0..n {
        text.push_str(&format!("  - {{ id: n{i}, kind: noop }}\n"));
    }
    text
}

#[test]
fn generated_hostile_files_are_refused_cheaply() {
    let _turn = turn();
    let dir = tempdir();
    let at = |name: &str, content: Vec<u8>| write(dir.path(), name, content);
    let twenty_mb = 20 * 1024 * 1024;

    let mut big_json = String::from(r#"{"name":"big","nodes":["#);
    let mut i = 0;
    while big_json.len() < twenty_mb {
        if i > 0 {
            big_json.push(',');
        }
        big_json.push_str(&format!(r#"{{"id":"n{i}","kind":"noop"}}"#));
        i += 1;
    }
    big_json.push_str("]}");
    let deep = 100_000;
    let deep_json = format!(
        r#"{{"name":"x","nodes":[{{"id":"a","kind":"noop","config":{}1{}}}]}}"#,
        "[".repeat(deep),
        "]".repeat(deep)
    );
    let deep_yaml_flow = format!(
        "name: x\nnodes:\n  - id: a\n    kind: noop\n    config: {}1{}\n",
        "[".repeat(deep),
        "]".repeat(deep)
    );
    let mut deep_yaml_block = String::from("name: x\nnodes:\n  - id: a\n    kind: noop\n    config:\n");
    for level in 0..3000 {
        deep_yaml_block.push_str(&" ".repeat(6 + level));
        deep_yaml_block.push_str("k:\n");
    }
    let mut not_utf8 = b"name: x\nnodes:\n  - { id: caf".to_vec();
    not_utf8.extend_from_slice(&[0xE9, 0xFF, 0xFE]);
    not_utf8.extend_from_slice(b", kind: noop }\n");
    let mut not_utf8_json = br#"{"name":"x"#.to_vec();
    not_utf8_json.extend_from_slice(&[0xC0, 0x80]);
    not_utf8_json.extend_from_slice(br#"","nodes":[{"id":"a","kind":"noop"}]}"#);
    let mut cycle = yaml_nodes(5000);
    cycle.push_str("edges:\n");
    for i in 0..5000 {
        cycle.push_str(&format!("  - {{ from: n{i}, to: n{} }}\n", (i + 1) % 5000));
    }

    let big = at("twenty-mb.json", big_json.into_bytes());
    let twice = (twenty_mb * 2).to_string();
    let cases: Vec<(PathBuf, Vec<&str>, &str)> = vec![
        (
            big.clone(),
            vec![],
            "over the limit of 16777216 bytes (raise it with --max-file-bytes)",
        ),
        (
            big.clone(),
            vec!["--max-file-bytes", "1000"],
            "over the limit of 1000 bytes",
        ),
        (
            big,
            vec!["--max-file-bytes", &twice],
            "nodes, over the limit of 250000 (raise it with --max-nodes)",
        ),
        (
            at("eleven-nodes.yaml", yaml_nodes(11).into_bytes()),
            vec!["--max-nodes", "10"],
            "11 nodes, over the limit of 10",
        ),
        (
            at("deep.json", deep_json.into_bytes()),
            vec![],
            "recursion limit exceeded",
        ),
        (
            at("deep-flow.yaml", deep_yaml_flow.into_bytes()),
            vec![],
            "recursion limit exceeded",
        ),
        (
            at("deep-block.yaml", deep_yaml_block.into_bytes()),
            vec![],
            "recursion limit exceeded",
        ),
        (
            at("not-utf8.yaml", not_utf8),
            vec![],
            "file is not valid UTF-8 (byte 28)",
        ),
        (
            at("not-utf8.json", not_utf8_json),
            vec![],
            "file is not valid UTF-8 (byte 10)",
        ),
        (
            at("cycle-5000.yaml", cycle.into_bytes()),
            vec![],
            "the graph has a cycle",
        ),
        (dir.path().join("does-not-exist.yaml"), vec![], "cannot read"),
        (dir.path().to_owned(), vec![], "cannot read"),
        #[cfg(target_os = "linux")]
        (PathBuf::from("/dev/zero"), vec![], "over the limit of 16777216 bytes"),
    ];
    let failures: Vec<String> = cases
        .iter()
        .flat_map(|(file, extra, fragment)| check(file, extra, fragment))
        .collect();
    assert_none(failures);
}
