//! The runs page: the list of runs, newest first, with its filter.

use std::fmt::Write as _;

use flow_view::fmt_ms;
use serde_json::Value;

use super::*;

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
pub fn runs_page(
    runs: &[Value],
    workflows: &[String],
    workflow: Option<&str>,
    status: Option<&str>,
    top_level: bool,
) -> String {
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
    let _ = write!(
        main,
        r#"</select></label><label><input type="checkbox" name="top_level" value="true"{}> Hide child runs</label><button type="submit" class="no-js">Filter</button></form></div>"#,
        if top_level { " checked" } else { "" }
    );
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
