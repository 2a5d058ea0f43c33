//! A run's page: status, graph, timeline, nodes and their details.

use std::fmt::Write as _;

use flow_core::{ItemCounts, NodeReport, NodeStatus, Report, RunStatus};
use flow_view::{fmt_ms, truncate};

use super::*;

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

/// How long until `at_ms` (ms since the Unix epoch), in words: `in 2 h 5 min`.
fn time_left(at_ms: i64, now_ms: i64) -> String {
    let left = at_ms - now_ms;
    if left <= 0 {
        return "due now".to_owned();
    }
    let minutes = left / 60_000;
    match (minutes / 1440, (minutes / 60) % 24, minutes % 60) {
        (0, 0, 0) => format!("in {} s", (left / 1000).max(1)),
        (0, 0, m) => format!("in {m} min"),
        (0, h, m) => format!("in {h} h {m} min"),
        (d, h, _) => format!("in {d} d {h} h"),
    }
}

/// What the run's waiting nodes wait for, with the time left and, for a
/// signal, a form that sends it (JSON payload; the page's `csrf` value for a
/// browser without JavaScript).
fn waiting_section(report: &Report, csrf: &str, now_ms: i64) -> String {
    let waiting: Vec<(&str, &NodeReport)> = report
        .nodes
        .iter()
        .filter(|(_, node)| node.status == NodeStatus::Waiting)
        .collect();
    if waiting.is_empty() {
        return String::new();
    }
    let id = report.run_id.as_str();
    let mut out = String::from(r#"<section class="card" id="waiting"><h2>Waiting</h2>"#);
    for (node_id, node) in waiting {
        let what = node.waiting_for.as_ref();
        let instant = |field: &str| what.and_then(|w| w.get(field)).and_then(|v| v.as_str());
        let left = |text: &str| {
            flow_nodes::parse_instant(text).map_or_else(|_| String::new(), |at| format!(" ({})", time_left(at, now_ms)))
        };
        match instant("signal") {
            Some(name) => {
                let gives_up = instant("timeout_at")
                    .map(|t| {
                        format!(
                            "; gives up at <time datetime=\"{t}\">{}</time>{}",
                            escape(t),
                            escape(&left(t)),
                            t = escape(t)
                        )
                    })
                    .unwrap_or_default();
                let _ = write!(
                    out,
                    r#"<div class="waiting" data-waiting="{node}"><p><strong>{node}</strong> waits for signal <code>{name}</code>{gives_up}.</p><form class="signal" method="post" action="/runs/{run_q}/signals/{name_q}" data-signal="{name}"><input type="hidden" name="csrf" value="{csrf}"><label for="payload-{node}">Payload (JSON; empty sends null)</label><textarea id="payload-{node}" name="payload" rows="3" spellcheck="false" autocomplete="off" placeholder="{{&quot;approved&quot;: true}}"></textarea><div class="form-row"><button type="submit">Send signal</button><span class="form-error" role="alert"></span></div></form></div>"#,
                    node = escape(node_id),
                    name = escape(name),
                    run_q = encode(id),
                    name_q = encode(name),
                    csrf = escape(csrf),
                );
            }
            None => {
                let until = instant("until").unwrap_or("");
                let _ = write!(
                    out,
                    r#"<div class="waiting" data-waiting="{node}"><p><strong>{node}</strong> waits until <time datetime="{until}">{until}</time>{left}.</p></div>"#,
                    node = escape(node_id),
                    until = escape(until),
                    left = escape(&left(until)),
                );
            }
        }
    }
    out.push_str("</section>\n");
    out
}

/// A run's page: status, graph, timeline, nodes. `graph_svg` is the graph
/// (`flow_view::graph::svg`), trusted as is; `live` makes the script follow the
/// run's events; `csrf` goes in the page's forms.
/// For a child run: a link to the run that started it.
fn parent_link(report: &Report) -> String {
    let Some(parent) = &report.parent else {
        return String::new();
    };
    let item = parent.item.map(|i| format!(", item {i}")).unwrap_or_default();
    format!(
        r#" · started by <a id="parent-run" href="/runs/{}">run <code>{}</code></a> (node <code>{}</code>{item})"#,
        encode(&parent.run_id),
        escape(parent.run_id.get(..8).unwrap_or(&parent.run_id)),
        escape(&parent.node),
    )
}

/// The child runs the run's `workflow` nodes started, each a link (at most
/// [`MAX_NODE_ROWS`]).
fn children_section(report: &Report) -> String {
    let mut items = String::new();
    let mut shown = 0usize;
    for (node_id, node) in report.nodes.iter() {
        let mut add = |child: &str, label: String| {
            if shown < MAX_NODE_ROWS {
                let _ = write!(
                    items,
                    r#"<li><a class="child-run" href="/runs/{}">{label}</a> <code>{}</code></li>"#,
                    encode(child),
                    escape(child)
                );
            }
            shown += 1;
        };
        if let Some(child) = &node.child_run_id {
            add(child, format!("node <code>{}</code>", escape(node_id)));
        }
        for run in node.item_runs.iter().flatten() {
            if let Some(child) = &run.child_run_id {
                add(
                    child,
                    format!("node <code>{}</code> item {}", escape(node_id), run.index),
                );
            }
        }
    }
    if shown == 0 {
        return String::new();
    }
    let more = shown.saturating_sub(MAX_NODE_ROWS);
    let note = if more > 0 {
        format!(r#"<p class="note">{more} more child runs: see the report (JSON).</p>"#)
    } else {
        String::new()
    };
    format!(r#"<section class="card" id="children"><h2>Child runs</h2><ul>{items}</ul>{note}</section>"#)
}

pub fn run_page(report: &Report, graph_svg: &str, live: bool, csrf: &str) -> String {
    let id = report.run_id.as_str();
    let status = report.status.as_str();
    let waiting = report.status == RunStatus::Waiting;
    let running = report.status == RunStatus::Running || waiting;
    let retryable = matches!(report.status, RunStatus::Failed | RunStatus::Cancelled);
    let mut main = String::with_capacity(8192 + graph_svg.len() + report.nodes.len() * 600);
    let _ = write!(
        main,
        r#"<div class="page-head run-head"><div><p class="crumb"><a href="/?workflow={wf_q}">{wf}</a> / run</p><h1>{wf} <span id="run-status" class="badge" data-status="{status}">{status_word}</span></h1><p class="meta"><code id="run-id">{id}</code> · strategy {strategy} · <span id="run-duration">{duration}</span>{parent}</p></div><div class="actions"><button id="cancel" type="button"{cancel}>Cancel</button><button id="retry" type="button"{retry}>Retry</button></div></div>
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
        parent = parent_link(report),
    );
    main.push_str(&waiting_section(report, csrf, flow_engine::journal::now_ms()));
    main.push_str(&children_section(report));
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
    let body = format!(
        r#"data-page="run" data-run="{}" data-live="{live}" data-waiting="{waiting}""#,
        escape(id)
    );
    document(&format!("{} {}", report.workflow, status), &body, Nav::Runs, &main)
}
