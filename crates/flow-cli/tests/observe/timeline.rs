//! The timeline SVG: one bar per attempt, at the right place, readable back.

use std::collections::BTreeMap;

use crate::{file, flow, stderr, tempdir};

/// One bar read back from the SVG.
#[derive(Debug, Clone, PartialEq)]
struct Bar {
    node: String,
    attempt: u32,
    status: String,
    start_ms: f64,
    end_ms: f64,
    x: f64,
    y: f64,
    width: f64,
}

/// The chart's scale and its bars, by (node, attempt).
struct Chart {
    x0: f64,
    width: f64,
    total_ms: f64,
    bars: BTreeMap<(String, u32), Bar>,
    not_run: Vec<(String, String)>,
    title: String,
}

fn attr<T: std::str::FromStr>(node: roxmltree::Node<'_, '_>, name: &str) -> T {
    node.attribute(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("<{}> has no {name}", node.tag_name().name()))
}

fn parse(svg: &str) -> Chart {
    let doc = roxmltree::Document::parse(svg).expect("the timeline is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    let rows = doc
        .descendants()
        .find(|n| n.attribute("class") == Some("rows"))
        .expect("a group of rows");
    let mut bars = BTreeMap::new();
    for rect in doc.descendants().filter(|n| n.attribute("class") == Some("bar")) {
        let bar = Bar {
            node: attr(rect, "data-node"),
            attempt: attr(rect, "data-attempt"),
            status: attr(rect, "data-status"),
            start_ms: attr(rect, "data-start-ms"),
            end_ms: attr(rect, "data-end-ms"),
            x: attr(rect, "x"),
            y: attr(rect, "y"),
            width: attr(rect, "width"),
        };
        let key = (bar.node.clone(), bar.attempt);
        assert!(bars.insert(key, bar).is_none(), "one bar per attempt");
    }
    let not_run = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("not-run"))
        .map(|n| (attr(n, "data-node"), attr(n, "data-status")))
        .collect();
    let title = root
        .children()
        .find(|n| n.tag_name().name() == "title")
        .and_then(|n| n.text())
        .unwrap_or_default()
        .to_owned();
    Chart {
        x0: attr(rows, "data-x0"),
        width: attr(rows, "data-width"),
        total_ms: attr(rows, "data-total-ms"),
        bars,
        not_run,
        title,
    }
}

/// A report as `flow run --report` writes it, with chosen times.
const REPORT: &str = r#"{
  "workflow": "known",
  "run_id": 7,
  "strategy": "all-settled",
  "status": "failed",
  "duration_ms": 400.0,
  "nodes": {
    "fetch": { "status": "succeeded", "attempts": 1, "started_ms": 0.0, "finished_ms": 100.0, "output": null, "error": null,
               "attempts_detail": [ { "started_ms": 0.0, "finished_ms": 100.0, "error": null } ] },
    "left":  { "status": "succeeded", "attempts": 1, "started_ms": 100.0, "finished_ms": 300.0, "output": null, "error": null,
               "attempts_detail": [ { "started_ms": 100.0, "finished_ms": 300.0, "error": null } ] },
    "right": { "status": "succeeded", "attempts": 1, "started_ms": 100.0, "finished_ms": 250.0, "output": null, "error": null,
               "attempts_detail": [ { "started_ms": 100.0, "finished_ms": 250.0, "error": null } ] },
    "join":  { "status": "succeeded", "attempts": 1, "started_ms": 300.0, "finished_ms": 400.0, "output": null, "error": null,
               "attempts_detail": [ { "started_ms": 300.0, "finished_ms": 400.0, "error": null } ] },
    "flaky": { "status": "failed", "attempts": 3, "started_ms": 0.0, "finished_ms": 180.0, "output": null, "error": "boom <&> \"quoted\"",
               "attempts_detail": [ { "started_ms": 0.0, "finished_ms": 20.0, "error": "boom" },
                                    { "started_ms": 60.0, "finished_ms": 80.0, "error": "boom" },
                                    { "started_ms": 140.0, "finished_ms": 180.0, "error": "boom <&> \"quoted\"" } ] },
    "after": { "status": "upstream_failed", "attempts": 0, "started_ms": null, "finished_ms": null, "output": null, "error": null,
               "attempts_detail": [] }
  }
}"#;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 0.01
}

#[test]
fn a_known_report_draws_one_bar_per_attempt_at_its_time() {
    let dir = tempdir();
    let report = file(dir.path(), "report.json", REPORT);
    let out = dir.path().join("run.svg");
    let run = flow(
        dir.path(),
        &["timeline", &report.to_string_lossy(), "-o", &out.to_string_lossy()],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let svg = std::fs::read_to_string(&out).expect("the SVG was written");
    let chart = parse(&svg);

    assert_eq!(chart.total_ms, 400.0);
    assert!(chart.title.contains("known") && chart.title.contains("all-settled") && chart.title.contains("400"));
    let expected = [
        ("fetch", 1, "succeeded", 0.0, 100.0),
        ("left", 1, "succeeded", 100.0, 300.0),
        ("right", 1, "succeeded", 100.0, 250.0),
        ("join", 1, "succeeded", 300.0, 400.0),
        ("flaky", 1, "retried", 0.0, 20.0),
        ("flaky", 2, "retried", 60.0, 80.0),
        ("flaky", 3, "failed", 140.0, 180.0),
    ];
    assert_eq!(chart.bars.len(), expected.len(), "{:#?}", chart.bars);
    let px_per_ms = chart.width / chart.total_ms;
    for (node, attempt, status, start, end) in expected {
        let bar = &chart.bars[&(node.to_owned(), attempt)];
        assert_eq!(bar.status, status, "{bar:?}");
        assert_eq!((bar.start_ms, bar.end_ms), (start, end), "{bar:?}");
        assert!(close(bar.x, chart.x0 + start * px_per_ms), "x of {bar:?}");
        assert!(close(bar.width, (end - start) * px_per_ms), "width of {bar:?}");
    }
    assert_eq!(chart.not_run, [("after".to_owned(), "upstream_failed".to_owned())]);

    // Side by side: the two branches share a start, overlap in time, and sit on
    // different rows.
    let left = &chart.bars[&("left".to_owned(), 1)];
    let right = &chart.bars[&("right".to_owned(), 1)];
    assert_eq!(left.x, right.x);
    assert_ne!(left.y, right.y);
    // Rows follow the first start, then file order.
    let y = |node: &str| chart.bars[&(node.to_owned(), 1)].y;
    assert!(y("fetch") < y("flaky") && y("flaky") < y("left") && y("left") < y("right") && y("right") < y("join"));
    // The retries sit on one row, in order, with waits between them.
    let flaky: Vec<&Bar> = (1..=3).map(|a| &chart.bars[&("flaky".to_owned(), a)]).collect();
    assert!(flaky.iter().all(|b| b.y == flaky[0].y));
    assert!(flaky.windows(2).all(|w| w[0].x + w[0].width < w[1].x));
    assert_eq!(svg.matches(r#"class="wait""#).count(), 2);
}

#[test]
fn the_svg_is_self_contained_and_escapes_text() {
    let dir = tempdir();
    let report = file(dir.path(), "report.json", REPORT);
    let run = flow(dir.path(), &["timeline", &report.to_string_lossy()]);
    assert!(run.status.success(), "{}", stderr(&run));
    let svg = String::from_utf8(run.stdout).expect("UTF-8");
    roxmltree::Document::parse(&svg).expect("well-formed");
    for banned in ["<script", "<style", "@import", "href=", "<image", "<foreignObject"] {
        assert!(!svg.contains(banned), "the SVG holds `{banned}`");
    }
    // Only the SVG namespace names a URL.
    assert_eq!(svg.matches("http").count(), 1);
    assert!(svg.contains("boom &lt;&amp;&gt; &quot;quoted&quot;"));
}

#[test]
fn a_real_run_draws_parallel_branches_side_by_side_and_sequential_ones_apart() {
    let dir = tempdir();
    let workflow = file(
        dir.path(),
        "fan.yaml",
        r#"
name: fan
nodes:
  - { id: a, kind: delay, config: { ms: 80 } }
  - { id: b, kind: delay, config: { ms: 80 } }
  - { id: c, kind: delay, config: { ms: 80 } }
"#,
    );
    let bars = |strategy: &str| {
        let svg_path = dir.path().join(format!("{strategy}.svg"));
        let run = flow(
            dir.path(),
            &[
                "run",
                &workflow.to_string_lossy(),
                "--quiet",
                "--strategy",
                strategy,
                "--timeline",
                &svg_path.to_string_lossy(),
            ],
        );
        assert!(run.status.success(), "{}", stderr(&run));
        let chart = parse(&std::fs::read_to_string(&svg_path).expect("the SVG was written"));
        ["a", "b", "c"].map(|n| chart.bars[&(n.to_owned(), 1)].clone())
    };
    let overlap = |p: &Bar, q: &Bar| p.x < q.x + q.width && q.x < p.x + p.width;

    let parallel = bars("parallel");
    assert!(overlap(&parallel[0], &parallel[1]) && overlap(&parallel[1], &parallel[2]));
    let sequential = bars("sequential");
    assert!(!overlap(&sequential[0], &sequential[1]) && !overlap(&sequential[1], &sequential[2]));
    assert!(sequential[0].x < sequential[1].x && sequential[1].x < sequential[2].x);
}

#[test]
fn a_huge_report_stays_small() {
    let dir = tempdir();
    let mut nodes = serde_json::Map::new();
    for i in 0..5000 {
        let start = i as f64 * 0.1;
        nodes.insert(
            format!("node-{i}"),
            serde_json::json!({ "status": "succeeded", "attempts": 1, "started_ms": start, "finished_ms": start + 5.0,
                "output": null, "error": null,
                "attempts_detail": [{ "started_ms": start, "finished_ms": start + 5.0, "error": null }] }),
        );
    }
    let retries: Vec<serde_json::Value> = (0..1000)
        .map(|a| serde_json::json!({ "started_ms": a as f64, "finished_ms": a as f64 + 0.5, "error": "again" }))
        .collect();
    nodes.insert(
        "stubborn".to_owned(),
        serde_json::json!({ "status": "failed", "attempts": 1000, "started_ms": 0.0, "finished_ms": 999.5,
            "output": null, "error": "again", "attempts_detail": retries }),
    );
    let report = serde_json::json!({ "workflow": "huge", "run_id": 1, "strategy": "parallel", "status": "failed",
        "duration_ms": 1000.0, "nodes": nodes });
    let path = file(dir.path(), "huge.json", &report.to_string());
    let run = flow(dir.path(), &["timeline", &path.to_string_lossy()]);
    assert!(run.status.success(), "{}", stderr(&run));
    let svg = String::from_utf8(run.stdout).expect("UTF-8");
    assert!(svg.len() < 2_000_000, "{} bytes", svg.len());
    let chart = parse(&svg);
    assert!(chart.bars.len() <= 400 + 30, "{} bars", chart.bars.len());
    assert!(svg.contains("more nodes not drawn"));
    // The stubborn node starts first: its first attempts and its last one are drawn.
    assert!(chart.bars.contains_key(&("stubborn".to_owned(), 1000)));
    assert!(!chart.bars.contains_key(&("stubborn".to_owned(), 500)));
}

#[test]
fn a_file_that_is_not_a_report_is_a_usage_error_with_its_place() {
    let dir = tempdir();
    let path = file(dir.path(), "bad.json", "{\n  \"workflow\": \"x\",\n  \"nodes\": 3\n}\n");
    let run = flow(dir.path(), &["timeline", &path.to_string_lossy()]);
    assert_eq!(run.status.code(), Some(2));
    let err = stderr(&run);
    assert!(err.contains("bad.json:3:"), "{err}");
    assert!(err.contains("not a flow report"), "{err}");

    let run = flow(dir.path(), &["timeline", "missing.json"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(stderr(&run).contains("missing.json: cannot read"));
}
