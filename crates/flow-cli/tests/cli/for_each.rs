//! `for_each` through the `flow` binary: the report, `--max-items`, progress
//! lines, the timeline lane, `flow explain` and `flow graph`.

use crate::support::{example, flow, tempdir, write};

#[test]
fn the_example_fans_out_and_merges() {
    let path = example("for-each.yaml").display().to_string();
    let out = flow(["run", &path, "--report", "-"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let report = out.report();
    let visit = &report["nodes"]["visit"];
    assert_eq!(visit["items"]["total"], 5);
    assert_eq!(visit["items"]["succeeded"], 5);
    assert_eq!(visit["item_runs"].as_array().map(Vec::len), Some(5));
    assert_eq!(visit["output"][0]["slept_ms"], 120);
    let merge = &report["nodes"]["merge"]["output"];
    assert_eq!(merge["visited"][4], "ken");
    assert_eq!(merge["waited_ms"], 320);
    assert!(report["nodes"]["merge"].get("items").is_none());
    // Plain progress lines (stderr is not a terminal) show the items.
    assert!(out.stderr.contains("for_each         visit: 5 items"), "{}", out.stderr);
    assert!(out.stderr.contains("started          visit[0]"), "{}", out.stderr);
    assert!(out.stderr.contains("succeeded        visit[4]"), "{}", out.stderr);
    assert!(
        out.stderr.contains("succeeded        visit: 5 items, 0 failed"),
        "{}",
        out.stderr
    );
}

#[test]
fn max_items_fails_the_node_and_the_run() {
    let path = example("for-each.yaml").display().to_string();
    let out = flow(["run", &path, "--quiet", "--max-items", "4", "--report", "-"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let visit = &out.report()["nodes"]["visit"];
    assert_eq!(visit["status"], "failed");
    assert_eq!(visit["error"], "for_each gave 5 items, over the limit of 4 (max_items)");
}

#[test]
fn a_huge_for_each_draws_as_one_bounded_lane() {
    let dir = tempdir();
    let path = write(
        &dir,
        "many.yaml",
        "name: many\nnodes:\n  - { id: each, kind: transform, for_each: \"{{ range(20000) | list }}\", config: { output: \"{{ item }}\" } }\n",
    );
    let svg = dir.path().join("run.svg");
    let out = flow([
        "run",
        &path.display().to_string(),
        "--quiet",
        "--timeline",
        &svg.display().to_string(),
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let text = std::fs::read_to_string(&svg).unwrap_or_default();
    assert!(
        text.contains(r#"class="items" data-node="each" data-items="20000""#),
        "{}",
        &text[..text.len().min(2000)]
    );
    let columns = text.matches(r#"class="item-column""#).count();
    assert!((1..=2000).contains(&columns), "{columns} columns");
    assert!(text.len() < 1_000_000, "{} bytes", text.len());
}

#[test]
fn explain_and_graph_mark_the_node_as_dynamic() {
    let path = example("for-each.yaml").display().to_string();
    let out = flow(["explain", &path]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout
            .contains("dynamic: for_each user (max 3 at once, 20% tolerated)"),
        "{}",
        out.stdout
    );
    let out = flow(["graph", &path]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("for_each user"), "{}", out.stdout);
}

#[test]
fn bad_for_each_fields_are_usage_errors_with_their_place() {
    let dir = tempdir();
    let path = write(
        &dir,
        "bad.yaml",
        "name: bad\nnodes:\n  - { id: a, kind: noop, for_each: \"{{ input.x }}\", as: index, tolerated_failures: \"lots\" }\n",
    );
    let out = flow(["validate", &path.display().to_string()]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("nodes[0].as: `index` would hide"), "{}", out.stderr);
    assert!(
        out.stderr.contains("nodes[0].tolerated_failures: must be a count"),
        "{}",
        out.stderr
    );
}
