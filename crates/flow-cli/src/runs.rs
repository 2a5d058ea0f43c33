//! `flow runs list`, `flow runs show` and `flow resume`: journaled runs.

use flow_engine::journal::{RunFilter, RunRow, SyncLevel, now_ms, rfc3339};
use flow_engine::{Engine, ResumeError, ResumeOptions, RunStatus};
use flow_runtime::{Progress, Runs, Runtime};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::cli::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, JournalArgs, ResumeArgs, RunsListArgs, RunsShowArgs, SignalArgs};
use crate::progress::Display;
use crate::run::{JsonArgError, Outputs, cancel_on_signal, finish, json_argument, open_journal};
use crate::summary::fmt_ms;

/// The runs of the journal the flags name; exit 2 without one.
pub(crate) async fn runs(args: &JournalArgs) -> Result<Runs, u8> {
    let Some(target) = args.journal.as_deref().filter(|t| !t.is_empty()) else {
        eprintln!("error: no journal: give --journal TARGET or set FLOW_JOURNAL");
        return Err(EXIT_USAGE);
    };
    missing(target)?;
    let sync = args.journal_sync.parse::<SyncLevel>().unwrap_or_default();
    let journal = flow_engine::journal::open(target, sync).await.map_err(|e| {
        eprintln!("error: --journal: {e}");
        EXIT_USAGE
    })?;
    Ok(Runs::new(Engine::new(), journal))
}

/// Reading runs never creates a journal: a SQLite path that is not there is
/// exit 2.
fn missing(target: &str) -> Result<(), u8> {
    let is_url = flow_engine::journal::is_postgres(target);
    if !is_url && !std::path::Path::new(target).exists() {
        eprintln!("error: --journal: there is no journal at {target}");
        return Err(EXIT_USAGE);
    }
    Ok(())
}

fn row_json(row: &RunRow, now: i64, progress: Option<&Progress>) -> Value {
    let status = row.status_now(now);
    let duration = match (row.duration_ms, progress) {
        (Some(duration), _) => duration,
        // An interrupted run's time stopped at its last record.
        (None, Some(p)) if status == RunStatus::Interrupted => p.last_ms,
        _ => (row.finished_at_ms.unwrap_or(now) - row.started_at_ms).max(0) as f64,
    };
    let nodes = match (&row.counts, progress) {
        (Some(counts), _) => counts.clone(),
        (None, Some(p)) => p.counts.clone(),
        (None, None) => Value::Null,
    };
    json!({
        "run_id": row.run_id,
        "workflow": row.workflow,
        "status": status,
        "started_at": rfc3339(row.started_at_ms),
        "finished_at": row.finished_at_ms.map(rfc3339),
        "duration_ms": flow_engine::core::round_ms(duration),
        "nodes": nodes,
        "owner": row.owner.as_ref().map(|o| json!({ "host": o.host, "pid": o.pid })),
        "parent": row.parent,
    })
}

/// The run a full id or a unique prefix of one names (as git takes a short
/// hash); exit 2, with the candidates, when none or several match.
pub async fn resolve(runs: &Runs, given: &str) -> Result<String, u8> {
    const SHOWN: usize = 10;
    let ids = match runs.resolve(given, SHOWN + 1).await {
        Ok(ids) => ids,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(EXIT_FAILED);
        }
    };
    match ids.as_slice() {
        [] => {
            eprintln!("error: no run `{given}` in the journal {}", runs.journal().target());
            Err(EXIT_USAGE)
        }
        [only] => Ok(only.clone()),
        [first, ..] if first == given => Ok(first.clone()),
        many => {
            let more = if many.len() > SHOWN { "\n  ... and more" } else { "" };
            let shown: Vec<&str> = many.iter().take(SHOWN).map(String::as_str).collect();
            eprintln!(
                "error: run id `{given}` is ambiguous; it starts:\n  {}{more}\ngive more of the id",
                shown.join("\n  ")
            );
            Err(EXIT_USAGE)
        }
    }
}

/// The runs of the journal the flags name, and the run `given` (a full id
/// or a unique prefix) names in it; exit 2 when either is not there.
async fn run_of(journal: &JournalArgs, given: &str) -> Result<(Runs, String), u8> {
    let runs = runs(journal).await?;
    let run_id = resolve(&runs, given).await?;
    Ok((runs, run_id))
}

pub async fn list(args: RunsListArgs) -> u8 {
    let runs = match runs(&args.journal).await {
        Ok(runs) => runs,
        Err(code) => return code,
    };
    let filter = RunFilter {
        workflow: args.workflow.clone(),
        status: args.status.as_deref().and_then(|s| s.parse().ok()),
        limit: args.limit,
        before: None,
        top_level: args.top_level,
    };
    let rows = match runs.list(&filter).await {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILED;
        }
    };
    let now = now_ms();
    let mut progress = Vec::with_capacity(rows.len());
    for row in &rows {
        progress.push(match row.counts {
            Some(_) => None,
            None => runs.progress(&row.run_id).await,
        });
    }
    let rows: Vec<(&RunRow, Value)> = rows
        .iter()
        .zip(&progress)
        .map(|(row, p)| (row, row_json(row, now, p.as_ref())))
        .collect();
    if args.json {
        let array: Vec<Value> = rows.into_iter().map(|(_, j)| j).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&array).unwrap_or_else(|_| "[]".into())
        );
        return EXIT_OK;
    }
    if rows.is_empty() {
        println!("no runs");
        return EXIT_OK;
    }
    println!(
        "{:<36}  {:<20}  {:<11}  {:<24}  {:>10}  nodes",
        "run id", "workflow", "status", "started at", "duration"
    );
    for (row, j) in rows {
        let nodes = match &j["nodes"] {
            Value::Object(counts) if !counts.is_empty() => counts
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", "),
            _ => "-".into(),
        };
        println!(
            "{:<36}  {:<20}  {:<11}  {:<24}  {:>10}  {nodes}",
            row.run_id,
            row.workflow,
            j["status"].as_str().unwrap_or(""),
            j["started_at"].as_str().unwrap_or(""),
            fmt_ms(j["duration_ms"].as_f64().unwrap_or(0.0)),
        );
    }
    EXIT_OK
}

pub async fn show(args: RunsShowArgs) -> u8 {
    let (runs, run_id) = match run_of(&args.journal, &args.run_id).await {
        Ok(found) => found,
        Err(code) => return code,
    };
    let outputs = match Outputs::prepare(args.report.as_deref(), args.timeline.as_ref(), None, false) {
        Ok(outputs) => outputs,
        Err(code) => return code,
    };
    let report = match runs.lookup(&run_id).await {
        Ok(view) => view.report,
        Err(flow_runtime::Error::RunNotFound(_)) => {
            eprintln!("error: no run `{run_id}` in the journal {}", runs.journal().target());
            return EXIT_USAGE;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILED;
        }
    };
    // Exit 0 whatever the run's status: it is in the report.
    // A query: its answer goes to stdout (the report alone with `--report -`).
    if outputs.write_all_to_stdout(&report) {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

pub async fn resume(args: ResumeArgs) -> u8 {
    let outputs = match Outputs::prepare(
        args.report.as_deref(),
        args.timeline.as_ref(),
        args.events.as_ref(),
        args.quiet,
    ) {
        Ok(outputs) => outputs,
        Err(code) => return code,
    };
    if let Some(target) = args.journal.journal.as_deref()
        && let Err(code) = missing(target)
    {
        return code;
    }
    let writer = match open_journal(&args.journal).await {
        Ok(Some(writer)) => writer,
        Ok(None) => {
            eprintln!("error: no journal: give --journal TARGET or set FLOW_JOURNAL");
            return EXIT_USAGE;
        }
        Err(code) => return code,
    };
    let engine = match crate::worker::engine_for(
        Engine::builder(),
        args.dispatch,
        args.journal.journal.as_deref(),
        Some(&writer),
    )
    .await
    {
        Ok(engine) => engine,
        Err(code) => return code,
    };
    let display = Display::choose(args.quiet);
    let mut options = ResumeOptions::new().retry_failed(args.retry_failed);
    let events = (display != Display::Quiet || outputs.has_event_log()).then(|| options.subscribe());
    let cancel = CancellationToken::new();
    options = options.cancel_token(cancel.clone());
    let runtime = Runtime::new(engine, writer.clone());
    let run_id = match resolve(runtime.runs(), &args.run_id).await {
        Ok(id) => id,
        Err(code) => return code,
    };
    let resumed = match runtime.take_over_with(&run_id, options).await {
        Ok(resumed) => resumed,
        // The flag, in the CLI's words.
        Err(flow_runtime::Error::Resume(ResumeError::Finished { run_id, status }))
            if status != RunStatus::Succeeded =>
        {
            eprintln!("error: run `{run_id}` has finished ({status}); `--retry-failed` runs its failed nodes again");
            return EXIT_USAGE;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    tokio::spawn(cancel_on_signal(cancel));
    crate::progress::note(&format!(
        "flow: resuming run {} of `{}` from {}",
        run_id,
        resumed.workflow.name(),
        writer.journal().target()
    ));
    finish(
        resumed.handle,
        events,
        display,
        resumed.workflow.nodes().len(),
        outputs,
        Some(&writer),
    )
    .await
}

/// `flow signal RUN_ID NAME [--data JSON|@FILE]`: records the signal for the
/// run (exit 0); exit 2 for an unknown or ended run, a bad payload, or one
/// the waiting node's schema refuses.
pub async fn signal(args: SignalArgs) -> u8 {
    let payload = match args.data.as_deref().map(json_argument) {
        None => Value::Null,
        Some(Ok(payload)) => payload,
        Some(Err(JsonArgError::Unreadable { path, error })) => {
            eprintln!("error: --data @{path}: {error}");
            return EXIT_USAGE;
        }
        Some(Err(JsonArgError::Invalid { path, error })) => {
            let place = path.map_or_else(|| "--data".to_owned(), |p| format!("--data @{p}"));
            eprintln!("error: {place}: not JSON: {error}");
            return EXIT_USAGE;
        }
    };
    let (runs, run_id) = match run_of(&args.journal, &args.run_id).await {
        Ok(found) => found,
        Err(code) => return code,
    };
    match runs.signal(&run_id, &args.name, &payload).await {
        Ok(number) => {
            println!("signal `{}` sent to run {run_id} (number {number})", args.name);
            EXIT_OK
        }
        Err(
            e @ (flow_runtime::Error::RunNotFound(_)
            | flow_runtime::Error::RunEnded { .. }
            | flow_runtime::Error::SignalRefused { .. }
            | flow_runtime::Error::BadInput(_)),
        ) => {
            eprintln!("error: {e}");
            EXIT_USAGE
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILED
        }
    }
}
