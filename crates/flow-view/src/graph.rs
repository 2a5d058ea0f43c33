//! A workflow's graph (the run page of `flow serve`), in a self-contained SVG (no
//! script, no web font, no external style).
//!
//! Levels of the DAG ([`Workflow::levels`]) run left to right, one column each (a
//! level with more than [`MAX_PER_COLUMN`] nodes wraps into several columns); within
//! a level, nodes sit near the average height of their predecessors, which keeps
//! most edges short and straight. Each node is a rounded box with its id and kind,
//! filled by its status; edges end in an arrow and are dashed when they have a
//! `when:` condition (shown as the edge's tooltip).
//!
//! Every node's `<g>` carries `data-node`, `data-status` and the class
//! `node status-<status>`, and every edge `data-from`, `data-to` (and `data-when`),
//! so a page can recolour nodes as a run goes on, and tests can read the picture
//! back. The size is bounded: at most [`MAX_NODES`] nodes and [`MAX_EDGES`] edges,
//! with a note saying what was left out.

use std::fmt::Write as _;

use flow_core::{Edge, Workflow};

use crate::{escape, truncate};

/// Nodes drawn at most (level by level); the note under the graph counts the others.
pub const MAX_NODES: usize = 200;
/// Edges drawn at most (between drawn nodes).
pub const MAX_EDGES: usize = 1000;
/// Nodes stacked in one column at most; a larger level wraps into more columns.
pub const MAX_PER_COLUMN: usize = 16;
/// Points drawn at most for edges that skip levels (past it, they go straight).
const MAX_POINTS: usize = 600;

const BOX_W: f64 = 156.0;
const BOX_H: f64 = 42.0;
const COL_GAP: f64 = 64.0;
const ROW_GAP: f64 = 18.0;
const PAD: f64 = 16.0;
const ID_CHARS: usize = 19;
const KIND_CHARS: usize = 24;

const EDGE: &str = "#5f6368";

/// The fill and text colours of a node in `status` (as the report names it).
/// Anything unknown draws as `pending`.
pub fn colours(status: &str) -> (&'static str, &'static str) {
    match status {
        "succeeded" => ("#2e9e55", "#ffffff"),
        "failed" => ("#d64541", "#ffffff"),
        "upstream_failed" => ("#f0a030", "#202124"),
        "cancelled" => ("#9aa0a6", "#202124"),
        "skipped" => ("#dadce0", "#202124"),
        "running" => ("#1a73e8", "#ffffff"),
        "waiting" => ("#f9ab00", "#202124"),
        _ => ("#f1f3f4", "#202124"),
    }
}

/// A status as a class name: letters, digits, `_` and `-` only.
fn class_word(status: &str) -> String {
    let word: String = status
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(32)
        .collect();
    if word.is_empty() { "pending".to_owned() } else { word }
}

/// Where a vertex (a node, or a point an edge passes through) is drawn.
#[derive(Clone, Copy)]
struct Slot {
    /// The first column of its level.
    first: usize,
    /// How many columns its level takes.
    wraps: usize,
    /// Its column.
    col: usize,
    /// Its row within its level.
    row: usize,
    /// Its level's rows.
    rows: usize,
}

/// The geometry of the placed slots.
struct Grid {
    max_rows: usize,
}

impl Grid {
    fn x(&self, slot: &Slot) -> f64 {
        PAD + slot.col as f64 * (BOX_W + COL_GAP)
    }
    fn top(&self, slot: &Slot) -> f64 {
        let pitch = BOX_H + ROW_GAP;
        PAD + (self.max_rows - slot.rows) as f64 * pitch / 2.0 + slot.row as f64 * pitch
    }
    fn mid(&self, slot: &Slot) -> f64 {
        self.top(slot) + BOX_H / 2.0
    }

    /// The path from the right side of `a` to the left side of `b` (one level
    /// on), ending `inset` before it. A slot with more columns of its level
    /// beside it is left or reached through the lane (the gap between rows)
    /// under or above it, so no edge crosses a box of its own level.
    fn hop(&self, d: &mut String, a: &Slot, b: &Slot, inset: f64) {
        let (ax, ay) = (self.x(a) + BOX_W, self.mid(a));
        let (bx, by) = (self.x(b) - inset, self.mid(b));
        let mut from = (ax, ay);
        if a.col + 1 < a.first + a.wraps {
            let lane = self.top(a) + BOX_H + ROW_GAP / 2.0;
            let _ = write!(
                d,
                " C{:.1},{ay:.1} {:.1},{lane:.1} {:.1},{lane:.1}",
                ax + 10.0,
                ax + 4.0,
                ax + 14.0
            );
            let last = Slot {
                col: a.first + a.wraps - 1,
                ..*a
            };
            from = (self.x(&last) + BOX_W + 6.0, lane);
            let _ = write!(d, " L{:.1},{lane:.1}", from.0);
        }
        let mut to = (bx, by);
        let mut tail = String::new();
        if b.col > b.first {
            let lane = self.top(b) - ROW_GAP / 2.0;
            let first = Slot { col: b.first, ..*b };
            to = (self.x(&first) - 6.0, lane);
            let _ = write!(
                tail,
                " L{:.1},{lane:.1} C{:.1},{lane:.1} {:.1},{by:.1} {bx:.1},{by:.1}",
                bx - 12.0,
                bx - 2.0,
                bx - 8.0
            );
        }
        let bend = ((to.0 - from.0) / 2.0).max(18.0);
        let _ = write!(
            d,
            " C{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}{tail}",
            from.0 + bend,
            from.1,
            to.0 - bend,
            to.1,
            to.0,
            to.1
        );
    }
}

/// The SVG of `workflow`'s graph; `status` gives a node's status by id (`None`:
/// `pending`).
pub fn svg(workflow: &Workflow, status: &dyn Fn(&str) -> Option<String>) -> String {
    let nodes = workflow.nodes();
    let edges = workflow.edges();

    // Which nodes are drawn: level by level, the first MAX_NODES. Vertices
    // 0..nodes.len() are the nodes; more are added for long edges below.
    let mut layers = workflow.levels();
    let mut budget = MAX_NODES;
    for level in &mut layers {
        level.truncate(budget);
        budget -= level.len();
    }
    layers.retain(|level| !level.is_empty());
    let drawn_count: usize = layers.iter().map(Vec::len).sum();
    let hidden = nodes.len().saturating_sub(drawn_count);
    let mut layer_of: Vec<Option<usize>> = vec![None; nodes.len()];
    for (l, level) in layers.iter().enumerate() {
        for &i in level {
            layer_of[i] = Some(l);
        }
    }

    // Edges between drawn nodes, each as a chain of vertices: an edge that
    // skips levels passes through a point of its own in each level between,
    // so it goes round the boxes there, not behind them.
    let drawn_edges: Vec<_> = edges
        .iter()
        .filter(|e| e.from < nodes.len() && e.to < nodes.len())
        .filter(|e| layer_of[e.from].is_some() && layer_of[e.to].is_some())
        .collect();
    let hidden_edges = drawn_edges.len().saturating_sub(MAX_EDGES);
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut chains: Vec<(&Edge, Vec<usize>)> = Vec::with_capacity(drawn_edges.len().min(MAX_EDGES));
    let mut points = 0usize;
    for edge in drawn_edges.iter().take(MAX_EDGES) {
        let (Some(from), Some(to)) = (layer_of[edge.from], layer_of[edge.to]) else {
            continue;
        };
        let mut chain = vec![edge.from];
        if to > from + 1 && points + (to - from - 1) <= MAX_POINTS {
            for layer in &mut layers[from + 1..to] {
                let v = preds.len();
                preds.push(vec![chain[chain.len() - 1]]);
                layer.push(v);
                chain.push(v);
                points += 1;
            }
        }
        preds[edge.to].push(chain[chain.len() - 1]);
        chain.push(edge.to);
        chains.push((*edge, chain));
    }

    // Place each vertex. Within a level, vertices are ordered by the mean
    // height of their predecessors (`rank`, 0 at the top, 1 at the bottom); a
    // level too tall for one column fills several, row by row, so that rows stay
    // aligned and the gaps between them are lanes for the edges.
    let vertices = preds.len();
    let mut place: Vec<Option<Slot>> = vec![None; vertices];
    let mut rank: Vec<f64> = vec![0.0; vertices];
    let mut columns = 0usize;
    let mut max_rows = 1usize;
    for level in &layers {
        let key = |v: usize| {
            let placed: Vec<f64> = preds[v]
                .iter()
                .filter(|&&p| place[p].is_some())
                .map(|&p| rank[p])
                .collect();
            if placed.is_empty() {
                f64::INFINITY
            } else {
                placed.iter().sum::<f64>() / placed.len() as f64
            }
        };
        let mut keyed: Vec<(f64, usize)> = level.iter().map(|&v| (key(v), v)).collect();
        // Stable: ties keep file order.
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
        let n = keyed.len();
        let wraps = n.div_ceil(MAX_PER_COLUMN);
        let rows = n.div_ceil(wraps);
        for (j, &(_, v)) in keyed.iter().enumerate() {
            place[v] = Some(Slot {
                first: columns,
                wraps,
                col: columns + j % wraps,
                row: j / wraps,
                rows,
            });
            rank[v] = ((j / wraps) as f64 + 0.5) / rows as f64;
        }
        columns += wraps;
        max_rows = max_rows.max(rows);
    }
    let grid = Grid { max_rows };

    let mut notes = Vec::new();
    if hidden > 0 {
        notes.push(format!(
            "{hidden} more nodes not drawn (the graph shows the first {MAX_NODES}, level by level)"
        ));
    }
    if hidden_edges > 0 {
        notes.push(format!("{hidden_edges} more edges not drawn"));
    }
    let chart_h = max_rows as f64 * (BOX_H + ROW_GAP) - ROW_GAP;
    let width = (PAD * 2.0 + columns.max(1) as f64 * (BOX_W + COL_GAP) - COL_GAP).max(BOX_W + PAD * 2.0);
    let height = PAD * 2.0 + chart_h + notes.len() as f64 * 18.0;

    let mut out = String::with_capacity(2048 + drawn_count * 600 + chains.len() * 250);
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="flow-graph" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="Helvetica, Arial, sans-serif" font-size="12" role="img" aria-label="{}">"#,
        escape(&format!("graph of workflow {}", workflow.name()))
    );
    let _ = writeln!(out, "<title>{}</title>", escape(workflow.name()));
    let _ = writeln!(
        out,
        r#"<defs><marker id="flow-graph-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{EDGE}"/></marker></defs>"#
    );

    let _ = writeln!(
        out,
        r#"<g class="edges" fill="none" stroke="{EDGE}" stroke-width="1.4">"#
    );
    for (edge, chain) in &chains {
        let slots: Vec<Slot> = chain.iter().filter_map(|&v| place[v]).collect();
        let Some(first) = slots.first() else { continue };
        let mut d = format!("M{:.1},{:.1}", grid.x(first) + BOX_W, grid.mid(first));
        for (k, pair) in slots.windows(2).enumerate() {
            let last = k + 2 == slots.len();
            grid.hop(&mut d, &pair[0], &pair[1], if last { 1.0 } else { 0.0 });
            if !last {
                // Through a point of its own: straight across the column.
                let _ = write!(d, " L{:.1},{:.1}", grid.x(&pair[1]) + BOX_W, grid.mid(&pair[1]));
            }
        }
        let (from, to) = (nodes[edge.from].id(), nodes[edge.to].id());
        let mut attrs = format!(r#"data-from="{}" data-to="{}""#, escape(from), escape(to));
        let mut tip = format!("{from} → {to}");
        if let Some(when) = &edge.when {
            let _ = write!(
                attrs,
                r#" data-when="{}" stroke-dasharray="5 4""#,
                escape(when.source())
            );
            let _ = write!(tip, " when {}", when.source());
        }
        let _ = writeln!(
            out,
            r#"<path class="edge" {attrs} d="{d}" marker-end="url(#flow-graph-arrow)"><title>{}</title></path>"#,
            escape(&truncate(&tip, 300))
        );
    }
    let _ = writeln!(out, "</g>");

    let _ = writeln!(out, r#"<g class="nodes">"#);
    for level in &layers {
        for &i in level.iter().filter(|&&v| v < nodes.len()) {
            let Some(slot) = place[i] else { continue };
            let (x, y) = (grid.x(&slot), grid.top(&slot));
            let node = &nodes[i];
            let status = class_word(&status(node.id()).unwrap_or_default());
            let (fill, ink) = colours(&status);
            let mut kind = node.kind_name().to_owned();
            if node.for_each().is_some() {
                kind.push_str(" · for_each");
            }
            let _ = writeln!(
                out,
                r##"<g class="node status-{status}" data-node="{id}" data-status="{status}" transform="translate({x:.1},{y:.1})"><title>{tip}</title><rect class="box" width="{BOX_W}" height="{BOX_H}" rx="7" fill="{fill}" stroke="#000000" stroke-opacity="0.22"/><text class="id" x="10" y="18" font-weight="bold" fill="{ink}">{label}</text><text class="kind" x="10" y="33" font-size="10.5" fill="{ink}" fill-opacity="0.85">{kind}</text></g>"##,
                id = escape(node.id()),
                tip = escape(&format!("{} ({}): {status}", node.id(), kind)),
                label = escape(&truncate(node.id(), ID_CHARS)),
                kind = escape(&truncate(&kind, KIND_CHARS)),
            );
        }
    }
    let _ = writeln!(out, "</g>");

    for (k, note) in notes.iter().enumerate() {
        let _ = writeln!(
            out,
            r##"<text class="note" x="{PAD}" y="{:.1}" font-size="11" fill="#5f6368">{}</text>"##,
            PAD + chart_h + 16.0 + k as f64 * 18.0,
            escape(note)
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use flow_core::{Format, Limits, NodeCall, NodeError, Registry, StrategyCheck};

    // flow-view does not depend on serde_json; name its `Value` through flow-core:
    // a strategy check takes a `&Map<String, Value>`, whose items are `(String, Value)`.
    trait ArgOf {
        type Arg;
    }
    impl<A> ArgOf for std::sync::Arc<dyn Fn(&A) -> Vec<flow_core::ConfigProblem> + Send + Sync> {
        type Arg = A;
    }
    trait Second {
        type B;
    }
    impl<A, B> Second for (A, B) {
        type B = B;
    }
    type Value = <<<StrategyCheck as ArgOf>::Arg as IntoIterator>::Item as Second>::B;

    struct Noop;

    #[flow_core::async_trait]
    impl flow_core::NodeKind for Noop {
        async fn run(&self, _: NodeCall) -> Result<Value, NodeError> {
            Err(NodeError::permanent("not run in these tests"))
        }
    }

    fn workflow(yaml: &str) -> Workflow {
        let mut kinds = Registry::new();
        kinds.register("noop", Noop);
        Workflow::from_str(yaml, Format::Yaml, &kinds, &Limits::default()).unwrap()
    }

    const DIAMOND: &str = r#"
name: diamond
nodes:
  - { id: a, kind: noop }
  - { id: b, kind: noop }
  - { id: c, kind: noop }
  - { id: d, kind: noop }
edges:
  - { from: a, to: b }
  - { from: a, to: c, when: "input.x > 1" }
  - { from: b, to: d }
  - { from: c, to: d }
"#;

    /// The `<g>` of node `id`.
    fn node_tag<'a>(svg: &'a str, id: &str) -> &'a str {
        let start = svg.find(&format!(r#"data-node="{id}""#)).unwrap();
        let start = svg[..start].rfind("<g ").unwrap();
        let end = start + svg[start..].find("</g>").unwrap();
        &svg[start..end]
    }

    #[test]
    fn nodes_carry_status_and_colour() {
        let wf = workflow(DIAMOND);
        let svg = svg(&wf, &|id| match id {
            "a" => Some("succeeded".to_owned()),
            "b" => Some("failed".to_owned()),
            "c" => Some("running".to_owned()),
            _ => None,
        });
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(!svg.contains("<script"));
        let a = node_tag(&svg, "a");
        assert!(a.contains(r#"class="node status-succeeded""#), "{a}");
        assert!(a.contains(r#"data-status="succeeded""#));
        assert!(a.contains("#2e9e55"));
        assert!(a.contains(">noop</text>"));
        let b = node_tag(&svg, "b");
        assert!(b.contains(r#"data-status="failed""#) && b.contains("#d64541"));
        assert!(node_tag(&svg, "c").contains(r#"data-status="running""#));
        let d = node_tag(&svg, "d");
        assert!(d.contains(r#"class="node status-pending""#) && d.contains(r#"data-status="pending""#));
        assert_eq!(svg.matches("<g class=\"node ").count(), 4);
    }

    #[test]
    fn levels_run_left_to_right() {
        let wf = workflow(DIAMOND);
        let svg = svg(&wf, &|_| None);
        let x = |id: &str| -> f64 {
            let tag = node_tag(&svg, id);
            let at = tag.find("translate(").unwrap() + "translate(".len();
            tag[at..].split(',').next().unwrap().parse().unwrap()
        };
        assert!(x("a") < x("b"));
        assert_eq!(x("b"), x("c"));
        assert!(x("c") < x("d"));
    }

    #[test]
    fn edges_have_arrows_and_conditions_are_dashed() {
        let wf = workflow(DIAMOND);
        let svg = svg(&wf, &|_| None);
        assert_eq!(svg.matches(r#"<path class="edge""#).count(), 4);
        assert_eq!(svg.matches(r#"marker-end="url(#flow-graph-arrow)""#).count(), 4);
        let dashed: Vec<&str> = svg.lines().filter(|l| l.contains("stroke-dasharray")).collect();
        assert_eq!(dashed.len(), 1);
        assert!(dashed[0].contains(r#"data-from="a" data-to="c""#));
        assert!(dashed[0].contains(r#"data-when="input.x &gt; 1""#), "{}", dashed[0]);
    }

    #[test]
    fn text_is_escaped_and_truncated() {
        let wf = workflow(
            r#"
name: "a <b> & 'c'"
nodes:
  - { id: a-really-long-node-identifier-here, kind: noop }
  - { id: b, kind: noop }
edges:
  - { from: a-really-long-node-identifier-here, to: b, when: "input.a < 2 and input.b == \"x\"" }
"#,
        );
        let svg = svg(&wf, &|id| (id == "b").then(|| "<bad status & \"x\">".to_owned()));
        assert!(svg.contains("<title>a &lt;b&gt; &amp; &apos;c&apos;</title>"));
        assert!(svg.contains(r#"data-when="input.a &lt; 2 and input.b == &quot;x&quot;""#));
        assert!(svg.contains(">a-really-long-node…</text>"), "{svg}");
        assert!(svg.contains(r#"data-node="a-really-long-node-identifier-here""#));
        // A status that is not a word is reduced to one.
        assert!(svg.contains(r#"data-status="badstatusx""#));
        assert!(!svg.contains("<bad"));
    }

    #[test]
    fn size_is_bounded() {
        let mut yaml = String::from("name: wide\nnodes:\n  - { id: root, kind: noop }\n");
        for i in 0..300 {
            yaml.push_str(&format!("  - {{ id: n{i}, kind: noop }}\n"));
        }
        yaml.push_str("edges:\n");
        for i in 0..300 {
            yaml.push_str(&format!("  - {{ from: root, to: n{i} }}\n"));
        }
        let wf = workflow(&yaml);
        let svg = svg(&wf, &|_| None);
        assert_eq!(svg.matches("<g class=\"node ").count(), MAX_NODES);
        assert_eq!(svg.matches(r#"<path class="edge""#).count(), MAX_NODES - 1);
        assert!(svg.contains("101 more nodes not drawn"));
        // The wide level wraps into columns of at most MAX_PER_COLUMN.
        // The first `name="..."` of the SVG: the root element's.
        let attr = |name: &str| -> f64 {
            svg.split(&format!("{name}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .and_then(|v| v.parse().ok())
                .unwrap()
        };
        let (width, height) = (attr("width"), attr("height"));
        assert!(height < 1100.0, "{height}");
        assert!(width > height, "{width} x {height}");
    }

    #[test]
    fn long_edges_go_round_the_boxes_between() {
        let wf = workflow(
            r#"
name: skip
nodes:
  - { id: a, kind: noop }
  - { id: b, kind: noop }
  - { id: c, kind: noop }
edges:
  - { from: a, to: b }
  - { from: b, to: c }
  - { from: a, to: c }
"#,
        );
        let svg = svg(&wf, &|_| None);
        let top = |id: &str| -> f64 {
            let tag = node_tag(&svg, id);
            let at = tag.find("translate(").unwrap() + "translate(".len();
            tag[at..].split([',', ')']).nth(1).unwrap().parse().unwrap()
        };
        let long = svg
            .lines()
            .find(|l| l.contains(r#"data-from="a" data-to="c""#))
            .unwrap();
        let d = long.split(r#" d=""#).nth(1).unwrap().split('"').next().unwrap();
        // It crosses b's column on a line of its own, clear of b's box.
        let across: Vec<f64> = d
            .split(' ')
            .filter_map(|p| p.strip_prefix('L'))
            .map(|p| p.split(',').nth(1).unwrap().parse().unwrap())
            .collect();
        assert_eq!(across.len(), 1, "{d}");
        let b = top("b");
        assert!(across[0] < b || across[0] > b + BOX_H, "{d} vs b at {b}");
        // The short edges stay single curves.
        let short = svg
            .lines()
            .find(|l| l.contains(r#"data-from="a" data-to="b""#))
            .unwrap();
        assert!(!short.contains(" L"));
    }

    #[test]
    fn for_each_nodes_say_so() {
        let wf = workflow(
            r#"
name: fan
nodes:
  - { id: list, kind: noop }
  - { id: each, kind: noop, for_each: "{{ nodes.list.output }}", as: x }
edges:
  - { from: list, to: each }
"#,
        );
        let svg = svg(&wf, &|_| None);
        assert!(node_tag(&svg, "each").contains(">noop · for_each</text>"));
    }
}
