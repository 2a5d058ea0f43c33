//! `flow graph`: Mermaid and DOT for a known workflow (snapshots), with labels
//! that need escaping.

use crate::{example, file, flow, stderr, stdout, tempdir};

/// Conditions with quotes, `<`, `|` and `#`; a trigger rule; retries; a timeout.
const TRICKY: &str = r##"
name: 'checkout "v2"'
strategy: { kind: all-settled, max_concurrency: 2 }
nodes:
  - { id: classify, kind: transform, config: { output: { amount: "{{ input.amount }}", tag: "a#b" } } }
  - id: review
    kind: delay
    config: { ms: 50 }
    retry: { max_attempts: 3, backoff_ms: 10 }
    timeout_ms: 500
  - { id: approve, kind: noop }
  - { id: notify, kind: noop, trigger: one_success, continue_on_error: true }
edges:
  - { from: classify, to: review, when: 'nodes.classify.output.amount > 100 and nodes.classify.output.tag == "a#b"' }
  - { from: classify, to: approve, when: "nodes.classify.output.amount | int < 100" }
  - { from: review, to: notify }
  - { from: approve, to: notify }
"##;

fn graph(format: &str) -> String {
    let dir = tempdir();
    let path = file(dir.path(), "tricky.yaml", TRICKY);
    let run = flow(dir.path(), &["graph", &path.to_string_lossy(), "--format", format]);
    assert!(run.status.success(), "{}", stderr(&run));
    stdout(&run)
}

#[test]
fn mermaid_of_a_known_workflow() {
    insta::assert_snapshot!(graph("mermaid"));
}

#[test]
fn dot_of_a_known_workflow() {
    insta::assert_snapshot!(graph("dot"));
}

#[test]
fn mermaid_labels_hold_no_raw_quote_pipe_or_markup() {
    let text = graph("mermaid");
    for line in text.lines().filter(|l| l.contains("-.->")) {
        // Between `|"` and `"|` only escaped text: no raw quote, pipe or angle bracket.
        let label = line
            .split_once("|\"")
            .and_then(|(_, rest)| rest.rsplit_once("\"|"))
            .map(|(label, _)| label)
            .expect("a quoted label");
        assert!(!label.contains(['"', '|', '<', '>']), "{label}");
    }
}

#[test]
fn the_default_format_is_mermaid_and_output_can_go_to_a_file() {
    let dir = tempdir();
    let out = dir.path().join("diamond.mmd");
    let run = flow(
        dir.path(),
        &[
            "graph",
            &example("diamond.yaml").to_string_lossy(),
            "-o",
            &out.to_string_lossy(),
        ],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stdout(&run).is_empty());
    let text = std::fs::read_to_string(&out).expect("the diagram was written");
    assert!(text.contains("flowchart TD"));
    assert_eq!(text.matches("-->").count(), 4);
}

#[test]
fn an_unknown_format_is_a_usage_error() {
    let dir = tempdir();
    let run = flow(
        dir.path(),
        &["graph", &example("diamond.yaml").to_string_lossy(), "--format", "png"],
    );
    assert_eq!(run.status.code(), Some(2));
    assert!(stderr(&run).contains("mermaid"));
}
