//! Errors for people: every problem names its place in the document and, where
//! known, shows its line with a caret; nothing runs and the exit code is 2.

use crate::{file, flow, stderr, tempdir};

/// `flow validate` and `flow run` on `text` (as `name`): both refuse it the same way.
fn check(name: &str, text: &str, expected: &[&str]) {
    let dir = tempdir();
    file(dir.path(), name, text);
    for command in ["validate", "run", "explain", "graph"] {
        let run = flow(dir.path(), &[command, name]);
        let err = stderr(&run);
        assert_eq!(run.status.code(), Some(2), "{command}: {err}");
        for wanted in expected {
            assert!(err.contains(wanted), "{command}: no `{wanted}` in:\n{err}");
        }
        assert!(err.contains("nothing ran"), "{err}");
    }
}

#[test]
fn a_bad_config_value_names_its_path_and_line() {
    check(
        "bad.yaml",
        "name: bad\nnodes:\n  - { id: a, kind: delay, config: { ms: 10 } }\n  - { id: b, kind: delay, config: { ms: -5 } }\n",
        &[
            "error: nodes[1].config.ms: must be a whole number",
            "--> bad.yaml:4:",
            "4 |   - { id: b, kind: delay, config: { ms: -5 } }",
        ],
    );
}

#[test]
fn a_misspelt_field_gets_a_caret_and_a_suggestion() {
    check(
        "typo.yaml",
        "name: typo\nnodes:\n  - id: a\n    kind: delay\n    confg: { ms: 10 }\n",
        &[
            "error: nodes[0].confg: unknown field `confg`",
            "(did you mean `config`?)",
            "--> typo.yaml:5:5",
            "5 |     confg: { ms: 10 }",
            "  |     ^",
        ],
    );
}

#[test]
fn a_duplicate_id_points_at_the_second_occurrence() {
    check(
        "dupe.yaml",
        "name: dupe\nnodes:\n  - { id: a, kind: noop }\n  - { id: b, kind: noop }\n  - { id: a, kind: noop }\n",
        &[
            "error: nodes[2].id: `a` is already the id of nodes[0]",
            "--> dupe.yaml:5:",
            "5 |   - { id: a, kind: noop }",
        ],
    );
}

#[test]
fn a_duplicate_edge_points_at_the_second_occurrence() {
    check(
        "edges.json",
        r#"{
  "name": "edges",
  "nodes": [ { "id": "a", "kind": "noop" }, { "id": "b", "kind": "noop" } ],
  "edges": [
    { "from": "a", "to": "b" },
    { "from": "a", "to": "b" }
  ]
}
"#,
        &["error: edges[1]: duplicate edge `a` -> `b`", "--> edges.json:6:"],
    );
}

#[test]
fn json_syntax_errors_have_a_line_and_column() {
    check(
        "syntax.json",
        "{\n  \"name\": \"x\",\n  \"nodes\": [ { \"id\": \"a\", \"kind\": \"noop\" }, ]\n}\n",
        &["--> syntax.json:3:", "^"],
    );
}
