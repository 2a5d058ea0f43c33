//! Parsing: JSON and YAML syntax errors carry a line and a column; limits.

use flow_core::{Error, Format, Limits, Registry, Workflow, parse_str, read_file};

use crate::support::{error, parse, registry};

/// The only problem of a document that does not parse: (place, message fragment, line, column).
#[track_caller]
fn check(text: &str, format: Format, place: &str, message: &str, line: usize, column: usize) {
    let err = error(text, format);
    assert!(matches!(err, Error::Parse(_)), "expected a parse error, got {err:?}");
    let p = &err.problems()[0];
    assert_eq!(p.place, place, "{err}");
    assert!(p.message.contains(message), "expected `{message}` in `{}`", p.message);
    assert_eq!((p.line, p.column), (Some(line), Some(column)), "{err}");
    assert!(
        err.to_string().contains(&format!("(line {line}, column {column})")),
        "{err}"
    );
}

#[test]
fn json_errors() {
    check(
        "{\"name\": \"t\",\n \"nodes\": [}\n",
        Format::Json,
        "nodes[0]",
        "expected value",
        2,
        12,
    );
    check("{\"name\": \"t\", \"nodes\": []", Format::Json, "", "EOF", 1, 25);
    check(
        "{\"name\": \"t\", \"nodes\": []} x",
        Format::Json,
        "",
        "trailing characters",
        1,
        28,
    );
    check(
        "{\"name\": \"t\",\n \"nodes\": [{\"id\": \"a\", \"kind\": \"noop\", \"tigger\": \"x\"}]}",
        Format::Json,
        "nodes[0].tigger",
        "unknown field `tigger`",
        2,
        47,
    );
    check(
        "{\"name\": 3, \"nodes\": []}",
        Format::Json,
        "name",
        "invalid type: integer `3`, expected a string",
        1,
        10,
    );
    check("{\"nodes\": []}", Format::Json, "", "missing field `name`", 1, 13);
}

#[test]
fn yaml_errors() {
    check(
        "name: t\nnodes:\n  - id: a\n    kind: noop\n   - id: b\n",
        Format::Yaml,
        "nodes",
        "did not find expected '-' indicator",
        5,
        4,
    );
    check(
        "name: t\nnodes: [{ id: a, kind: noop }\n",
        Format::Yaml,
        "nodes",
        "did not find expected ',' or ']'",
        3,
        1,
    );
    check(
        "name: t\nnodes:\n  - id: a\n    kind: noop\n    tigger: all_done\n",
        Format::Yaml,
        "nodes[0].tigger",
        "unknown field `tigger`",
        5,
        5,
    );
    check(
        "name: t\nnodes:\n  - id: a\n    kind: noop\n    retry: { max_attempts: x }\n",
        Format::Yaml,
        "nodes[0].retry.max_attempts",
        "invalid type",
        5,
        28,
    );
    check(
        "name: [1]\nnodes: []\n",
        Format::Yaml,
        "name",
        "invalid type: sequence, expected a string",
        1,
        7,
    );
}

#[test]
fn empty_and_odd_documents() {
    for text in ["", "   \n", "42", "[1, 2]", "null", "~"] {
        let err = error(text, Format::Yaml);
        assert!(matches!(err, Error::Parse(_)), "{text:?}: {err:?}");
    }
    for text in ["", "42", "[1]", "nul"] {
        let err = error(text, Format::Json);
        assert!(matches!(err, Error::Parse(_)), "{text:?}: {err:?}");
    }
}

#[test]
fn deep_nesting_is_refused_not_a_crash() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let text = format!("{{\"name\": \"t\", \"nodes\": [{{\"id\": \"a\", \"kind\": \"noop\", \"config\": {deep}}}]}}");
    assert!(matches!(error(&text, Format::Json), Error::Parse(_)));
    let text = format!("name: t\nnodes: [{{ id: a, kind: noop, config: {deep} }}]");
    let started = std::time::Instant::now();
    let err = error(&text, Format::Yaml);
    assert!(err.to_string().contains("recursion limit exceeded"), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    // Brackets in quoted strings and comments are not nesting.
    let quoted = "[".repeat(300);
    let text = format!(
        "name: t # {quoted}\ndescription: '{quoted}'\nnodes: [{{ id: a, kind: noop, config: \"\\\"{quoted}\" }}]"
    );
    assert!(parse(&text, Format::Yaml).is_ok(), "{text}");
    let nested = format!("{}1{}", "[".repeat(70), "]".repeat(70));
    let text = format!("name: t\nnodes: [{{ id: a, kind: noop, config: {nested} }}]");
    assert!(
        error(&text, Format::Yaml)
            .to_string()
            .contains("nested deeper than the limit of 64")
    );
}

#[test]
fn limits() {
    let limits = Limits {
        max_nodes: 2,
        max_file_bytes: 200,
        ..Limits::default()
    };
    let three = "name: t\nnodes: [{ id: a, kind: noop }, { id: b, kind: noop }, { id: c, kind: noop }]";
    let err = Workflow::from_str(three, Format::Yaml, &registry(), &limits).expect_err("an error");
    assert!(err.to_string().contains("3 nodes, over the limit of 2"), "{err}");
    let big = format!(
        "name: t\ndescription: '{}'\nnodes: [{{ id: a, kind: noop }}]",
        "x".repeat(300)
    );
    let err = parse_str(&big, Format::Yaml, &limits).expect_err("an error");
    assert!(err.to_string().contains("over the limit of 200 bytes"), "{err}");
}

#[test]
fn formats() {
    use std::path::Path;
    assert_eq!(Format::from_path(Path::new("a.json")), Some(Format::Json));
    assert_eq!(Format::from_path(Path::new("a.YML")), Some(Format::Yaml));
    assert_eq!(Format::from_path(Path::new("a.yaml")), Some(Format::Yaml));
    assert_eq!(Format::from_path(Path::new("a.txt")), None);
    assert_eq!(Format::sniff("  {\"name\": 1}"), Format::Json);
    assert_eq!(Format::sniff("name: x"), Format::Yaml);
}

#[test]
fn files() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("flow-core-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let json = dir.join("w.json");
    std::fs::write(&json, r#"{"name": "t", "nodes": [{"id": "a", "kind": "noop"}]}"#)?;
    let wf = Workflow::load(&json, &registry(), &Limits::default())?;
    assert_eq!(wf.name(), "t");

    let missing = dir.join("missing.yaml");
    let err = Workflow::load(&missing, &registry(), &Limits::default()).expect_err("an error");
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("cannot read"), "{err}");

    let binary = dir.join("w.yaml");
    std::fs::write(&binary, b"name: t\nnodes: \xff\xfe\n")?;
    let err = read_file(&binary, &Limits::default()).expect_err("not UTF-8");
    assert_eq!(
        (err.problems()[0].line, err.problems()[0].column),
        (Some(2), Some(8)),
        "{err}"
    );
    assert!(err.to_string().contains("not valid UTF-8"), "{err}");

    let unknown_ext = dir.join("w.txt");
    std::fs::write(&unknown_ext, "name: t\nnodes: [{ id: a, kind: noop }]\n")?;
    assert!(Workflow::load(&unknown_ext, &registry(), &Limits::default()).is_ok());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn no_kinds_registered() {
    let err = Workflow::from_str(
        "name: t\nnodes: [{ id: a, kind: noop }]",
        Format::Yaml,
        &Registry::new(),
        &Limits::default(),
    )
    .expect_err("an error");
    assert!(err.to_string().contains("unknown node kind `noop`"), "{err}");
}
