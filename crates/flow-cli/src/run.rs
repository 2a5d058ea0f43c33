//! `flow run`.

use std::path::{Path, PathBuf};

use flow_engine::{Engine, Report, RunOptions, RunStatus};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::cli::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, RunArgs, load};
use crate::progress::Display;

/// Where the report goes.
enum ReportTarget {
    Stdout,
    File(PathBuf),
}

pub async fn run(args: RunArgs) -> u8 {
    let engine = Engine::builder().limits(args.limits.limits()).build();
    let workflow = match load(&engine, &args.file) {
        Ok(wf) => wf,
        Err(code) => return code,
    };
    let mut options = RunOptions::new();
    match strategy_override(&engine, &args, workflow.strategy()) {
        Ok(Some(strategy)) => options = options.strategy(strategy),
        Ok(None) => {}
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_USAGE;
        }
    }
    if let Some(raw) = &args.input {
        match parse_input(raw) {
            Ok(input) => options = options.input(input),
            Err(message) => {
                eprintln!("error: --input: {message}");
                return EXIT_USAGE;
            }
        }
    }
    let target = match args.report.as_deref() {
        None => None,
        Some("-") => Some(ReportTarget::Stdout),
        Some(path) => {
            let path = PathBuf::from(path);
            if let Err(message) = check_folder(&path, "--report") {
                eprintln!("{message}");
                return EXIT_USAGE;
            }
            Some(ReportTarget::File(path))
        }
    };
    if let Some(path) = &args.timeline
        && let Err(message) = check_folder(path, "--timeline")
    {
        eprintln!("{message}");
        return EXIT_USAGE;
    }
    let event_log = match &args.events {
        None => None,
        Some(path) => match std::fs::File::create(path) {
            Ok(file) => Some((path.clone(), std::io::BufWriter::new(file))),
            Err(e) => {
                eprintln!("error: --events: cannot create {}: {e}", path.display());
                return EXIT_USAGE;
            }
        },
    };
    let display = Display::choose(args.quiet);
    let events = (display != Display::Quiet || event_log.is_some()).then(|| options.subscribe());

    let cancel = CancellationToken::new();
    options = options.cancel_token(cancel.clone());
    tokio::spawn(cancel_on_signal(cancel.clone()));

    let handle = match engine.start(&workflow, options) {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let follower = events.map(|events| {
        tokio::spawn(crate::progress::follow(
            events,
            display,
            workflow.nodes().len(),
            event_log,
        ))
    });
    let report = handle.wait().await;
    // The follower ends with the run's last event (or when the run's sender drops).
    let followed = match follower {
        Some(task) => task
            .await
            .unwrap_or_else(|e| Err(format!("the progress display failed: {e}"))),
        None => Ok(()),
    };
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILED;
        }
    };
    eprint!("{}", crate::summary::render(&report, args.quiet));
    let mut code = if report.status == RunStatus::Succeeded {
        EXIT_OK
    } else {
        EXIT_FAILED
    };
    if let Err(message) = followed {
        eprintln!("error: --events: {message}");
        code = EXIT_FAILED;
    }
    if let Some(path) = &args.timeline
        && let Err(e) = std::fs::write(path, crate::timeline::render(&report))
    {
        eprintln!("error: --timeline: cannot write {}: {e}", path.display());
        code = EXIT_FAILED;
    }
    if let Some(target) = target
        && let Err(message) = write_report(&report, &target)
    {
        eprintln!("error: --report: {message}");
        code = EXIT_FAILED;
    }
    code
}

/// An output file's folder must exist before the run starts, not only after it.
fn check_folder(path: &Path, flag: &str) -> Result<(), String> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) if !parent.is_dir() => {
            Err(format!("error: {flag}: the folder {} does not exist", parent.display()))
        }
        _ => Ok(()),
    }
}

fn write_report(report: &Report, target: &ReportTarget) -> Result<(), String> {
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    match target {
        ReportTarget::Stdout => {
            println!("{json}");
            Ok(())
        }
        ReportTarget::File(path) => {
            std::fs::write(path, json + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))
        }
    }
}

/// The strategy the flags ask for, combined with the file's section: options the
/// flags do not give are kept from the file when the kind stays the same.
fn strategy_override(
    engine: &Engine,
    args: &RunArgs,
    file: Option<&flow_engine::StrategySpec>,
) -> Result<Option<std::sync::Arc<dyn flow_engine::Strategy>>, String> {
    let flags = &args.strategy;
    if !flags.any() {
        return Ok(None);
    }
    flags.check_kind(engine)?;
    let kind = flags
        .strategy
        .as_deref()
        .or(file.map(|s| s.kind.as_str()))
        .unwrap_or("parallel");
    engine
        .build_strategy(&flags.over(kind, file))
        .map(Some)
        .map_err(|e| format!("{} (from the command line flags)", e.to_string().replace('\n', "; ")))
}

fn parse_input(raw: &str) -> Result<Value, String> {
    let (text, origin) = match raw.strip_prefix('@') {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?,
            path.to_owned(),
        ),
        None => (raw.to_owned(), "the argument".to_owned()),
    };
    serde_json::from_str(&text).map_err(|e| format!("{origin} is not valid JSON: {e}"))
}

/// First Ctrl-C or SIGTERM cancels the run (running nodes stop, the report is still
/// written); a second Ctrl-C exits at once.
async fn cancel_on_signal(cancel: CancellationToken) {
    wait_for_signal().await;
    crate::progress::note("flow: cancelling the run (press Ctrl-C again to exit at once)");
    cancel.cancel();
    wait_for_signal().await;
    crate::progress::clear();
    eprintln!("flow: exiting without a report");
    std::process::exit(130);
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
