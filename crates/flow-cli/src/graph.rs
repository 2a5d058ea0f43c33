//! `flow graph`: a workflow as a Mermaid flowchart or a Graphviz DOT digraph, with
//! edge conditions as labels and trigger rules, retries, timeouts and the strategy
//! shown. Every label is escaped for its language, so any text in the file
//! (a `when:` with quotes, a name with `<`) draws as written.

use flow_engine::Engine;
use flow_engine::core::{ForEach, Node, StrategySpec, Trigger, Workflow};

use crate::cli::{GraphArgs, GraphFormat, load, write_output};

pub fn command(args: &GraphArgs) -> u8 {
    let engine = Engine::builder().limits(args.limits.limits()).build();
    let workflow = match load(&engine, &args.file) {
        Ok(wf) => wf,
        Err(code) => return code,
    };
    let text = match args.format {
        GraphFormat::Mermaid => mermaid(&workflow),
        GraphFormat::Dot => dot(&workflow),
    };
    write_output(args.output.as_deref(), &text, "--output")
}

/// The strategy as one line: `parallel`, `all-settled, max_concurrency 4`.
pub fn strategy_line(strategy: Option<&StrategySpec>) -> String {
    let Some(s) = strategy else {
        return "parallel (default)".to_owned();
    };
    let mut out = s.kind.clone();
    for (name, value) in &s.options {
        match value {
            serde_json::Value::String(text) => out.push_str(&format!(", {name} {text}")),
            // `--per-second 5` reads as 5.0: shown as written in a file.
            serde_json::Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0 && f.abs() < 1e15) => {
                out.push_str(&format!(", {name} {}", n.as_f64().unwrap_or_default() as i64));
            }
            other => out.push_str(&format!(", {name} {other}")),
        }
    }
    out
}

/// The lines under a node's id: its kind, then what changes how it runs.
fn details(node: &Node, config: &serde_json::Value) -> Vec<String> {
    let mut lines = vec![node.kind_name().to_owned()];
    // A `workflow` node: which workflow it runs (a child run each time).
    if node.kind().runs_workflows()
        && let Some(name) = config.get("workflow").and_then(|w| w.as_str())
    {
        lines[0] = format!("workflow ▸ {name}");
    }
    let mut extra = Vec::new();
    if node.trigger() != Trigger::AllSuccess {
        extra.push(format!("trigger: {}", node.trigger().as_str()));
    }
    if node.retry().max_attempts > 1 {
        extra.push(format!("retry: {} attempts", node.retry().max_attempts));
    }
    if let Some(t) = node.timeout() {
        extra.push(format!("timeout: {} ms", t.as_millis()));
    }
    if node.continue_on_error() {
        extra.push("continue_on_error".to_owned());
    }
    if let Some(for_each) = node.for_each() {
        lines.push(for_each_line(for_each));
    }
    if !extra.is_empty() {
        lines.push(extra.join(", "));
    }
    lines
}

/// A `for_each` node's mark: `for_each item (max 4 at once, 2 tolerated)`.
pub fn for_each_line(for_each: &ForEach) -> String {
    let mut caps = Vec::new();
    if let Some(n) = for_each.max_concurrency() {
        caps.push(format!("max {n} at once"));
    }
    let tolerated = for_each.tolerance_text();
    if tolerated != "0" {
        caps.push(format!("{tolerated} tolerated"));
    }
    let mut line = format!("for_each {}", for_each.item_name());
    if !caps.is_empty() {
        line.push_str(&format!(" ({})", caps.join(", ")));
    }
    line
}

/// Mermaid label text: quotes, markup and Mermaid's own `#` entities become
/// entity codes (`#quot;`), which Mermaid turns back into the characters.
fn mermaid_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '&' => out.push_str("#amp;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '|' => out.push_str("#124;"),
            '`' => out.push_str("#96;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

pub fn mermaid(workflow: &Workflow) -> String {
    let title = format!("{} · strategy {}", workflow.name(), strategy_line(workflow.strategy()));
    let mut out = String::new();
    // Front matter is YAML, and a JSON string is a valid YAML scalar.
    out.push_str(&format!(
        "---\ntitle: {}\n---\nflowchart TD\n",
        serde_json::to_string(&title).unwrap_or_default()
    ));
    for (i, node) in workflow.nodes().iter().enumerate() {
        let mut lines = vec![node.id().to_owned()];
        lines.extend(details(node, &workflow.spec().nodes[i].config));
        let label: Vec<String> = lines.iter().map(|l| mermaid_text(l)).collect();
        let (open, close) = if node.trigger() == Trigger::AllSuccess {
            ("[", "]")
        } else {
            // Another trigger rule: a hexagon, like a decision taken at the join.
            ("{{", "}}")
        };
        out.push_str(&format!("    n{i}{open}\"{}\"{close}\n", label.join("<br/>")));
    }
    for edge in workflow.edges() {
        match &edge.when {
            None => out.push_str(&format!("    n{} --> n{}\n", edge.from, edge.to)),
            Some(expr) => out.push_str(&format!(
                "    n{} -.->|\"when: {}\"| n{}\n",
                edge.from,
                mermaid_text(expr.source()),
                edge.to
            )),
        }
    }
    out
}

/// A DOT quoted string's contents: `"` and `\` escaped, newlines as `\n`.
fn dot_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

pub fn dot(workflow: &Workflow) -> String {
    let mut out = String::new();
    out.push_str(&format!("digraph \"{}\" {{\n", dot_text(workflow.name())));
    out.push_str(&format!(
        "    graph [label=\"{}\\nstrategy: {}\", labelloc=t, fontname=\"Helvetica\", rankdir=TB];\n",
        dot_text(workflow.name()),
        dot_text(&strategy_line(workflow.strategy()))
    ));
    out.push_str("    node [shape=box, style=rounded, fontname=\"Helvetica\"];\n");
    out.push_str("    edge [fontname=\"Helvetica\", fontsize=10];\n");
    for (i, node) in workflow.nodes().iter().enumerate() {
        let mut lines = vec![node.id().to_owned()];
        lines.extend(details(node, &workflow.spec().nodes[i].config));
        let label: Vec<String> = lines.iter().map(|l| dot_text(l)).collect();
        let shape = if node.trigger() == Trigger::AllSuccess {
            ""
        } else {
            ", shape=hexagon"
        };
        out.push_str(&format!(
            "    \"{}\" [label=\"{}\"{shape}];\n",
            dot_text(node.id()),
            label.join("\\n")
        ));
    }
    let nodes = workflow.nodes();
    for edge in workflow.edges() {
        let (from, to) = (dot_text(nodes[edge.from].id()), dot_text(nodes[edge.to].id()));
        match &edge.when {
            None => out.push_str(&format!("    \"{from}\" -> \"{to}\";\n")),
            Some(expr) => out.push_str(&format!(
                "    \"{from}\" -> \"{to}\" [label=\"when: {}\", style=dashed];\n",
                dot_text(expr.source())
            )),
        }
    }
    out.push_str("}\n");
    out
}
