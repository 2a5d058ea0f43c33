//! `flow explain`: a workflow's plan without running it. The graph maths lives in
//! `flow_core::Plan`; this module knows what the built-in node kinds take.

use flow_engine::core::{AttemptTime, Estimate, Limit, Node, NodeSpec, Plan, Workflow};
use flow_engine::strategy::StrategyKind;
use flow_engine::{Engine, StrategySpec};
use flow_runtime::History;

use crate::cli::{EXIT_OK, EXIT_USAGE, ExplainArgs, StrategyArgs, load};
use crate::graph::strategy_line;

/// A duration for a plan: whole milliseconds without decimals.
fn fmt_ms(ms: f64) -> String {
    if ms >= 10_000.0 {
        let seconds = format!("{:.3}", ms / 1000.0);
        format!("{} s", seconds.trim_end_matches('0').trim_end_matches('.'))
    } else if ms.fract() == 0.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// Lines of a list shown at most, before "(N more)".
const MAX_LINES: usize = 50;
/// Node ids per level shown at most.
const MAX_IDS: usize = 12;

pub async fn command(args: &ExplainArgs) -> u8 {
    let flags = &args.strategy;
    if flags.max_concurrency == Some(0) {
        eprintln!("error: --max-concurrency: must be at least 1");
        return EXIT_USAGE;
    }
    if let Some(r) = flags.per_second
        && !(r.is_finite() && r > 0.0)
    {
        eprintln!("error: --per-second: must be a number above 0, not {r}");
        return EXIT_USAGE;
    }
    if flags.burst == Some(0) {
        eprintln!("error: --burst: must be at least 1");
        return EXIT_USAGE;
    }
    let engine = Engine::builder()
        .limits(args.limits.limits())
        .catalog(args.catalog.catalog(&args.file))
        .build();
    if let Err(message) = flags.check_kind(&engine) {
        eprintln!("error: {message}");
        return EXIT_USAGE;
    }
    if args.last == 0 {
        eprintln!("error: --last: must be at least 1");
        return EXIT_USAGE;
    }
    let workflow = match load(&engine, &args.file) {
        Ok(wf) => wf,
        Err(code) => return code,
    };
    let history = match &args.journal {
        None => None,
        Some(target) => match history(target, workflow.name(), args.last).await {
            Ok(history) => Some(history),
            Err(code) => return code,
        },
    };
    print!("{}", render(&engine, &workflow, flags, history.as_ref()));
    EXIT_OK
}

/// The durations of the workflow's past runs in the journal `target`.
async fn history(target: &str, workflow: &str, last: usize) -> Result<History, u8> {
    let args = crate::cli::JournalArgs {
        journal: Some(target.to_owned()),
        journal_sync: "normal".to_owned(),
    };
    let runs = crate::runs::runs(&args).await?;
    runs.history(workflow, last).await.map_err(|e| {
        eprintln!("error: --journal: {e}");
        crate::cli::EXIT_FAILED
    })
}

/// What one attempt of a node takes, from its config as written: the kind's own
/// estimate.
pub fn attempt_time(node: &Node, spec: &NodeSpec) -> AttemptTime {
    if node.for_each().is_some() {
        // How many items, and so how long, only the run knows.
        return AttemptTime::Unknown;
    }
    node.kind().estimate(&spec.config)
}

/// The plan: each node's duration measured in `history` where it ran there,
/// else as its kind estimates it from the file.
pub fn plan(workflow: &Workflow, history: Option<&History>) -> Plan {
    let specs = &workflow.spec().nodes;
    Plan::from_estimates(workflow, |i, node| {
        if let Some(m) = history.and_then(|h| h.node(node.id())) {
            return Estimate::measured(m.p50_ms, m.p95_ms);
        }
        let attempt = match specs.get(i) {
            Some(spec) => attempt_time(node, spec),
            None => AttemptTime::Unknown,
        };
        Estimate::of(node, attempt)
    })
}

fn describe(estimate: &Estimate, attempt: AttemptTime, node: &Node) -> String {
    let attempts = node.retry().max_attempts;
    let mut text = if !estimate.known {
        let timeout = node.timeout().map_or(0, |t| t.as_millis());
        match estimate.max_ms {
            Some(max) if attempts > 1 => format!(
                "unknown; at most {} (timeout_ms {timeout} × {attempts} attempts, and the waits)",
                fmt_ms(max)
            ),
            Some(max) => format!("unknown; at most {} (timeout_ms)", fmt_ms(max)),
            None => "unknown".to_owned(),
        }
    } else if estimate.is_exact() && estimate.min_ms == 0.0 {
        "~0 ms".to_owned()
    } else {
        match estimate.max_ms {
            Some(max) if max > estimate.min_ms => format!("{} to {}", fmt_ms(estimate.min_ms), fmt_ms(max)),
            _ => fmt_ms(estimate.min_ms),
        }
    };
    let timeout = node.timeout().map(|t| t.as_secs_f64() * 1000.0);
    let outcome = match attempt {
        AttemptTime::Fails(_) => Some("fails"),
        AttemptTime::Succeeds(ms) if timeout.is_some_and(|t| ms > t) => Some("times out"),
        _ => None,
    };
    if let Some(outcome) = outcome {
        text.push_str(&format!(", {outcome}"));
        if attempts > 1 {
            text.push_str(&format!(" ({attempts} attempts and the waits between them)"));
        }
    }
    text
}

fn limit_words(limit: Limit) -> &'static str {
    match limit {
        Limit::Work => "the sum of durations",
        Limit::CriticalPath => "the critical path",
        Limit::Concurrency => "total work / max_concurrency",
        Limit::Rate => "(nodes - burst) / per_second",
        _ => "",
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// The explanation, as printed.
pub fn render(engine: &Engine, workflow: &Workflow, flags: &StrategyArgs, history: Option<&History>) -> String {
    let plan = plan(workflow, history);
    let nodes = workflow.nodes();
    let id = |i: usize| nodes[i].id();
    let mut out = String::new();
    out.push_str(&format!(
        "workflow `{}`: {}, {}, strategy {}\n",
        workflow.name(),
        plural(nodes.len(), "node"),
        plural(workflow.edges().len(), "edge"),
        strategy_line(workflow.strategy())
    ));

    out.push_str("\nlevels (the nodes of one level can run side by side):\n");
    let levels = plan.levels();
    for (l, level) in levels.iter().enumerate().take(MAX_LINES) {
        let mut ids: Vec<&str> = level.iter().take(MAX_IDS).map(|&i| id(i)).collect();
        let more = level.len().saturating_sub(MAX_IDS);
        let more = if more > 0 {
            format!(" +{more} more")
        } else {
            String::new()
        };
        if ids.is_empty() {
            ids.push("-");
        }
        let count = format!("({})", plural(level.len(), "node"));
        out.push_str(&format!("  {l:>3}  {count:<11}  {}{more}\n", ids.join(", ")));
    }
    if levels.len() > MAX_LINES {
        out.push_str(&format!("  ({} more levels)\n", levels.len() - MAX_LINES));
    }
    if let Some(w) = plan.widest_level() {
        out.push_str(&format!(
            "widest level: {w}, with {} side by side\n",
            plural(levels[w].len(), "node")
        ));
    }

    let measured = |node: &Node| history.and_then(|h| h.node(node.id()));
    match history {
        None => out.push_str("\ndurations, as far as the file tells:\n"),
        Some(h) if h.runs() == 0 => out.push_str(&format!(
            "\ndurations, as far as the file tells (the journal holds no finished run of `{}`):\n",
            workflow.name()
        )),
        Some(h) => out.push_str(&format!(
            "\ndurations, measured in {} of `{}` in the journal (p50, p95), else as far as the file tells:\n",
            plural(h.runs(), "finished run"),
            workflow.name()
        )),
    }
    let width = nodes.iter().map(|n| n.id().len()).max().unwrap_or(4).clamp(4, 32);
    let kind_width = nodes
        .iter()
        .map(|n| n.kind_name().len())
        .max()
        .unwrap_or(4)
        .clamp(4, 16);
    let specs = &workflow.spec().nodes;
    for ((node, estimate), spec) in nodes.iter().zip(plan.estimates()).zip(specs).take(MAX_LINES) {
        out.push_str(&format!(
            "  {:<width$}  {:<kind_width$}  {}\n",
            node.id(),
            node.kind_name(),
            match (measured(node), node.for_each()) {
                (Some(m), _) => format!(
                    "p50 {}, p95 {} (ran in {})",
                    fmt_ms(m.p50_ms),
                    fmt_ms(m.p95_ms),
                    plural(m.samples, "run")
                ),
                (None, Some(for_each)) => format!(
                    "dynamic: {}, over a list known only when it runs",
                    crate::graph::for_each_line(for_each)
                ),
                (None, None) => describe(estimate, attempt_time(node, spec), node),
            }
        ));
    }
    if nodes.len() > MAX_LINES {
        out.push_str(&format!("  ({} more nodes)\n", nodes.len() - MAX_LINES));
    }

    let path: Vec<&str> = plan.critical_path().iter().map(|&i| id(i)).collect();
    let shown_path = if path.len() > MAX_IDS * 2 {
        format!(
            "{} -> ... ({} nodes) ... -> {}",
            path[..MAX_IDS].join(" -> "),
            path.len() - 2 * MAX_IDS,
            path[path.len() - MAX_IDS..].join(" -> ")
        )
    } else {
        path.join(" -> ")
    };
    out.push_str(&format!(
        "\ncritical path: {shown_path} ({})\n",
        fmt_ms(plan.critical_ms())
    ));
    out.push_str(&format!("total work: {}\n", fmt_ms(plan.work_ms())));

    out.push_str("\nbounds of the run's time, if every node runs:\n");
    if history.is_some_and(|h| nodes.iter().any(|n| h.node(n.id()).is_some())) {
        out.push_str("(a measured node counts its p50 in \"at least\" and its p95 in \"at most\")\n");
    }
    let file = workflow.strategy();
    let run_kind = flags
        .strategy
        .as_deref()
        .or(file.map(|s| s.kind.as_str()))
        .unwrap_or("parallel");
    let mut rows: Vec<[String; 4]> = vec![[
        "strategy".to_owned(),
        "at least".to_owned(),
        "at most".to_owned(),
        "limited by".to_owned(),
    ]];
    // The built-in kinds, then the run's own when it is another (an embedder's).
    let mut kinds: Vec<&str> = StrategyKind::ALL.iter().map(|k| k.as_str()).collect();
    if !kinds.contains(&run_kind) {
        kinds.push(run_kind);
    }
    for kind in kinds {
        let spec = strategy_for(kind, file, flags);
        let mut name = strategy_line(Some(&spec));
        if kind == run_kind {
            name.push_str(if flags.strategy.is_some() {
                " (the run's)"
            } else {
                " (the file's)"
            });
        }
        let strategy = match engine.build_strategy(&spec) {
            Ok(strategy) => strategy,
            Err(e) => {
                let why = if kind == StrategyKind::RateLimited.as_str() && !spec.options.contains_key("per_second") {
                    "needs a rate: give --per-second".to_owned()
                } else {
                    e.to_string().replace('\n', "; ")
                };
                rows.push([name, "-".to_owned(), "-".to_owned(), why]);
                continue;
            }
        };
        let pace = flow_engine::pace(&*strategy);
        let bounds = plan.bounds(pace);
        let upper = match bounds.upper_ms {
            Some(ms) => fmt_ms(ms),
            None if pace.per_second.is_some() => "not computed".to_owned(),
            None => "unknown".to_owned(),
        };
        rows.push([
            name,
            fmt_ms(bounds.lower_ms),
            upper,
            limit_words(bounds.limit).to_owned(),
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let line = format!(
            "  {:<w0$}  {:>w1$}  {:>w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }

    let unknown: Vec<usize> = plan.unknown().collect();
    let list = |nodes_: &[usize]| {
        let names: Vec<String> = nodes_
            .iter()
            .take(MAX_IDS)
            .map(|&i| format!("`{}` ({})", id(i), nodes[i].kind_name()))
            .collect();
        let more = nodes_.len().saturating_sub(MAX_IDS);
        format!(
            "{}{}",
            names.join(", "),
            if more > 0 {
                format!(" +{more} more")
            } else {
                String::new()
            }
        )
    };
    if !unknown.is_empty() {
        out.push_str(&format!(
            "\nunknown durations, counted as 0 ms in \"at least\": {}\n",
            list(&unknown)
        ));
        let unbounded: Vec<usize> = unknown
            .iter()
            .copied()
            .filter(|&i| plan.estimates()[i].max_ms.is_none())
            .collect();
        if !unbounded.is_empty() {
            out.push_str(&format!(
                "no \"at most\": nothing bounds {} (give each a timeout_ms)\n",
                list(&unbounded)
            ));
        }
    }
    let conditional = workflow.edges().iter().any(|e| e.when.is_some());
    let fails = nodes
        .iter()
        .zip(specs)
        .any(|(node, spec)| measured(node).is_none() && matches!(attempt_time(node, spec), AttemptTime::Fails(_)));
    if conditional || fails || !unknown.is_empty() {
        out.push_str(
            "note: a `when:` that is false, or a failure, skips nodes: such a run can end sooner than \"at least\".\n",
        );
    }
    out
}

/// The options a row of the bounds table uses: the flags, else the file's section,
/// keeping for a built-in kind only the options that apply to it.
fn strategy_for(kind: &str, file: Option<&StrategySpec>, flags: &StrategyArgs) -> StrategySpec {
    let mut spec = flags.over(kind, file);
    if spec.kind != file.map_or("", |f| f.kind.as_str()) {
        // Another kind than the file's: borrow the file's options that apply.
        if let Some(file) = file {
            for (name, value) in &file.options {
                spec.options.entry(name.clone()).or_insert_with(|| value.clone());
            }
        }
    }
    let applies = |name: &str| match kind {
        "sequential" => false,
        "parallel" | "all-settled" => name == "max_concurrency",
        "rate-limited" => matches!(name, "max_concurrency" | "per_second" | "burst"),
        _ => true,
    };
    if StrategyKind::ALL.iter().any(|k| k.as_str() == kind) {
        spec.options.retain(|name, _| applies(name));
    }
    spec
}
