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

use std::fmt::Write as _;

use flow_core::{ItemCounts, NodeReport, NodeStatus, Report, RunStatus};
use flow_view::{fmt_ms, truncate};
use serde_json::Value;

/// The script of the live parts.
pub const APP_JS: &str = include_str!("../assets/app.js");
/// The style sheet.
pub const STYLE_CSS: &str = include_str!("../assets/style.css");

/// The statuses a run list can be filtered by.
const RUN_STATUSES: [&str; 5] = ["running", "succeeded", "failed", "cancelled", "interrupted"];
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
fn encode(text: &str) -> String {
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

/// One row of the runs table (the script builds the same, see `runRow` in app.js).
fn run_row(run: &Value) -> String {
    let id = text(run, "run_id");
    let status = text(run, "status");
    let started = text(run, "started_at");
    let duration = number(run.get("duration_ms")).map_or_else(|| "—".to_owned(), fmt_ms);
    format!(
        r#"<tr data-run="{id}" data-status="{status}"><td><a href="/runs/{href}"><code>{id}</code></a></td><td>{workflow}</td><td>{badge}</td><td><time datetime="{started}">{short}</time></td><td class="num">{duration}</td><td class="counts">{counts}</td></tr>"#,
        id = escape(id),
        status = escape(status),
        href = encode(id),
        workflow = escape(text(run, "workflow")),
        badge = badge(status),
        started = escape(started),
        short = escape(&short_time(started)),
        duration = escape(&duration),
        counts = counts_html(run.get("nodes")),
    )
}

/// The list of runs, newest first, with its filter; `runs` are the items of
/// `GET /api/v1/runs`, `workflows` the names to filter by.
pub fn runs_page(runs: &[Value], workflows: &[String], workflow: Option<&str>, status: Option<&str>) -> String {
    let workflow = workflow.filter(|w| !w.is_empty());
    let status = status.filter(|s| !s.is_empty());
    let mut main = String::with_capacity(2048 + runs.len() * 400);
    main.push_str(r#"<div class="page-head"><h1>Runs</h1>"#);
    main.push_str(r#"<form id="filter" class="filter" method="get" action="/">"#);
    main.push_str(r#"<label>Workflow <select name="workflow"><option value="">all</option>"#);
    let mut names: Vec<&str> = workflows.iter().map(String::as_str).collect();
    if let Some(w) = workflow
        && !names.contains(&w)
    {
        names.push(w);
    }
    for name in names {
        let _ = write!(
            main,
            r#"<option value="{0}"{1}>{0}</option>"#,
            escape(name),
            if Some(name) == workflow { " selected" } else { "" }
        );
    }
    main.push_str(r#"</select></label><label>Status <select name="status"><option value="">all</option>"#);
    for s in RUN_STATUSES {
        let _ = write!(
            main,
            r#"<option value="{s}"{}>{s}</option>"#,
            if Some(s) == status { " selected" } else { "" }
        );
    }
    if let Some(s) = status
        && !RUN_STATUSES.contains(&s)
    {
        let _ = write!(main, r#"<option value="{0}" selected>{0}</option>"#, escape(s));
    }
    main.push_str(r#"</select></label><button type="submit" class="no-js">Filter</button></form></div>"#);
    main.push_str(
        r#"<div class="card table-wrap"><table id="runs"><thead><tr><th>Run</th><th>Workflow</th><th>Status</th><th>Started</th><th class="num">Duration</th><th>Nodes</th></tr></thead><tbody>"#,
    );
    if runs.is_empty() {
        let empty = if workflow.is_some() || status.is_some() {
            "No runs match these filters."
        } else {
            "No runs yet: start one from the workflows page."
        };
        let _ = write!(main, r#"<tr class="empty"><td colspan="6">{empty}</td></tr>"#);
    }
    for run in runs {
        main.push_str(&run_row(run));
        main.push('\n');
    }
    main.push_str("</tbody></table></div>\n");
    document("Runs", r#"data-page="runs""#, Nav::Runs, &main)
}

/// A node's time from its first start to its last end, in words.
fn node_duration(node: &NodeReport) -> String {
    match (node.started_ms, node.finished_ms) {
        (Some(start), Some(end)) => fmt_ms((end - start).max(0.0)),
        (Some(_), None) => "running".to_owned(),
        _ => "—".to_owned(),
    }
}

/// A `for_each` node's counts: from the report's, else counted from its items.
fn item_counts(node: &NodeReport) -> Option<ItemCounts> {
    if let Some(counts) = node.items {
        return Some(counts);
    }
    let items = node.item_runs.as_ref()?;
    let mut counts = ItemCounts {
        total: items.len(),
        ..ItemCounts::default()
    };
    for item in items {
        match item.status {
            NodeStatus::Succeeded => counts.succeeded += 1,
            NodeStatus::Failed => counts.failed += 1,
            NodeStatus::Cancelled => counts.cancelled += 1,
            _ => {}
        }
    }
    Some(counts)
}

fn node_row(id: &str, node: &NodeReport) -> String {
    let mut attempts = node.attempts.to_string();
    if let Some(c) = item_counts(node) {
        let _ = write!(
            attempts,
            r#" <small class="items">{}/{} items</small>"#,
            c.succeeded, c.total
        );
    }
    let error = node.error.as_deref().unwrap_or("");
    format!(
        r##"<tr data-node="{id}" data-status="{status}"><td class="node"><a href="#node-{id}">{id}</a></td><td class="status">{badge}</td><td class="attempts num">{attempts}</td><td class="duration num">{duration}</td><td class="error" title="{title}">{cell}</td></tr>"##,
        id = escape(id),
        status = node.status.as_str(),
        badge = badge(node.status.as_str()),
        duration = escape(&node_duration(node)),
        title = escape(&truncate(error, 2000)),
        cell = escape(&truncate(error, CELL_ERROR_CHARS)),
    )
}

/// A node's details: error, output, attempts, items. `budget` is what is left
/// of the page's bytes of output.
fn node_details(run_id: &str, id: &str, node: &NodeReport, budget: &mut usize) -> String {
    let mut out = String::new();
    let summary_extra = format!(
        "{} · {}",
        plural(node.attempts as usize, "attempt", "attempts"),
        node_duration(node)
    );
    let _ = write!(
        out,
        r#"<details class="node-detail" id="node-{id}" data-detail="{id}"><summary><span class="name">{id}</span> {badge} <span class="muted">{extra}</span></summary><div class="detail-body">"#,
        id = escape(id),
        badge = badge(node.status.as_str()),
        extra = escape(&summary_extra),
    );
    if let Some(error) = &node.error {
        let _ = write!(out, r#"<h3>Error</h3><pre class="error">{}</pre>"#, escape(error));
    }
    out.push_str("<h3>Output</h3>");
    if node.output.is_null() {
        let none = match node.status {
            NodeStatus::Pending | NodeStatus::Running => "No output yet.",
            _ => "No output.",
        };
        let _ = write!(out, r#"<p class="muted">{none}</p>"#);
    } else if *budget == 0 {
        let _ = write!(
            out,
            r#"<p class="note">Not shown: this page already shows its share of outputs. See <a href="/api/v1/runs/{}">the report (JSON)</a>.</p>"#,
            encode(run_id)
        );
    } else {
        let pretty = serde_json::to_string_pretty(&node.output).unwrap_or_default();
        let shown = cut_bytes(&pretty, MAX_OUTPUT_BYTES.min(*budget));
        *budget -= shown.len();
        let _ = write!(out, r#"<pre class="json">{}</pre>"#, escape(shown));
        if shown.len() < pretty.len() {
            let _ = write!(
                out,
                r#"<p class="note">Output cut at {} of {}: the whole of it is in <a href="/api/v1/runs/{}">the report (JSON)</a>.</p>"#,
                kib(shown.len()),
                kib(pretty.len()),
                encode(run_id)
            );
        }
    }
    let counts = item_counts(node);
    // A `for_each` node's attempts are its items', listed below.
    if !node.attempts_detail.is_empty() || counts.is_none() {
        out.push_str("<h3>Attempts</h3>");
    }
    if node.attempts_detail.is_empty() {
        if counts.is_none() {
            out.push_str(r#"<p class="muted">None.</p>"#);
        }
    } else {
        out.push_str(
            r#"<div class="table-wrap"><table class="attempts"><thead><tr><th class="num">#</th><th class="num">Start</th><th class="num">End</th><th class="num">Took</th><th>Error</th></tr></thead><tbody>"#,
        );
        for (i, attempt) in node.attempts_detail.iter().enumerate() {
            let _ = write!(
                out,
                r#"<tr><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="error">{}</td></tr>"#,
                i + 1,
                fmt_ms(attempt.started_ms),
                fmt_ms(attempt.finished_ms),
                fmt_ms((attempt.finished_ms - attempt.started_ms).max(0.0)),
                escape(attempt.error.as_deref().unwrap_or(""))
            );
        }
        out.push_str("</tbody></table></div>");
    }
    if let Some(wait) = node.limit_wait_ms {
        let _ = write!(
            out,
            r#"<p class="muted">Waited {} for its shared limit.</p>"#,
            fmt_ms(wait)
        );
    }
    if let Some(counts) = counts {
        let _ = write!(
            out,
            r#"<h3>Items</h3><p class="item-counts">{} · {} succeeded · {} failed · {} cancelled</p>"#,
            plural(counts.total, "item", "items"),
            counts.succeeded,
            counts.failed,
            counts.cancelled
        );
        let items = node.item_runs.as_deref().unwrap_or(&[]);
        if !items.is_empty() {
            out.push_str(
                r#"<div class="table-wrap"><table class="items"><thead><tr><th class="num">Index</th><th>Status</th><th class="num">Attempts</th><th class="num">Took</th><th>Error</th></tr></thead><tbody>"#,
            );
            for item in items.iter().take(MAX_ITEMS) {
                let took = match (item.started_ms, item.finished_ms) {
                    (Some(s), Some(e)) => fmt_ms((e - s).max(0.0)),
                    _ => "—".to_owned(),
                };
                let _ = write!(
                    out,
                    r#"<tr data-item="{index}" data-status="{status}"><td class="num">{index}</td><td>{badge}</td><td class="num">{attempts}</td><td class="num">{took}</td><td class="error">{error}</td></tr>"#,
                    index = item.index,
                    status = item.status.as_str(),
                    badge = badge(item.status.as_str()),
                    attempts = item.attempts,
                    error = escape(&truncate(item.error.as_deref().unwrap_or(""), 500)),
                );
            }
            out.push_str("</tbody></table></div>");
            if items.len() > MAX_ITEMS {
                let _ = write!(
                    out,
                    r#"<p class="note">Showing the first {MAX_ITEMS} of {} items: all of them are in <a href="/api/v1/runs/{}">the report (JSON)</a>.</p>"#,
                    items.len(),
                    encode(run_id)
                );
            }
        }
    }
    out.push_str("</div></details>\n");
    out
}

/// A run's page: status, graph, timeline, nodes. `graph_svg` is the graph
/// (`flow_view::graph::svg`), trusted as is; `live` makes the script follow the
/// run's events.
pub fn run_page(report: &Report, graph_svg: &str, live: bool) -> String {
    let id = report.run_id.as_str();
    let status = report.status.as_str();
    let running = report.status == RunStatus::Running;
    let retryable = matches!(report.status, RunStatus::Failed | RunStatus::Cancelled);
    let mut main = String::with_capacity(8192 + graph_svg.len() + report.nodes.len() * 600);
    let _ = write!(
        main,
        r#"<div class="page-head run-head"><div><p class="crumb"><a href="/?workflow={wf_q}">{wf}</a> / run</p><h1>{wf} <span id="run-status" class="badge" data-status="{status}">{status_word}</span></h1><p class="meta"><code id="run-id">{id}</code> · strategy {strategy} · <span id="run-duration">{duration}</span></p></div><div class="actions"><button id="cancel" type="button"{cancel}>Cancel</button><button id="retry" type="button"{retry}>Retry</button></div></div>
<div id="message" role="alert" hidden></div>
"#,
        wf_q = encode(&report.workflow),
        wf = escape(&report.workflow),
        status_word = status.replace('_', " "),
        id = escape(id),
        strategy = escape(&report.strategy),
        duration = escape(&fmt_ms(report.duration_ms)),
        cancel = if running { "" } else { " disabled" },
        retry = if retryable { "" } else { " disabled" },
    );
    let _ = write!(
        main,
        r#"<section class="card"><h2>Graph</h2><div id="graph">{graph}</div></section>
<section class="card"><h2>Timeline</h2><div class="timeline-wrap"><img id="timeline" src="/api/v1/runs/{}/timeline.svg" alt="timeline"></div></section>
"#,
        encode(id),
        graph = if graph_svg.trim().is_empty() {
            r#"<p class="muted">No graph: the run's workflow cannot be read any more.</p>"#
        } else {
            graph_svg
        },
    );
    main.push_str(
        r#"<section class="card"><h2>Nodes</h2><div class="table-wrap"><table id="nodes"><thead><tr><th>Node</th><th>Status</th><th class="num">Attempts</th><th class="num">Duration</th><th>Error</th></tr></thead><tbody>"#,
    );
    for (node_id, node) in report.nodes.iter().take(MAX_NODE_ROWS) {
        main.push_str(&node_row(node_id, node));
        main.push('\n');
    }
    main.push_str("</tbody></table></div>");
    let hidden = report.nodes.len().saturating_sub(MAX_NODE_ROWS);
    if hidden > 0 {
        let _ = write!(
            main,
            r#"<p class="note">{hidden} more nodes not listed: all of them are in <a href="/api/v1/runs/{}">the report (JSON)</a>.</p>"#,
            encode(id)
        );
    }
    main.push_str("</section>\n<section class=\"card\" id=\"node-details\"><h2>Details</h2>\n");
    let mut budget = MAX_PAGE_OUTPUT_BYTES;
    for (node_id, node) in report.nodes.iter().take(MAX_NODE_ROWS) {
        main.push_str(&node_details(id, node_id, node, &mut budget));
    }
    main.push_str("</section>\n");
    let body = format!(r#"data-page="run" data-run="{}" data-live="{live}""#, escape(id));
    document(&format!("{} {}", report.workflow, status), &body, Nav::Runs, &main)
}

/// A workflow's own `input:` as the start form's placeholder: what a run gets
/// when the box is left empty.
fn input_placeholder(input: Option<&Value>) -> String {
    const MOST: usize = 300;
    let text = match input {
        None | Some(Value::Null) => return "{}".to_owned(),
        Some(input) => serde_json::to_string(input).unwrap_or_else(|_| "{}".to_owned()),
    };
    if text.chars().count() <= MOST {
        text
    } else {
        let cut: String = text.chars().take(MOST).collect();
        format!("{cut}…")
    }
}

/// The workflows of the folder (`GET /api/v1/workflows` items): the problems of
/// invalid files, and a form to start a run of each valid one.
pub fn workflows_page(workflows: &[Value]) -> String {
    let mut main = String::with_capacity(1024 + workflows.len() * 800);
    main.push_str(r#"<div class="page-head"><h1>Workflows</h1></div><div id="workflows" class="workflows">"#);
    if workflows.is_empty() {
        main.push_str(r#"<p class="card muted">No workflow files in the folder.</p>"#);
    }
    for (n, wf) in workflows.iter().enumerate() {
        let name = text(wf, "name");
        let valid = wf.get("valid").and_then(Value::as_bool).unwrap_or(false);
        let nodes = number(wf.get("nodes")).map_or(0, |n| n as usize);
        let strategy = match wf.get("strategy") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Object(o)) => o.get("kind").and_then(Value::as_str).unwrap_or("").to_owned(),
            _ => String::new(),
        };
        let _ = write!(
            main,
            r#"<article class="card workflow" data-workflow="{name}" data-valid="{valid}"><header><h2><a href="/?workflow={name_q}">{name}</a></h2><span class="badge" data-valid="{valid}">{state}</span></header><p class="meta"><code>{file}</code>"#,
            name = escape(name),
            name_q = encode(name),
            state = if valid { "valid" } else { "invalid" },
            file = escape(text(wf, "file")),
        );
        if valid {
            let _ = write!(main, " · {}", plural(nodes, "node", "nodes"));
            if !strategy.is_empty() {
                let _ = write!(main, " · strategy {}", escape(&strategy));
            }
        }
        main.push_str("</p>");
        let problems: Vec<&str> = wf
            .get("problems")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !problems.is_empty() {
            main.push_str(r#"<ul class="problems">"#);
            for problem in problems {
                let _ = write!(main, r#"<li class="problem">{}</li>"#, escape(problem));
            }
            main.push_str("</ul>");
        }
        if valid {
            let _ = write!(
                main,
                r#"<form class="start" data-workflow="{name}" method="post" action="/api/v1/workflows/{name_q}/runs"><label for="input-{n}">Input (JSON; left empty, the file's own <code>input:</code>)</label><textarea id="input-{n}" name="input" rows="3" spellcheck="false" autocomplete="off" placeholder="{placeholder}"></textarea><div class="form-row"><button type="submit">Start run</button><span class="form-error" role="alert"></span></div></form>"#,
                name = escape(name),
                name_q = encode(name),
                placeholder = escape(&input_placeholder(wf.get("input"))),
            );
        }
        main.push_str("</article>\n");
    }
    main.push_str("</div>\n");
    document("Workflows", r#"data-page="workflows""#, Nav::Workflows, &main)
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
    use flow_core::{AttemptReport, ItemRun, NodeReports};
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
        let html = runs_page(&runs, &names, Some("orders"), Some("failed"));
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

        let empty = runs_page(&[], &names, None, None);
        assert!(empty.contains("No runs yet"));
        assert!(runs_page(&[], &names, None, Some("failed")).contains("No runs match"));
    }

    #[test]
    fn run_page_shows_everything() {
        let report = report();
        let html = run_page(&report, r#"<svg id="g"><g data-node="fetch"/></svg>"#, false);
        assert_document(&html);
        assert!(html.contains(r#"<body data-page="run" data-run="0190-abc" data-live="false">"#));
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
        let html = run_page(&report, "", true);
        assert!(html.contains(r#"data-live="true""#));
        assert!(html.contains(r#"<div id="graph"><p class="muted">No graph"#));
        assert!(html.contains(r#"<button id="cancel" type="button">Cancel</button>"#));
        assert!(html.contains(r#"<button id="retry" type="button" disabled>Retry</button>"#));
        report.status = RunStatus::Cancelled;
        let html = run_page(&report, "", false);
        assert!(html.contains(r#"<button id="retry" type="button">Retry</button>"#));
        report.status = RunStatus::Succeeded;
        let html = run_page(&report, "", false);
        assert!(html.contains(r#"<button id="retry" type="button" disabled>Retry</button>"#));
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
                })
                .collect(),
        );
        nodes.push("big", big);
        let report = Report::new("w", "r", "parallel", RunStatus::Succeeded, 5.0, nodes);
        let html = run_page(&report, "", false);
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
        let html = workflows_page(&items);
        assert_document(&html);
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
        assert!(workflows_page(&[]).contains("No workflow files"));
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
