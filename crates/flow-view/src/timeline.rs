//! A run as a Gantt chart (`flow timeline`, `flow run --timeline`, the run page of
//! `flow serve`), in a
//! self-contained SVG (no script, no web font, no external style).
//!
//! One row per node, ordered by first start; one bar per attempt, from its start to
//! its end, coloured by how it ended; a dashed line for each wait before a retry.
//! Every bar carries `data-node`, `data-attempt`, `data-status`, `data-start-ms` and
//! `data-end-ms`, so tools (and tests) can read the chart back. The size is bounded:
//! at most [`MAX_ROWS`] rows and [`MAX_BARS_PER_ROW`] bars per row, with a note
//! saying what was left out.

use std::fmt::Write as _;

use flow_core::{ItemRun, NodeReport, NodeStatus, Report};

use crate::{escape, fmt_ms, truncate};

/// Rows drawn at most; the note under the chart counts the others.
pub const MAX_ROWS: usize = 400;
/// Attempts drawn per row at most: the first ones and the last one.
pub const MAX_BARS_PER_ROW: usize = 30;
/// The narrowest bar, in pixels: an instant attempt stays visible.
pub const MIN_BAR_WIDTH: f64 = 3.0;

const WIDTH: f64 = 1100.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 86.0;

const GREEN: &str = "#2e9e55";
const RED: &str = "#d64541";
const AMBER: &str = "#f0a030";
const GREY: &str = "#9aa0a6";

/// How an attempt ended, for its colour.
fn attempt_status(node: &NodeReport, index: usize) -> &'static str {
    let last = index + 1 == node.attempts_detail.len();
    if !last {
        return "retried";
    }
    match node.status {
        NodeStatus::Succeeded => "succeeded",
        NodeStatus::Failed => "failed",
        NodeStatus::Cancelled => "cancelled",
        // A node that did not run has no attempts; keep the report's word anyway.
        other => other.as_str(),
    }
}

fn colour(status: &str) -> &'static str {
    match status {
        "succeeded" => GREEN,
        "failed" => RED,
        "retried" => AMBER,
        _ => GREY,
    }
}

/// A clean number in the report's unit, or 0 for anything odd in a hand-made file.
fn finite(ms: f64) -> f64 {
    if ms.is_finite() { ms.max(0.0) } else { 0.0 }
}

/// Ticks every 1, 2 or 5 times a power of ten, about eight across.
fn tick_step(total: f64) -> f64 {
    let raw = total / 8.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude)
}

fn tick_label(value: f64, step: f64) -> String {
    if step >= 1.0 {
        format!("{value:.0}")
    } else {
        let decimals = (-step.log10().floor()) as usize;
        format!("{value:.decimals$}")
    }
}

/// The chart's geometry: where time 0 is and how many pixels a millisecond takes.
struct Scale {
    x0: f64,
    width: f64,
    total_ms: f64,
}

impl Scale {
    fn x(&self, ms: f64) -> f64 {
        self.x0 + finite(ms).min(self.total_ms) / self.total_ms * self.width
    }
}

/// The SVG of a report.
pub fn render(report: &Report) -> String {
    let mut rows: Vec<(usize, &str, &NodeReport)> = report
        .nodes
        .iter()
        .enumerate()
        .map(|(i, (id, node))| (i, id, node))
        .collect();
    // Gantt order: by first start, then file order; nodes that never started last.
    rows.sort_by(|a, b| {
        let start = |n: &NodeReport| {
            n.attempts_detail
                .first()
                .map(|a| a.started_ms)
                .or(n.item_runs.as_ref().and(n.started_ms))
                .map(finite)
        };
        match (start(a.2), start(b.2)) {
            (Some(x), Some(y)) => x.total_cmp(&y).then(a.0.cmp(&b.0)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.0.cmp(&b.0),
        }
    });
    let hidden = rows.len().saturating_sub(MAX_ROWS);
    rows.truncate(MAX_ROWS);

    let total_ms = report
        .nodes
        .iter()
        .flat_map(|(_, n)| {
            let attempts = n.attempts_detail.iter().map(|a| a.finished_ms);
            attempts.chain(n.item_runs.as_ref().and(n.finished_ms)).map(finite)
        })
        .fold(finite(report.duration_ms), f64::max)
        .max(0.001);
    let (row_h, font) = match rows.len() {
        0..=40 => (24.0, 12.0),
        41..=150 => (16.0, 10.0),
        _ => (10.0, 8.0),
    };
    let longest = rows.iter().map(|(_, id, _)| id.chars().count()).max().unwrap_or(4);
    let label_chars = longest.clamp(4, 32);
    let x0 = (label_chars as f64 * font * 0.62 + 24.0).max(90.0);
    let scale = Scale {
        x0,
        width: WIDTH - x0 - RIGHT,
        total_ms,
    };
    let chart_h = rows.len().max(1) as f64 * row_h;
    let note_h = if hidden > 0 { 20.0 } else { 0.0 };
    let height = TOP + chart_h + 44.0 + note_h;

    let mut svg = String::with_capacity(4096 + rows.len() * 400);
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="Helvetica, Arial, sans-serif" font-size="{font}">"#
    );
    let title = format!(
        "{} — strategy {} — {} in {}",
        report.workflow,
        report.strategy,
        report.status.as_str(),
        fmt_ms(report.duration_ms)
    );
    let _ = writeln!(svg, "<title>{}</title>", escape(&title));
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r##"<text x="16" y="26" font-size="16" font-weight="bold" fill="#202124">{}</text>"##,
        escape(&title)
    );
    legend(&mut svg, 16.0, 48.0);

    // Axis: ticks and grid lines over the rows.
    let step = tick_step(total_ms);
    let axis_y = TOP - 8.0;
    let _ = writeln!(
        svg,
        r##"<g class="axis" font-size="10" fill="#5f6368" text-anchor="middle">"##
    );
    let mut tick = 0.0;
    while tick <= total_ms + step * 1e-9 {
        let x = scale.x(tick);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.2}" y1="{:.1}" x2="{x:.2}" y2="{:.1}" stroke="#e0e0e0"/><text x="{x:.2}" y="{axis_y:.1}">{}</text>"##,
            TOP - 4.0,
            TOP + chart_h,
            tick_label(tick, step)
        );
        tick += step;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.2}" y="{:.1}" text-anchor="middle">time since the run started (ms)</text>"#,
        scale.x0 + scale.width / 2.0,
        TOP + chart_h + 18.0
    );
    let _ = writeln!(svg, "</g>");

    let _ = writeln!(
        svg,
        r#"<g class="rows" data-x0="{:.4}" data-width="{:.4}" data-total-ms="{}">"#,
        scale.x0, scale.width, total_ms
    );
    for (row, (_, id, node)) in rows.iter().enumerate() {
        let y = TOP + row as f64 * row_h;
        draw_row(&mut svg, &scale, y, row_h, font, row, id, node, label_chars);
    }
    let _ = writeln!(svg, "</g>");
    if hidden > 0 {
        let _ = writeln!(
            svg,
            r##"<text class="note" x="16" y="{:.1}" fill="#5f6368">{hidden} more nodes not drawn (the chart shows the first {MAX_ROWS} to start; the report has all)</text>"##,
            TOP + chart_h + 38.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn legend(svg: &mut String, x: f64, y: f64) {
    let _ = writeln!(svg, r##"<g class="legend" font-size="11" fill="#3c4043">"##);
    let mut at = x;
    for (label, fill) in [
        ("succeeded", GREEN),
        ("failed", RED),
        ("failed, retried", AMBER),
        ("cancelled", GREY),
    ] {
        let _ = writeln!(
            svg,
            r#"<rect x="{at}" y="{:.0}" width="14" height="10" rx="2" fill="{fill}"/><text x="{:.0}" y="{y:.0}">{label}</text>"#,
            y - 9.0,
            at + 19.0
        );
        at += 36.0 + label.len() as f64 * 5.9;
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{at}" y1="{:.0}" x2="{:.0}" y2="{:.0}" stroke="#5f6368" stroke-dasharray="3 2"/><text x="{:.0}" y="{y:.0}">wait before a retry</text>"##,
        y - 4.0,
        at + 20.0,
        y - 4.0,
        at + 25.0
    );
    let _ = writeln!(svg, "</g>");
}

#[allow(clippy::too_many_arguments)]
fn draw_row(
    svg: &mut String,
    scale: &Scale,
    y: f64,
    row_h: f64,
    font: f64,
    row: usize,
    id: &str,
    node: &NodeReport,
    label_chars: usize,
) {
    let mid = y + row_h / 2.0;
    if row % 2 == 0 {
        let _ = writeln!(
            svg,
            r##"<rect x="0" y="{y:.1}" width="{WIDTH}" height="{row_h}" fill="#f6f7f8"/>"##
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#202124">{}<title>{} ({}, {} attempt{})</title></text>"##,
        scale.x0 - 8.0,
        mid + font * 0.35,
        escape(&truncate(id, label_chars)),
        escape(id),
        node.status.as_str(),
        node.attempts,
        if node.attempts == 1 { "" } else { "s" }
    );
    if let Some(items) = &node.item_runs
        && node.started_ms.is_some()
    {
        draw_items(svg, scale, id, items, mid, (row_h * 0.62).max(4.0));
        return;
    }
    let attempts = &node.attempts_detail;
    if attempts.is_empty() {
        let _ = writeln!(
            svg,
            r##"<text class="not-run" x="{:.1}" y="{:.1}" font-style="italic" fill="#80868b" data-node="{}" data-status="{}">{}</text>"##,
            scale.x0 + 4.0,
            mid + font * 0.35,
            escape(id),
            node.status.as_str(),
            node.status.as_str()
        );
        return;
    }
    // The first attempts and the last one, when there are too many to draw.
    let drawn: Vec<usize> = if attempts.len() <= MAX_BARS_PER_ROW {
        (0..attempts.len()).collect()
    } else {
        (0..MAX_BARS_PER_ROW - 1).chain([attempts.len() - 1]).collect()
    };
    let bar_h = (row_h * 0.62).max(4.0);
    let bar_y = mid - bar_h / 2.0;
    let mut previous_end: Option<f64> = None;
    for &i in &drawn {
        let attempt = &attempts[i];
        let start = finite(attempt.started_ms);
        let end = finite(attempt.finished_ms).max(start);
        let x = scale.x(start);
        let width = scale.x(end) - x;
        if let Some(prev) = previous_end {
            let _ = writeln!(
                svg,
                r##"<line class="wait" x1="{:.2}" y1="{mid:.1}" x2="{x:.2}" y2="{mid:.1}" stroke="#5f6368" stroke-dasharray="3 2"/>"##,
                scale.x(prev)
            );
        }
        previous_end = Some(end);
        let status = attempt_status(node, i);
        let mut tip = format!(
            "{id}, attempt {} of {}: {} → {} ({}), {status}",
            i + 1,
            attempts.len(),
            fmt_ms(start),
            fmt_ms(end),
            fmt_ms(end - start)
        );
        if let Some(error) = &attempt.error {
            let error: String = error.chars().take(300).collect();
            tip.push_str(&format!(": {error}"));
        }
        let _ = writeln!(
            svg,
            r#"<rect class="bar" data-node="{}" data-attempt="{}" data-status="{status}" data-start-ms="{start}" data-end-ms="{end}" x="{x:.4}" y="{bar_y:.1}" width="{:.4}" height="{bar_h:.1}" rx="2" fill="{}"><title>{}</title></rect>"#,
            escape(id),
            i + 1,
            width.max(MIN_BAR_WIDTH),
            colour(status),
            escape(&tip)
        );
        let label = fmt_ms(end - start);
        if row_h >= 16.0 && width >= label.len() as f64 * font * 0.6 + 8.0 {
            let _ = writeln!(
                svg,
                r#"<text x="{:.2}" y="{:.1}" text-anchor="middle" fill="white" font-size="{:.0}" pointer-events="none">{label}</text>"#,
                x + width / 2.0,
                mid + (font - 1.0) * 0.35,
                font - 1.0
            );
        }
    }
    // After the last bar, what went wrong, where there is room for it.
    let mut after = Vec::new();
    if node.status != NodeStatus::Succeeded {
        after.push(node.status.as_str().to_owned());
    }
    if attempts.len() > 1 {
        after.push(format!("{} attempts", attempts.len()));
    }
    if drawn.len() < attempts.len() {
        after.push(format!("{} drawn", drawn.len()));
    }
    let end_x = scale.x(previous_end.unwrap_or(0.0)) + MIN_BAR_WIDTH + 5.0;
    let text = after.join(", ");
    if !text.is_empty() && end_x + text.len() as f64 * font * 0.55 <= WIDTH - 4.0 {
        let fill = if node.status == NodeStatus::Failed {
            RED
        } else {
            "#5f6368"
        };
        let _ = writeln!(
            svg,
            r#"<text x="{end_x:.1}" y="{:.1}" fill="{fill}" font-size="{:.0}">{}</text>"#,
            mid + (font - 1.0) * 0.35,
            font - 1.0,
            escape(&text)
        );
    }
}

/// A `for_each` node's lane: its items as sub-bars, aggregated into at most one
/// column per pixel, so 100,000 items draw as a few hundred shapes. Each column's
/// height is the share of the node's peak of items running in it; a column where
/// an item failed is red.
fn draw_items(svg: &mut String, scale: &Scale, id: &str, items: &[ItemRun], mid: f64, bar_h: f64) {
    let Some(first) = items.iter().filter_map(|r| r.started_ms).map(finite).reduce(f64::min) else {
        return;
    };
    let last = items
        .iter()
        .filter_map(|r| r.finished_ms)
        .map(finite)
        .fold(first, f64::max);
    let (x_first, x_last) = (scale.x(first), scale.x(last).max(scale.x(first) + MIN_BAR_WIDTH));
    let columns = ((x_last - x_first).ceil() as usize).clamp(1, 2000);
    let span = (last - first).max(f64::EPSILON);
    let column_of = |ms: f64| {
        (((ms - first) / span) * columns as f64)
            .floor()
            .clamp(0.0, (columns - 1) as f64) as usize
    };
    // Running items per column, by a difference array: O(items + columns).
    let mut delta = vec![0i64; columns + 1];
    let mut failed = vec![0usize; columns];
    for run in items {
        let (Some(start), Some(end)) = (run.started_ms, run.finished_ms) else {
            continue;
        };
        let (a, b) = (column_of(finite(start)), column_of(finite(end).max(finite(start))));
        delta[a] += 1;
        delta[b + 1] -= 1;
        if run.status == NodeStatus::Failed {
            failed[b] += 1;
        }
    }
    let mut running = Vec::with_capacity(columns);
    let mut now = 0i64;
    for d in &delta[..columns] {
        now += d;
        running.push(now.max(0) as usize);
    }
    let peak = running.iter().copied().max().unwrap_or(0).max(1);
    let width = (x_last - x_first) / columns as f64;
    let _ = writeln!(
        svg,
        r#"<g class="items" data-node="{}" data-items="{}" data-columns="{columns}" data-peak="{peak}">"#,
        escape(id),
        items.len()
    );
    for (c, &n) in running.iter().enumerate() {
        if n == 0 && failed[c] == 0 {
            continue;
        }
        let h = (bar_h * n as f64 / peak as f64).max(1.0);
        let fill = if failed[c] > 0 { RED } else { GREEN };
        let _ = writeln!(
            svg,
            r#"<rect class="item-column" x="{:.3}" y="{:.2}" width="{:.3}" height="{h:.2}" fill="{fill}" data-running="{n}" data-failed="{}"/>"#,
            x_first + c as f64 * width,
            mid + bar_h / 2.0 - h,
            width.max(0.5),
            failed[c]
        );
    }
    let counts = items.iter().fold((0, 0, 0), |(s, f, c), r| match r.status {
        NodeStatus::Succeeded => (s + 1, f, c),
        NodeStatus::Failed => (s, f + 1, c),
        _ => (s, f, c + 1),
    });
    let _ = writeln!(
        svg,
        r#"<title>{}: {} items ({} succeeded, {} failed, {} cancelled), at most {peak} at once</title></g>"#,
        escape(id),
        items.len(),
        counts.0,
        counts.1,
        counts.2
    );
}
