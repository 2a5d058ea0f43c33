//! The web page at `/`: server-rendered HTML, as pure functions of what the API
//! returns, plus one small script (`assets/app.js`) for the live parts and one
//! style sheet. No build step, nothing from a CDN: it works with no internet.
//!
//! Every interpolated string goes through [`escape`]. The DOM the script (and the
//! browser tests) rely on: `body[data-page]` (`runs`, `run`, `workflows`,
//! `login`, `not-found`); on the runs page `#filter`, `#runs` and its
//! `tr[data-run][data-status]`; on a run's page `body[data-run][data-live]`,
//! `#run-status[data-status]`, `#run-duration`, `#cancel`, `#retry`, `#message`,
//! `#graph [data-node][data-status]`, `#timeline`, `#nodes` and its
//! `tr[data-node][data-status]`, and `details[data-detail]` per node; on the
//! workflows page `#workflows` and its `[data-workflow][data-valid]` items, each
//! valid one with a `form.start[data-workflow]`.

mod run;
mod runs;
mod workflows;

use std::fmt::Write as _;

use serde_json::Value;

pub use run::run_page;
pub use runs::runs_page;
pub use workflows::workflows_page;

/// The script of the live parts.
pub const APP_JS: &str = include_str!("../../assets/app.js");
/// The style sheet.
pub const STYLE_CSS: &str = include_str!("../../assets/style.css");

/// The statuses a run list can be filtered by.
const RUN_STATUSES: [&str; 6] = ["running", "waiting", "succeeded", "failed", "cancelled", "interrupted"];
/// Node statuses in the order counts are shown.
const COUNT_ORDER: [&str; 7] = [
    "succeeded",
    "failed",
    "upstream_failed",
    "cancelled",
    "skipped",
    "running",
    "pending",
];
/// A node's output is shown up to this many bytes of pretty JSON.
pub const MAX_OUTPUT_BYTES: usize = 20 * 1024;
/// Outputs shown on one run page, in all; past it, outputs are left to the JSON.
pub const MAX_PAGE_OUTPUT_BYTES: usize = 2 * 1024 * 1024;
/// Items of a `for_each` node listed at most.
pub const MAX_ITEMS: usize = 500;
/// Nodes listed at most on a run's page.
pub const MAX_NODE_ROWS: usize = 1000;
/// An error in a table cell is cut to this many characters (the details have it all).
const CELL_ERROR_CHARS: usize = 160;

/// HTML text and attribute values (double- or single-quoted).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A path segment or query value, percent-encoded (RFC 3986 unreserved kept).
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The longest prefix of `text` of at most `max` bytes that ends on a char boundary.
fn cut_bytes(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `2026-04-20T12:34:56.789Z` as `2026-04-20 12:34:56`; other text as it is.
fn short_time(rfc3339: &str) -> String {
    let b = rfc3339.as_bytes();
    if b.len() >= 19 && b[10] == b'T' && rfc3339.is_char_boundary(19) {
        format!("{} {}", &rfc3339[..10], &rfc3339[11..19])
    } else {
        rfc3339.to_owned()
    }
}

fn kib(bytes: usize) -> String {
    format!("{:.0} KB", (bytes as f64 / 1024.0).ceil())
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[derive(Clone, Copy, PartialEq)]
enum Nav {
    Runs,
    Workflows,
    /// The links, none of them current.
    None,
    /// No links (the login form: they would lead back to it).
    Hidden,
}

/// A whole document: head, top bar, and `main`.
fn document(title: &str, body_attrs: &str, nav: Nav, main: &str) -> String {
    let link = |href: &str, label: &str, here: bool| {
        format!(
            r#"<a href="{href}"{}>{label}</a>"#,
            if here { r#" aria-current="page""# } else { "" }
        )
    };
    let bar = if nav == Nav::Hidden {
        String::new()
    } else {
        format!(
            "{}{}",
            link("/", "Runs", nav == Nav::Runs),
            link("/workflows", "Workflows", nav == Nav::Workflows)
        )
    };
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · flow</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/style.css">
<script src="/assets/app.js" defer></script>
</head>
<body {body_attrs}>
<header class="top"><nav><a class="brand" href="/">flow</a>{bar}</nav></header>
<main>
{main}</main>
</body>
</html>
"#,
        title = escape(title),
    )
}

/// A status badge: coloured by `data-status` in the style sheet.
fn badge(status: &str) -> String {
    format!(
        r#"<span class="badge" data-status="{0}">{1}</span>"#,
        escape(status),
        escape(&status.replace('_', " "))
    )
}

/// A number in a JSON value, as `f64`.
fn number(value: Option<&Value>) -> Option<f64> {
    value.and_then(Value::as_f64).filter(|n| n.is_finite())
}

/// A string field of a JSON object, or "".
fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Node counts (`{"succeeded": 3, "failed": 1}`) as small coloured numbers.
fn counts_html(counts: Option<&Value>) -> String {
    let Some(map) = counts.and_then(Value::as_object) else {
        return String::new();
    };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_by_key(|k| COUNT_ORDER.iter().position(|o| o == k).unwrap_or(COUNT_ORDER.len()));
    let mut out = String::new();
    for key in keys {
        let n = number(map.get(key)).unwrap_or(0.0);
        if n <= 0.0 {
            continue;
        }
        let _ = write!(
            out,
            r#"<span class="count" data-status="{0}" title="{1}">{n} {1}</span>"#,
            escape(key),
            escape(&key.replace('_', " "))
        );
    }
    out
}

/// The login form (when the server has a token): POSTs `token` to `/login`.
pub fn login_page(error: Option<&str>) -> String {
    let mut main = String::from(
        r#"<form class="card login" method="post" action="/login"><h1>Sign in</h1><p class="muted">This server needs its token (<code>FLOW_TOKEN</code>).</p>"#,
    );
    if let Some(error) = error {
        let _ = write!(main, r#"<p class="error" role="alert">{}</p>"#, escape(error));
    }
    main.push_str(
        r#"<label for="token">Token</label><input id="token" type="password" name="token" autocomplete="current-password" required autofocus><button type="submit">Sign in</button></form>
"#,
    );
    document("Sign in", r#"data-page="login""#, Nav::Hidden, &main)
}

/// A page that says why a request from the page failed, with a way back.
pub fn error_page(title: &str, detail: &str, back: (&str, &str)) -> String {
    let main = format!(
        r#"<div class="card"><h1>{}</h1><p class="error" role="alert">{}</p><p><a href="{}">{}</a></p></div>
"#,
        escape(title),
        escape(detail),
        escape(back.0),
        escape(back.1)
    );
    document(title, r#"data-page="error""#, Nav::None, &main)
}

/// A page for something that is not there.
pub fn not_found_page(what: &str) -> String {
    let main = format!(
        r#"<div class="card"><h1>Not found</h1><p>{} was not found.</p><p><a href="/">Back to the runs</a></p></div>
"#,
        escape(what)
    );
    document("Not found", r#"data-page="not-found""#, Nav::None, &main)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use flow_core::{AttemptReport, ItemCounts, ItemRun, NodeReport, NodeReports, NodeStatus, Report, RunStatus};
    use serde_json::json;

    fn assert_document(html: &str) {
        assert!(html.starts_with("<!doctype html>"));
        assert!(html.contains(r#"<meta charset="utf-8">"#));
        assert!(html.contains(r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#));
        assert!(html.contains(r#"<link rel="stylesheet" href="/assets/style.css">"#));
        assert!(html.contains(r#"<script src="/assets/app.js" defer></script>"#));
        assert!(html.trim_end().ends_with("</html>"));
        // Nothing from elsewhere.
        assert!(!html.contains(r#"src="http"#) && !html.contains(r#"href="http"#) && !html.contains("//cdn"));
    }

    fn report() -> Report {
        let mut nodes = NodeReports::default();
        let mut a = NodeReport::new(NodeStatus::Succeeded);
        a.attempts = 1;
        a.started_ms = Some(1.0);
        a.finished_ms = Some(21.5);
        a.output = json!({"status": 200, "body": "<b>hi</b>"});
        a.attempts_detail = vec![AttemptReport {
            started_ms: 1.0,
            finished_ms: 21.5,
            error: None,
            limit_wait_ms: None,
        }];
        nodes.push("fetch", a);
        let mut b = NodeReport::new(NodeStatus::Failed);
        b.attempts = 2;
        b.started_ms = Some(22.0);
        b.finished_ms = Some(80.0);
        b.error = Some("HTTP 500 <oops> & more".into());
        b.attempts_detail = vec![
            AttemptReport {
                started_ms: 22.0,
                finished_ms: 40.0,
                error: Some("HTTP 500 <oops> & more".into()),
                limit_wait_ms: None,
            },
            AttemptReport {
                started_ms: 50.0,
                finished_ms: 80.0,
                error: Some("HTTP 500 <oops> & more".into()),
                limit_wait_ms: None,
            },
        ];
        nodes.push("notify", b);
        let mut c = NodeReport::new(NodeStatus::Succeeded);
        c.attempts = 3;
        c.started_ms = Some(22.0);
        c.finished_ms = Some(60.0);
        c.output = json!([1, 2, 3]);
        c.item_runs = Some(
            (0..3)
                .map(|i| ItemRun {
                    index: i,
                    status: if i == 1 {
                        NodeStatus::Failed
                    } else {
                        NodeStatus::Succeeded
                    },
                    attempts: 1,
                    started_ms: Some(22.0),
                    finished_ms: Some(60.0),
                    error: (i == 1).then(|| "bad item".to_owned()),
                    child_run_id: None,
                })
                .collect(),
        );
        c.items = Some(ItemCounts {
            total: 3,
            succeeded: 2,
            failed: 1,
            cancelled: 0,
        });
        nodes.push("visit", c);
        nodes.push("report", NodeReport::new(NodeStatus::UpstreamFailed));
        Report::new("orders", "0190-abc", "all-settled", RunStatus::Failed, 81.0, nodes)
    }

    #[test]
    fn escape_covers_html() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(encode("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(short_time("2026-04-20T12:34:56.789Z"), "2026-04-20 12:34:56");
        assert_eq!(short_time("yesterday"), "yesterday");
        assert_eq!(cut_bytes("héllo", 2), "h");
    }

    #[test]
    fn runs_page_lists_and_filters() {
        let runs = vec![
            json!({"run_id": "r1", "workflow": "orders", "status": "succeeded", "started_at": "2026-04-20T12:34:56.789Z", "duration_ms": 1234.5, "nodes": {"succeeded": 4}, "url": "/api/v1/runs/r1"}),
            json!({"run_id": "r2", "workflow": "<x>", "status": "running", "started_at": "2026-04-20T12:35:00Z", "duration_ms": null, "nodes": null, "url": "/api/v1/runs/r2"}),
        ];
        let names = vec!["orders".to_owned(), "<x>".to_owned()];
        let html = runs_page(&runs, &names, Some("orders"), Some("failed"), false);
        assert_document(&html);
        assert!(html.contains(r#"<body data-page="runs">"#));
        assert!(html.contains(r#"<table id="runs">"#));
        assert!(html.contains(r#"<tr data-run="r1" data-status="succeeded"><td><a href="/runs/r1">"#));
        assert!(html.contains(r#"<tr data-run="r2" data-status="running">"#));
        assert!(html.contains("1234.5 ms"));
        assert!(html.contains(">2026-04-20 12:34:56</time>"));
        assert!(html.contains(r#"<span class="count" data-status="succeeded" title="succeeded">4 succeeded</span>"#));
        assert!(html.contains(r#"<option value="orders" selected>orders</option>"#));
        assert!(html.contains(r#"<option value="&lt;x&gt;">&lt;x&gt;</option>"#));
        assert!(html.contains(r#"<option value="failed" selected>failed</option>"#));
        assert!(!html.contains("<x>"));
        for s in RUN_STATUSES {
            assert!(html.contains(&format!(r#"<option value="{s}""#)));
        }
        assert!(html.contains(r#"href="/" aria-current="page">Runs</a>"#));
        assert!(html.contains(r#"href="/workflows">Workflows</a>"#));

        let empty = runs_page(&[], &names, None, None, false);
        assert!(empty.contains("No runs yet"));
        assert!(runs_page(&[], &names, None, Some("failed"), true).contains("No runs match"));
    }

    #[test]
    fn run_page_shows_everything() {
        let report = report();
        let html = run_page(&report, r#"<svg id="g"><g data-node="fetch"/></svg>"#, false, "c5rf");
        assert_document(&html);
        assert!(html.contains(r#"<body data-page="run" data-run="0190-abc" data-live="false" data-waiting="false">"#));
        assert!(html.contains(r#"<span id="run-status" class="badge" data-status="failed">failed</span>"#));
        assert!(html.contains(r#"<button id="cancel" type="button" disabled>Cancel</button>"#));
        assert!(html.contains(r#"<button id="retry" type="button">Retry</button>"#));
        assert!(html.contains(r#"<div id="message" role="alert" hidden></div>"#));
        assert!(html.contains(r#"<div id="graph"><svg id="g"><g data-node="fetch"/></svg></div>"#));
        assert!(html.contains(r#"<img id="timeline" src="/api/v1/runs/0190-abc/timeline.svg" alt="timeline">"#));
        assert!(html.contains(r#"<table id="nodes">"#));
        assert!(html.contains(r#"<tr data-node="fetch" data-status="succeeded">"#));
        assert!(html.contains(r#"<tr data-node="notify" data-status="failed">"#));
        assert!(html.contains(r#"<tr data-node="report" data-status="upstream_failed">"#));
        assert!(html.contains("20.5 ms"), "fetch took 21.5 - 1");
        assert!(html.contains("HTTP 500 &lt;oops&gt; &amp; more"));
        assert!(!html.contains("<oops>"));
        // Output as pretty JSON, escaped.
        assert!(html.contains("&quot;body&quot;: &quot;&lt;b&gt;hi&lt;/b&gt;&quot;"));
        assert!(html.contains(r#"<details class="node-detail" id="node-notify" data-detail="notify">"#));
        // Attempts, each with its error.
        let notify = html.split(r#"data-detail="notify""#).nth(1).unwrap();
        let notify = &notify[..notify.find("</details>").unwrap()];
        assert_eq!(notify.matches(r#"<tr><td class="num">"#).count(), 2);
        assert!(notify.contains("50.0 ms") && notify.contains("80.0 ms"));
        // Items of the for_each node.
        let visit = html.split(r#"data-detail="visit""#).nth(1).unwrap();
        let visit = &visit[..visit.find("</details>").unwrap()];
        assert!(visit.contains("3 items · 2 succeeded · 1 failed · 0 cancelled"));
        assert_eq!(visit.matches("<tr data-item=").count(), 3);
        assert!(visit.contains(r#"<tr data-item="1" data-status="failed">"#) && visit.contains("bad item"));
        assert!(html.contains(r#"2/3 items"#));
    }

    #[test]
    fn run_page_live_buttons() {
        let mut report = report();
        report.status = RunStatus::Running;
        let html = run_page(&report, "", true, "c5rf");
        assert!(html.contains(r#"data-live="true""#));
        assert!(html.contains(r#"<div id="graph"><p class="muted">No graph"#));
        assert!(html.contains(r#"<button id="cancel" type="button">Cancel</button>"#));
        assert!(html.contains(r#"<button id="retry" type="button" disabled>Retry</button>"#));
        report.status = RunStatus::Cancelled;
        let html = run_page(&report, "", false, "c5rf");
        assert!(html.contains(r#"<button id="retry" type="button">Retry</button>"#));
        report.status = RunStatus::Succeeded;
        let html = run_page(&report, "", false, "c5rf");
        assert!(html.contains(r#"<button id="retry" type="button" disabled>Retry</button>"#));
    }

    #[test]
    fn a_waiting_run_says_what_for_and_has_a_signal_form() {
        let mut waiting = NodeReport::new(NodeStatus::Waiting);
        waiting.waiting_for = Some(json!({ "signal": "appro<val", "timeout_at": "2999-01-01T00:00:00.000Z" }));
        let mut timer = NodeReport::new(NodeStatus::Waiting);
        timer.waiting_for = Some(json!({ "until": "2999-01-01T00:00:00.000Z" }));
        let mut nodes = NodeReports::default();
        nodes.push("approve", waiting);
        nodes.push("nap", timer);
        let report = Report::new("w", "r1", "parallel", RunStatus::Waiting, 5.0, nodes);
        let html = run_page(&report, "", false, "c5rf");
        assert!(html.contains(r#"data-waiting="true""#));
        assert!(
            html.contains(r#"<button id="cancel" type="button">Cancel</button>"#),
            "a waiting run can be cancelled"
        );
        assert!(html.contains(r#"<form class="signal" method="post" action="/runs/r1/signals/appro%3Cval" data-signal="appro&lt;val">"#), "{html}");
        assert!(html.contains(r#"<input type="hidden" name="csrf" value="c5rf">"#));
        assert!(html.contains("waits for signal <code>appro&lt;val</code>; gives up at"));
        assert!(html.contains(r#"<strong>nap</strong> waits until <time datetime="2999-01-01T00:00:00.000Z">"#));
        assert!(html.contains(" d "), "the time left: {html}");
    }

    #[test]
    fn run_page_is_bounded() {
        let mut nodes = NodeReports::default();
        let mut big = NodeReport::new(NodeStatus::Succeeded);
        big.output = json!("x".repeat(100_000));
        big.item_runs = Some(
            (0..2000)
                .map(|i| ItemRun {
                    index: i,
                    status: NodeStatus::Succeeded,
                    attempts: 1,
                    started_ms: Some(0.0),
                    finished_ms: Some(1.0),
                    error: None,
                    child_run_id: None,
                })
                .collect(),
        );
        nodes.push("big", big);
        let report = Report::new("w", "r", "parallel", RunStatus::Succeeded, 5.0, nodes);
        let html = run_page(&report, "", false, "c5rf");
        assert!(html.len() < 200_000, "{}", html.len());
        assert!(html.contains("Output cut at 20 KB of 98 KB"));
        assert_eq!(html.matches("<tr data-item=").count(), MAX_ITEMS);
        assert!(html.contains("Showing the first 500 of 2000 items"));
        assert!(html.contains("2000 items · 2000 succeeded"));
    }

    #[test]
    fn workflows_page_forms_and_problems() {
        let items = vec![
            json!({"name": "orders", "file": "orders.yaml", "nodes": 4, "strategy": "parallel", "valid": true, "problems": []}),
            json!({"name": "broken", "file": "broken.yaml", "nodes": 0, "strategy": "parallel", "valid": false,
                   "problems": ["nodes[0].kind: unknown kind `htp` <did you mean `http`?>", "edges[1].to: no node `x`"]}),
        ];
        let html = workflows_page(&items, "c5rf");
        assert_document(&html);
        assert!(html.contains(
            r#"method="post" action="/workflows/orders/runs"><input type="hidden" name="csrf" value="c5rf">"#
        ));
        assert!(html.contains(r#"<body data-page="workflows">"#));
        assert!(html.contains(r#"id="workflows""#));
        assert!(html.contains(r#"data-workflow="orders" data-valid="true""#));
        assert!(html.contains(r#"data-workflow="broken" data-valid="false""#));
        assert!(html.contains(r#"<form class="start" data-workflow="orders""#));
        assert!(!html.contains(r#"<form class="start" data-workflow="broken""#));
        assert!(html.contains(r#"<textarea id="input-0" name="input""#) && html.contains("></textarea>"));
        assert!(html.contains(r#"<button type="submit">Start run</button>"#));
        assert_eq!(html.matches(r#"<li class="problem">"#).count(), 2);
        assert!(html.contains("&lt;did you mean `http`?&gt;"));
        assert!(html.contains("4 nodes · strategy parallel"));
        assert!(html.contains(r#"href="/workflows" aria-current="page""#));
        assert!(workflows_page(&[], "c5rf").contains("No workflow files"));
    }

    #[test]
    fn login_and_not_found() {
        let html = login_page(Some("wrong <token>"));
        assert_document(&html);
        assert!(html.contains(r#"<form class="card login" method="post" action="/login">"#));
        assert!(html.contains(r#"type="password" name="token""#));
        assert!(html.contains(r#"<p class="error" role="alert">wrong &lt;token&gt;</p>"#));
        assert!(!login_page(None).contains("role=\"alert\""));
        assert!(!html.contains(">Runs</a>"));
        let html = not_found_page("no run `<r>`");
        assert_document(&html);
        assert!(html.contains("no run `&lt;r&gt;`"));
        assert!(html.contains(r#"data-page="not-found""#));
    }

    #[test]
    fn assets_are_there() {
        assert!(APP_JS.contains("EventSource"));
        assert!(APP_JS.contains("data-page") || APP_JS.contains("dataset.page"));
        assert!(STYLE_CSS.contains("max-width: 100%"));
    }
}
