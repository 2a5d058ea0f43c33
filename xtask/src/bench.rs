//! `cargo xtask bench [--quick]`: run the benches, then summarise them in one table.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const BENCHES: [(&str, &str); 9] = [
    ("seed_demo", "the seed demo: 5 http calls at 200 ms under each strategy"),
    ("engine", "engine overhead per node against bare tokio and dagx"),
    ("strategy", "flow-strategy alone against join_all"),
    ("rate", "rate-limited accuracy"),
    ("for_each", "for_each overhead per item against bare tokio"),
    (
        "journal",
        "durable runs: the journal's cost per node (SQLite, PostgreSQL) and a 40-step chain of 10 ms nodes",
    ),
    (
        "serve",
        "flow serve under load: 64 clients submitting a 3-node workflow, then a burst of 1,000 (SQLite, PostgreSQL)",
    ),
    (
        "dist",
        "workers through the PostgreSQL queue: 40-step and 10-step chains on 1 worker, 10,000 tasks over 1, 2 and 4 workers",
    ),
    (
        "waits",
        "runs that wait: 10,000 parked on a signal (memory, signal round trip), 10,000 timers due at once, 100 timers 50 ms apart (SQLite, PostgreSQL)",
    ),
];

/// The serve bench's journals: its `backend` name and the label.
const SERVE_JOURNALS: [(&str, &str); 3] = [
    ("sqlite_full", "SQLite `synchronous=FULL`"),
    ("sqlite_normal", "SQLite `synchronous=NORMAL`"),
    ("postgres", "PostgreSQL"),
];

/// The waits bench's journals: its `backend` name and the label.
const WAITS_JOURNALS: [(&str, &str); 2] = [
    ("sqlite_normal", "SQLite `synchronous=NORMAL`"),
    ("postgres", "PostgreSQL"),
];

/// The journal bench's backends: criterion function name, label, and the
/// 40-step chain's target in ms (none for the plain engine).
const JOURNALS: [(&str, &str, Option<f64>); 4] = [
    ("none", "no journal", None),
    ("sqlite_full", "SQLite `synchronous=FULL`", Some(420.0)),
    ("sqlite_normal", "SQLite `synchronous=NORMAL`", Some(420.0)),
    ("postgres", "PostgreSQL", Some(440.0)),
];

pub fn run(args: &[String]) -> Result<(), String> {
    let quick = match args {
        [] => false,
        [flag] if flag == "--quick" => true,
        _ => return Err("usage: cargo xtask bench [--quick]".to_owned()),
    };
    let root = workspace_root()?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    for (i, (name, what)) in BENCHES.iter().enumerate() {
        eprintln!(
            "\n==> [{}/{}] {name}: {what}{}",
            i + 1,
            BENCHES.len(),
            if quick { " (quick)" } else { "" }
        );
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(&root)
            .args(["bench", "--package", "flow-benches", "--bench", name])
            // Where the summary reads them, even when criterion cannot ask cargo.
            .env("CRITERION_HOME", target.join("criterion"));
        if quick {
            cmd.env("FLOW_BENCH_QUICK", "1");
        }
        let status = cmd.status().map_err(|e| format!("cannot run {cargo}: {e}"))?;
        if !status.success() {
            return Err(format!("the `{name}` bench failed ({status})"));
        }
    }
    let summary = summarise(&target.join("criterion"), &target.join("flow-bench"), quick);
    let out_dir = target.join("flow-bench");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let out = out_dir.join("summary.md");
    std::fs::write(&out, &summary).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    println!("\n{summary}");
    eprintln!("written to {}", out.display());
    Ok(())
}

fn workspace_root() -> Result<PathBuf, String> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").map_err(|_| "run me through `cargo xtask`".to_owned())?;
    Path::new(&manifest)
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| "xtask has no parent folder".to_owned())
}

/// The median time of one iteration of a criterion bench, in ns.
fn median_ns(criterion: &Path, group: &str, function: &str, param: &str) -> Option<f64> {
    let path = criterion
        .join(group)
        .join(function)
        .join(param)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: Value = serde_json::from_str(&text).ok()?;
    json.get("median")?.get("point_estimate")?.as_f64()
}

fn fmt_ns(ns: Option<f64>) -> String {
    match ns {
        Some(ns) if ns >= 1000.0 => format!("{:.2} µs", ns / 1000.0),
        Some(ns) => format!("{ns:.0} ns"),
        None => "-".to_owned(),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".to_owned(),
    }
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("{cores} cores, {cpu}")
}

fn summarise(criterion: &Path, flow_bench: &Path, quick: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# flow benchmark summary{}\n",
        if quick { " (quick run)" } else { "" }
    );
    let _ = writeln!(s, "Machine: {}. Medians of criterion samples.\n", machine());

    let _ = writeln!(s, "## Seed demo: 5 `http` calls answering after 200 ms\n");
    let _ = writeln!(s, "| strategy | wall ms | speedup over sequential | over ideal |");
    let _ = writeln!(s, "|---|---:|---:|---:|");
    let seq = median_ns(criterion, "seed_demo", "sequential", "5");
    for (kind, ideal) in [
        ("sequential", 1000.0),
        ("parallel", 200.0),
        ("all-settled", 200.0),
        ("rate-limited", 700.0),
    ] {
        let t = median_ns(criterion, "seed_demo", kind, "5");
        let ms = t.map(|t| t / 1e6);
        let _ = writeln!(
            s,
            "| {kind} | {} | {} | {} |",
            ms.map_or("-".to_owned(), |m| format!("{m:.1}")),
            ratio(seq, t) + if t.is_some() { "x" } else { "" },
            ms.map_or("-".to_owned(), |m| format!("{:+.1} ms", m - ideal)),
        );
    }
    let _ = writeln!(
        s,
        "\nIdeal: 200 ms when the calls overlap (limit 5.0x), 1000 ms one after another; rate-limited runs at 10/s and its start node takes the first admission (700 ms). The seed: 1110 ms and 306 ms (3.63x).\n"
    );

    let _ = writeln!(s, "## Engine overhead per node (`noop` unless named)\n");
    let _ = writeln!(
        s,
        "| shape | nodes | flow noop | flow delay 0 | bare tokio | dagx | noop / tokio | noop / dagx |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
    let sizes: &[usize] = if quick {
        &[100, 1_000, 10_000]
    } else {
        &[100, 1_000, 10_000, 100_000]
    };
    let per_node =
        |group: &str, f: &str, n: usize| median_ns(criterion, group, f, &n.to_string()).map(|t| t / n as f64);
    for shape in ["fan-out", "chain", "layered"] {
        for &n in sizes {
            let flow = per_node(shape, "flow_noop", n);
            let delay = per_node(shape, "flow_delay0", n);
            let tokio = per_node(shape, "tokio", n);
            let dagx = per_node(shape, "dagx", n);
            let _ = writeln!(
                s,
                "| {shape} | {n} | {} | {} | {} | {} | {} | {} |",
                fmt_ns(flow),
                fmt_ns(delay),
                fmt_ns(tokio),
                fmt_ns(dagx),
                ratio(flow, tokio),
                ratio(flow, dagx)
            );
        }
    }
    if !quick {
        let _ = writeln!(
            s,
            "\nScaling, whole-run time of 100k nodes over 10k nodes (linear = 10x):\n"
        );
        let _ = writeln!(s, "| shape | flow noop | flow delay 0 | bare tokio | dagx |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|");
        for shape in ["fan-out", "chain", "layered"] {
            let scale = |f: &str| {
                ratio(
                    median_ns(criterion, shape, f, "100000"),
                    median_ns(criterion, shape, f, "10000"),
                ) + "x"
            };
            let _ = writeln!(
                s,
                "| {shape} | {} | {} | {} | {} |",
                scale("flow_noop"),
                scale("flow_delay0"),
                scale("tokio"),
                scale("dagx")
            );
        }
    }
    let compile = median_ns(criterion, "compile", "fan-out", "10000").map(|t| t / 10_000.0);
    let _ = writeln!(
        s,
        "\nValidation (once per workflow, not per run): {} per node for a 10k fan-out.\n",
        fmt_ns(compile)
    );

    let _ = writeln!(s, "## `for_each` overhead per item (`transform` items)\n");
    let _ = writeln!(s, "| items | flow | bare tokio | flow / tokio |");
    let _ = writeln!(s, "|---:|---:|---:|---:|");
    for n in [10_000usize, 100_000] {
        let cell = |f: &str| median_ns(criterion, "for_each", f, &n.to_string()).map(|t| t / n as f64);
        let (flow, tokio) = (cell("flow_transform"), cell("tokio"));
        let _ = writeln!(
            s,
            "| {n} | {} | {} | {} |",
            fmt_ns(flow),
            fmt_ns(tokio),
            ratio(flow, tokio)
        );
    }
    let _ = writeln!(
        s,
        "\nScaling, 100k items over 10k items (linear = 10x): {}x\n",
        ratio(
            median_ns(criterion, "for_each", "flow_transform", "100000"),
            median_ns(criterion, "for_each", "flow_transform", "10000")
        )
    );

    let flow_http = median_ns(criterion, "for_each_http", "flow", "10000");
    let tokio_http = median_ns(criterion, "for_each_http", "tokio_reqwest", "10000");
    let per_second = |t: Option<f64>| t.map_or("-".to_owned(), |t| format!("{:.0}/s", 10_000.0 / (t / 1e9)));
    let _ = writeln!(
        s,
        "10,000 `http` POST items, 64 at once, to a local axum server: flow {}, bare tokio + reqwest with a 64-permit semaphore {}; flow's throughput is {}% of it.\n",
        per_second(flow_http),
        per_second(tokio_http),
        flow_http
            .zip(tokio_http)
            .map_or("-".to_owned(), |(f, t)| format!("{:.0}", t / f * 100.0))
    );

    children(&mut s, criterion);
    journal(&mut s, criterion, quick);
    serve(&mut s, flow_bench);
    waits(&mut s, flow_bench);
    dist(&mut s, flow_bench);

    let _ = writeln!(s, "## flow-strategy alone: N ready futures (per future)\n");
    let _ = writeln!(s, "| N | join_all | sequential | parallel | all-settled |");
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|");
    let strategy_sizes: &[usize] = if quick {
        &[1_000, 10_000]
    } else {
        &[1_000, 10_000, 100_000]
    };
    for &n in strategy_sizes {
        let cell = |f: &str| fmt_ns(median_ns(criterion, "strategy", f, &n.to_string()).map(|t| t / n as f64));
        let _ = writeln!(
            s,
            "| {n} | {} | {} | {} | {} |",
            cell("join_all"),
            cell("sequential"),
            cell("parallel"),
            cell("all-settled")
        );
    }

    let _ = writeln!(s, "\n## Rate-limited accuracy\n");
    match std::fs::read_to_string(flow_bench.join("rate.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
    {
        Some(Value::Array(rows)) => {
            let _ = writeln!(
                s,
                "| nodes | configured | burst | measured | error | most starts in 1 s (limit) |"
            );
            let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|");
            for r in rows {
                let f = |k: &str| r.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
                let _ = writeln!(
                    s,
                    "| {} | {}/s | {} | {:.2}/s | {:+.2}% | {} ({}) |",
                    f("nodes"),
                    f("per_second"),
                    f("burst"),
                    f("measured_per_second"),
                    f("error_pct"),
                    f("max_starts_in_1s"),
                    f("limit_in_1s")
                );
            }
        }
        _ => {
            let _ = writeln!(s, "(no rate.json: the rate bench did not run)");
        }
    }
    s
}

/// The for_each bench's child runs: what a child run adds per item over a
/// `transform` item, plain (target 50 µs) and on SQLite (target 1 ms).
fn children(s: &mut String, criterion: &Path) {
    let _ = writeln!(
        s,
        "## Sub-workflows: 1,000 child runs under `for_each` (each child one `transform`)\n"
    );
    let _ = writeln!(
        s,
        "| journal | 1,000 transform items | 1,000 child runs | added per child | target | met |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---|");
    for (backend, label, target_ns) in [("none", "none", 50_000.0), ("sqlite_full", "SQLite FULL", 1_000_000.0)] {
        let items = median_ns(
            criterion,
            "for_each_children",
            &format!("transform_items_{backend}"),
            "1000",
        );
        let children = median_ns(criterion, "for_each_children", &format!("child_runs_{backend}"), "1000");
        let added = items.zip(children).map(|(i, c)| (c - i) / 1000.0);
        let _ = writeln!(
            s,
            "| {label} | {} | {} | {} | ≤ {} | {} |",
            items.map_or("-".to_owned(), |t| format!("{:.2} ms", t / 1e6)),
            children.map_or("-".to_owned(), |t| format!("{:.2} ms", t / 1e6)),
            fmt_ns(added),
            fmt_ns(Some(target_ns)),
            match added {
                Some(a) if a <= target_ns => "yes",
                Some(_) => "**no**",
                None => "-",
            }
        );
    }
    let _ = writeln!(s);
}

/// The journal bench: what a journal adds per node, and the 40-step chain.
fn journal(s: &mut String, criterion: &Path, quick: bool) {
    let n: usize = if quick { 1_000 } else { 10_000 };
    let _ = writeln!(
        s,
        "## Durable runs: the journal's added cost per node (`noop`, {n} nodes)\n"
    );
    let _ = writeln!(
        s,
        "| shape | no journal (run) | SQLite FULL | SQLite NORMAL | PostgreSQL |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|");
    for shape in ["fan-out", "chain"] {
        let group = format!("journal_{shape}");
        let run = |f: &str| median_ns(criterion, &group, f, &n.to_string());
        let plain = run("none");
        let added = |f: &str| {
            let t = run(f);
            match (t, plain) {
                (Some(t), Some(p)) => {
                    let per_node = (t - p) / n as f64;
                    let cost = if per_node >= 1e6 {
                        format!("{:.2} ms", per_node / 1e6)
                    } else {
                        fmt_ns(Some(per_node))
                    };
                    format!("+{cost} ({:.0} ms a run)", t / 1e6)
                }
                _ => "-".to_owned(),
            }
        };
        let _ = writeln!(
            s,
            "| {shape} | {} ({}) | {} | {} | {} |",
            fmt_ns(plain.map(|p| p / n as f64)),
            plain.map_or("-".to_owned(), |p| format!("{:.2} ms", p / 1e6)),
            added("sqlite_full"),
            added("sqlite_normal"),
            added("postgres")
        );
    }
    let _ = writeln!(
        s,
        "\nAdded cost = (journaled run - plain run) / nodes, medians. `noop` and `delay` have no effects: their starts are committed in batches, not awaited (a kind with effects, such as `http`, waits for its start to be durable: one commit per step of a chain).\n"
    );

    let _ = writeln!(s, "## Durable runs: a 40-step chain of 10 ms `delay` nodes\n");
    let _ = writeln!(
        s,
        "| journal | total ms | over the 400 ms of sleep, per step | target | met |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---|");
    let row = |label: &str, t: Option<f64>, target: Option<f64>| {
        let ms = t.map(|t| t / 1e6);
        format!(
            "| {label} | {} | {} | {} | {} |",
            ms.map_or("-".to_owned(), |m| format!("{m:.1}")),
            ms.map_or("-".to_owned(), |m| format!("{:+.2} ms", (m - 400.0) / 40.0)),
            target.map_or("-".to_owned(), |t| format!("≤ {t:.0} ms")),
            match (ms, target) {
                (Some(m), Some(t)) if m <= t => "yes",
                (Some(_), Some(_)) => "**no**",
                _ => "-",
            }
        )
    };
    let _ = writeln!(
        s,
        "{}",
        row(
            "bare tokio: 40 sleeps of 10 ms",
            median_ns(criterion, "journal_40x10ms", "tokio_sleep", "40"),
            None
        )
    );
    for (f, label, target) in JOURNALS {
        let _ = writeln!(
            s,
            "{}",
            row(label, median_ns(criterion, "journal_40x10ms", f, "40"), target)
        );
    }
    let _ = writeln!(
        s,
        "\nThe shape of Windmill's orchestrator benchmark (best engine 1.2 s, others 2-116 s). The targets allow under 1 ms of orchestration per step.\n"
    );
}

/// The serve bench (`serve.json`): runs a second and submit latency under load
/// per journal, the targets, and the burst.
fn serve(s: &mut String, flow_bench: &Path) {
    let Some(json) = std::fs::read_to_string(flow_bench.join("serve.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
    else {
        let _ = writeln!(
            s,
            "## flow serve under load\n\n(no serve.json: the serve bench did not run)\n"
        );
        return;
    };
    let num = |v: &Value, path: &str| v.pointer(path).and_then(Value::as_f64);
    let clients = num(&json, "/clients").unwrap_or(f64::NAN);
    let seconds = num(&json, "/seconds").unwrap_or(f64::NAN);
    let target_rate = num(&json, "/target_runs_per_second").unwrap_or(f64::NAN);
    let target_p99 = num(&json, "/target_p99_ms").unwrap_or(f64::NAN);
    let burst_n = num(&json, "/burst").unwrap_or(f64::NAN);
    let ms = |v: Option<f64>| match v {
        Some(m) if m < 10.0 => format!("{m:.2} ms"),
        Some(m) => format!("{m:.1} ms"),
        None => "-".to_owned(),
    };
    let _ = writeln!(
        s,
        "## flow serve under load: {clients} clients submitting a 3-node workflow for {seconds} s\n"
    );
    let _ = writeln!(
        s,
        "| journal | runs/s | p50 | p99 | max | 1 client p50 | target (≥ {target_rate:.0}/s, p99 ≤ {target_p99:.0} ms) | all finished, none lost, none twice | CPU: server / clients / rest (cores) |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---|---|---|");
    let backends = json
        .get("backends")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let find = |name: &str| {
        backends
            .iter()
            .find(|b| b.get("backend").and_then(Value::as_str) == Some(name))
    };
    for (name, label) in SERVE_JOURNALS {
        let Some(b) = find(name) else {
            let _ = writeln!(s, "| {label} | - | - | - | - | - | - | - | - |");
            continue;
        };
        let rate = num(b, "/load/runs_per_second");
        let p99 = num(b, "/load/p99_ms");
        let met = match b.pointer("/load/target_met").and_then(Value::as_bool) {
            Some(true) => "yes".to_owned(),
            _ => {
                let mut short = Vec::new();
                if let Some(r) = rate.filter(|r| *r < target_rate) {
                    short.push(format!("{:.0}% of the rate", r / target_rate * 100.0));
                }
                if let Some(p) = p99.filter(|p| *p > target_p99) {
                    short.push(format!("p99 {:.1}x", p / target_p99));
                }
                format!("**no** ({})", short.join(", "))
            }
        };
        let checked = check_cell(b.pointer("/load/check"), num(b, "/load/errors"));
        let cpu = match (
            num(b, "/load/cpu/server_cores"),
            num(b, "/load/cpu/clients_cores"),
            num(b, "/load/cpu/rest_cores"),
        ) {
            (Some(a), Some(c), Some(r)) => format!("{a:.2} / {c:.2} / {r:.2}"),
            _ => "-".to_owned(),
        };
        let _ = writeln!(
            s,
            "| {label} | {} | {} | {} | {} | {} | {met} | {checked} | {cpu} |",
            rate.map_or("-".to_owned(), |r| format!("{r:.0}")),
            ms(num(b, "/load/p50_ms")),
            ms(p99),
            ms(num(b, "/load/max_ms")),
            ms(num(b, "/single_client/p50_ms")),
        );
    }
    let _ = writeln!(
        s,
        "\nA submit is answered once the run's start is durable in the journal. The clients, the server and the database share the machine's cores. Hatchet publishes 100-2,000 runs/s on an 8-CPU database.\n"
    );
    let _ = writeln!(s, "Burst: {burst_n} submits fired at once.\n");
    let _ = writeln!(
        s,
        "| journal | 201s | all answered in | p50 | p99 | all finished, none lost, none twice | met |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---|---|");
    for (name, label) in SERVE_JOURNALS {
        let Some(b) = find(name) else {
            let _ = writeln!(s, "| {label} | - | - | - | - | - | - |");
            continue;
        };
        let created = num(b, "/burst/created").unwrap_or(0.0);
        let _ = writeln!(
            s,
            "| {label} | {created:.0} / {burst_n} | {} | {} | {} | {} | {} |",
            ms(num(b, "/burst/wall_ms")),
            ms(num(b, "/burst/p50_ms")),
            ms(num(b, "/burst/p99_ms")),
            check_cell(b.pointer("/burst/check"), Some(burst_n - created)),
            if b.pointer("/burst/ok").and_then(Value::as_bool) == Some(true) {
                "yes"
            } else {
                "**no**"
            }
        );
    }
    let _ = writeln!(s);
}

/// The waits bench (`waits.json`): per journal, the memory of N parked runs,
/// a signal's round trip, N timers due at once and timers not saturated,
/// each against its target.
fn waits(s: &mut String, flow_bench: &Path) {
    let Some(json) = std::fs::read_to_string(flow_bench.join("waits.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
    else {
        let _ = writeln!(s, "## Runs that wait\n\n(no waits.json: the waits bench did not run)\n");
        return;
    };
    let num = |v: &Value, path: &str| v.pointer(path).and_then(Value::as_f64);
    let n = num(&json, "/runs").map_or("N".to_owned(), |n| thousands(n as u64));
    let signalled = num(&json, "/signalled").unwrap_or(f64::NAN);
    let spread = num(&json, "/spread").unwrap_or(f64::NAN);
    let gap = num(&json, "/spread_gap_ms").unwrap_or(f64::NAN);
    let ms = |v: Option<f64>| match v {
        Some(m) if m < 10.0 => format!("{m:.1} ms"),
        Some(m) if m < 1000.0 => format!("{m:.0} ms"),
        Some(m) => format!("{:.2} s", m / 1e3),
        None => "-".to_owned(),
    };
    let _ = writeln!(s, "## Runs that wait: {n} runs parked, {n} timers due at once\n");
    let backends = json
        .get("backends")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (name, label) in WAITS_JOURNALS {
        let _ = writeln!(s, "{label}:\n");
        let _ = writeln!(s, "| what | measured | target | met |");
        let _ = writeln!(s, "|---|---|---|---|");
        let Some(b) = backends
            .iter()
            .find(|b| b.get("backend").and_then(Value::as_str) == Some(name))
        else {
            let _ = writeln!(s, "| (not run) | - | - | - |\n");
            continue;
        };
        // The phase's error, when it failed, in place of its figures.
        let error = |phase: &str| {
            b.pointer(&format!("/{phase}/error"))
                .and_then(Value::as_str)
                .map(|e| format!("**failed**: {e}"))
        };
        let met = |phase: &str| match b.pointer(&format!("/met/{phase}")).and_then(Value::as_bool) {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "-",
        };
        let target = |key: &str, unit: &str| {
            num(b, &format!("/targets/{key}")).map_or("-".to_owned(), |t| format!("≤ {t:.0} {unit}"))
        };

        let parked = error("parked").unwrap_or_else(|| {
            match (
                num(b, "/parked/added_mb"),
                num(b, "/parked/idle_rss_mb"),
                num(b, "/parked/parked_rss_mb"),
            ) {
                (Some(a), Some(i), Some(p)) => format!("+{a:.1} MB ({i:.1} to {p:.1} MB)"),
                _ => "-".to_owned(),
            }
        });
        let _ = writeln!(
            s,
            "| {n} runs parked on a signal: memory added | {parked} | {} | {} |",
            target("parked_added_mb", "MB"),
            met("parked")
        );

        let signal = error("signal").unwrap_or_else(|| {
            format!(
                "p50 {}, p95 {}",
                ms(num(b, "/signal/p50_ms")),
                ms(num(b, "/signal/p95_ms"))
            )
        });
        let _ = writeln!(
            s,
            "| signal round trip ({signalled} runs): POST until the report says `succeeded` | {signal} | p50 {} | {} |",
            target("signal_p50_ms", "ms"),
            met("signal")
        );

        let at_once = error("timers_at_once").unwrap_or_else(|| {
            let mut cell = format!(
                "all finished after {}; woke late by p50 {}, p99 {}",
                num(b, "/timers_at_once/all_finished_s").map_or("-".to_owned(), |t| format!("{t:.1} s")),
                ms(num(b, "/timers_at_once/late_p50_ms")),
                ms(num(b, "/timers_at_once/late_p99_ms"))
            );
            if b.pointer("/timers_at_once/parked_before_instant")
                .and_then(Value::as_bool)
                == Some(false)
            {
                cell.push_str("; **not all parked before the instant**");
            }
            if let (Some(ok), Some(listed), Some(succeeded)) = (
                b.pointer("/timers_at_once/ok").and_then(Value::as_bool),
                num(b, "/timers_at_once/listed"),
                num(b, "/timers_at_once/succeeded"),
            ) && !ok
            {
                let _ = write!(cell, "; **{succeeded:.0} succeeded, {listed:.0} listed**");
            }
            cell
        });
        let _ = writeln!(
            s,
            "| {n} timers due at the same instant | {at_once} | {} | {} |",
            target("all_finished_s", "s"),
            met("timers_at_once")
        );

        let spread_cell = error("timers_spread").unwrap_or_else(|| {
            format!(
                "woke late by p50 {}, p99 {}",
                ms(num(b, "/timers_spread/late_p50_ms")),
                ms(num(b, "/timers_spread/late_p99_ms"))
            )
        });
        let _ = writeln!(
            s,
            "| {spread} timers {gap} ms apart (not saturated) | {spread_cell} | p99 {} | {} |\n",
            target("spread_late_p99_ms", "ms"),
            met("timers_spread")
        );
    }
    let _ = writeln!(
        s,
        "Parked runs are held by no task: the journal keeps them (the memory is the server's resident set, idle and with the runs parked). \"All finished\": none waiting and none in flight, after the instant; lateness is `woke_at` minus the instant, over a sample of the runs.\n"
    );
}

/// 10000 as `10,000`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The dist bench (`dist.json`): overhead per step through the queue, and
/// tasks per second over 1, 2 and 4 workers.
fn dist(s: &mut String, flow_bench: &Path) {
    let Some(json) = std::fs::read_to_string(flow_bench.join("dist.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
    else {
        let _ = writeln!(
            s,
            "## Workers through the PostgreSQL queue\n\n(no dist.json: the dist bench did not run)\n"
        );
        return;
    };
    let list = |key: &str| json.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
    let num = |v: &Value, key: &str| v.get(key).and_then(Value::as_f64);
    let _ = writeln!(s, "## Workers through the PostgreSQL queue (1 worker)\n");
    let _ = writeln!(
        s,
        "| chain | steps | total (median of runs) | overhead per step | target (< 5 ms a step) |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---|");
    for chain in list("chains") {
        let totals: Vec<f64> = chain
            .get("total_ms")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        let mut sorted = totals.clone();
        sorted.sort_by(f64::total_cmp);
        let total = sorted.get(sorted.len() / 2).copied();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            chain.get("case").and_then(Value::as_str).unwrap_or("-"),
            num(&chain, "steps").map_or("-".to_owned(), |n| format!("{n:.0}")),
            total.map_or("-".to_owned(), |t| format!("{t:.0} ms")),
            num(&chain, "median_overhead_per_step_ms").map_or("-".to_owned(), |t| format!("{t:.2} ms")),
            if chain.get("target_met").and_then(Value::as_bool) == Some(true) {
                "yes"
            } else {
                "**no**"
            }
        );
    }
    let _ = writeln!(
        s,
        "\nWindmill's published figures for 40 light tasks on one worker: Hatchet 1.2 s total, Windmill 2.1-4.4 s, Temporal 3.0 s, Prefect 4.9 s, Kestra 6.0 s, Airflow 116 s.\n"
    );
    let _ = writeln!(s, "| workers | tasks | tasks/s (median) | target (≥ 2,000/s with 4) |");
    let _ = writeln!(s, "|---:|---:|---:|---|");
    for fan in list("fan_out") {
        let met = match fan.get("target_met").and_then(Value::as_bool) {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "-",
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {met} |",
            num(&fan, "workers").map_or("-".to_owned(), |n| format!("{n:.0}")),
            num(&fan, "tasks").map_or("-".to_owned(), |n| format!("{n:.0}")),
            num(&fan, "median_tasks_per_second").map_or("-".to_owned(), |n| format!("{n:.0}")),
        );
    }
    let _ = writeln!(s);
}

/// A serve check as a cell: `yes: N runs, all succeeded within T s`, or what failed.
fn check_cell(check: Option<&Value>, errors: Option<f64>) -> String {
    let Some(check) = check else {
        return "-".to_owned();
    };
    let n = |k: &str| check.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    if let Some(e) = check.get("error").and_then(Value::as_str) {
        return format!("**no**: {e}");
    }
    let within = n("finished_within_ms") / 1e3;
    let mut cell = if check.get("ok").and_then(Value::as_bool) == Some(true) {
        format!(
            "yes: {:.0} runs listed, all succeeded within {within:.1} s of the last submit",
            n("listed")
        )
    } else {
        format!(
            "**no**: {:.0} created, {:.0} listed, {:.0} succeeded, {:.0} missing, {:.0} unexpected, {:.0} listed twice",
            n("created"),
            n("listed"),
            n("succeeded"),
            n("missing"),
            n("unexpected"),
            n("listed_twice")
        )
    };
    if let Some(e) = errors.filter(|e| *e > 0.0) {
        let _ = write!(cell, "; **failed submits: {e:.0}**");
    }
    cell
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_summary_reads_the_bench_json() {
        let dir = std::env::temp_dir().join(format!("xtask-serve-summary-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let check = |n: u64| {
            serde_json::json!({
                "ok": true, "created": n, "unique_ids": n, "listed": n, "listed_twice": 0,
                "succeeded": n, "missing": 0, "unexpected": 0, "not_succeeded": [],
                "finished_within_ms": 250.0,
            })
        };
        let json = serde_json::json!({
            "quick": false, "clients": 64, "seconds": 10, "burst": 1000,
            "target_runs_per_second": 2000.0, "target_p99_ms": 20.0,
            "backends": [
                {
                    "backend": "sqlite_full",
                    "single_client": { "p50_ms": 1.2 },
                    "load": {
                        "runs_per_second": 2500.0, "p50_ms": 10.0, "p99_ms": 15.0, "max_ms": 30.0,
                        "errors": 0, "target_met": true, "check": check(25_000),
                        "cpu": { "server_cores": 1.0, "clients_cores": 0.5, "rest_cores": 0.3 },
                    },
                    "burst": { "created": 1000, "wall_ms": 500.0, "p50_ms": 250.0, "p99_ms": 490.0, "check": check(26_000), "ok": true },
                },
                {
                    "backend": "postgres",
                    "single_client": { "p50_ms": 2.0 },
                    "load": {
                        "runs_per_second": 600.0, "p50_ms": 100.0, "p99_ms": 150.0, "max_ms": 160.0,
                        "errors": 2, "target_met": false,
                        "check": { "ok": false, "created": 6000, "listed": 5999, "succeeded": 5999, "missing": 1, "unexpected": 0, "listed_twice": 0 },
                    },
                    "burst": { "created": 999, "wall_ms": 1200.0, "check": check(7000), "ok": false },
                },
            ],
        });
        std::fs::write(dir.join("serve.json"), json.to_string()).expect("serve.json");
        let mut s = String::new();
        serve(&mut s, &dir);
        let _ = std::fs::remove_dir_all(&dir);
        println!("{s}");
        assert!(s.contains(
            "| SQLite `synchronous=FULL` | 2500 | 10.0 ms | 15.0 ms | 30.0 ms | 1.20 ms | yes | yes: 25000 runs listed"
        ));
        assert!(s.contains("| SQLite `synchronous=NORMAL` | - |"));
        assert!(s.contains("**no** (30% of the rate, p99 7.5x)"));
        assert!(s.contains("1 missing"));
        assert!(s.contains("**failed submits: 2**"));
        assert!(s.contains("| PostgreSQL | 999 / 1000 |"));
    }

    #[test]
    fn waits_summary_reads_the_bench_json() {
        let dir = std::env::temp_dir().join(format!("xtask-waits-summary-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let json = serde_json::json!({
            "quick": false, "runs": 10000, "signalled": 200, "spread": 100, "spread_gap_ms": 50,
            "backends": [
                {
                    "backend": "sqlite_normal",
                    "parked": { "idle_rss_mb": 16.6, "parked_rss_mb": 24.0, "added_mb": 7.4 },
                    "signal": { "p50_ms": 2.4, "p95_ms": 3.04 },
                    "timers_at_once": {
                        "all_finished_s": 4.3, "late_p50_ms": 2000.0, "late_p99_ms": 4200.0,
                        "parked_before_instant": true, "listed": 10000, "succeeded": 10000, "ok": true,
                    },
                    "timers_spread": { "late_p50_ms": 2.0, "late_p99_ms": 8.0 },
                    "targets": { "parked_added_mb": 50.0, "signal_p50_ms": 20.0, "all_finished_s": 10.0, "spread_late_p99_ms": 100.0 },
                    "met": { "parked": true, "signal": true, "timers_at_once": true, "timers_spread": true },
                },
                {
                    "backend": "postgres",
                    "parked": { "idle_rss_mb": 20.0, "parked_rss_mb": 23.4, "added_mb": 3.4 },
                    "signal": { "error": "signal to abc: 500 Internal Server Error" },
                    "timers_at_once": {
                        "all_finished_s": 10.4, "late_p50_ms": 5000.0, "late_p99_ms": 10000.0,
                        "parked_before_instant": false, "listed": 10000, "succeeded": 9999, "ok": false,
                    },
                    "timers_spread": { "late_p50_ms": 6.0, "late_p99_ms": 14.0 },
                    "targets": { "parked_added_mb": null, "signal_p50_ms": 40.0, "all_finished_s": 10.0, "spread_late_p99_ms": 100.0 },
                    "met": { "parked": null, "signal": false, "timers_at_once": false, "timers_spread": true },
                },
            ],
        });
        std::fs::write(dir.join("waits.json"), json.to_string()).expect("waits.json");
        let mut s = String::new();
        waits(&mut s, &dir);
        let _ = std::fs::remove_dir_all(&dir);
        println!("{s}");
        assert!(s.contains("## Runs that wait: 10,000 runs parked, 10,000 timers due at once"));
        assert!(
            s.contains("| 10,000 runs parked on a signal: memory added | +7.4 MB (16.6 to 24.0 MB) | ≤ 50 MB | yes |")
        );
        assert!(s.contains("| p50 2.4 ms, p95 3.0 ms | p50 ≤ 20 ms | yes |"));
        assert!(s.contains(
            "| 10,000 timers due at the same instant | all finished after 4.3 s; woke late by p50 2.00 s, p99 4.20 s | ≤ 10 s | yes |"
        ));
        assert!(s.contains(
            "| 100 timers 50 ms apart (not saturated) | woke late by p50 2.0 ms, p99 8.0 ms | p99 ≤ 100 ms | yes |"
        ));
        // PostgreSQL: no memory target; a failed phase says why.
        assert!(s.contains("| +3.4 MB (20.0 to 23.4 MB) | - | - |"));
        assert!(s.contains("| **failed**: signal to abc: 500 Internal Server Error | p50 ≤ 40 ms | **no** |"));
        assert!(
            s.contains("**not all parked before the instant**; **9999 succeeded, 10000 listed** | ≤ 10 s | **no** |")
        );
        assert!(s.contains("p99 14 ms | p99 ≤ 100 ms | yes |"));

        let mut missing = String::new();
        waits(&mut missing, &dir);
        assert!(missing.contains("(no waits.json: the waits bench did not run)"));
    }
}
