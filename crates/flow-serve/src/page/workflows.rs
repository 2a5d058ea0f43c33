//! The workflows page: each file of the folder, its problems, a form to start a run.

use std::fmt::Write as _;

use serde_json::Value;

use super::*;

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
/// invalid files, and a form to start a run of each valid one. The forms work
/// without JavaScript too: they post `input` and the server's `csrf` value to
/// the page's own route, which answers with the run's page.
pub fn workflows_page(workflows: &[Value], csrf: &str) -> String {
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
                r#"<form class="start" data-workflow="{name}" method="post" action="/workflows/{name_q}/runs"><input type="hidden" name="csrf" value="{csrf}"><label for="input-{n}">Input (JSON; left empty, the file's own <code>input:</code>)</label><textarea id="input-{n}" name="input" rows="3" spellcheck="false" autocomplete="off" placeholder="{placeholder}"></textarea><div class="form-row"><button type="submit">Start run</button><span class="form-error" role="alert"></span></div></form>"#,
                name = escape(name),
                name_q = encode(name),
                placeholder = escape(&input_placeholder(wf.get("input"))),
                csrf = escape(csrf),
            );
        }
        main.push_str("</article>\n");
    }
    main.push_str("</div>\n");
    document("Workflows", r#"data-page="workflows""#, Nav::Workflows, &main)
}
