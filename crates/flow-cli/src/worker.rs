//! `flow worker`, `flow workers list`, and `--dispatch queue` for the commands
//! that run workflows.

use std::sync::Arc;

use flow_engine::Engine;
use flow_engine::journal::Writer;
use tokio_util::sync::CancellationToken;

use crate::cli::{Dispatch, EXIT_FAILED, EXIT_OK, EXIT_USAGE, WorkerArgs, WorkersListArgs};
use crate::run::wait_for_signal;

/// The PostgreSQL journal URL of `--journal` (or `FLOW_JOURNAL`); exit 2 without one.
fn postgres_url(journal: Option<&str>, what: &str) -> Result<String, u8> {
    match journal.filter(|t| !t.is_empty()) {
        Some(url) if flow_engine::journal::is_postgres(url) => Ok(url.to_owned()),
        Some(other) => {
            eprintln!("error: --journal: {what} needs a PostgreSQL journal (postgres://...), not `{other}`");
            Err(EXIT_USAGE)
        }
        None => {
            eprintln!("error: {what} needs --journal postgres://... (or FLOW_JOURNAL)");
            Err(EXIT_USAGE)
        }
    }
}

/// `engine` as it is, or, for `--dispatch queue`, one that hands every attempt
/// to the queue in the journal `target` (exit 2 when that is not PostgreSQL).
pub async fn engine_for(
    engine: flow_engine::EngineBuilder,
    dispatch: Dispatch,
    target: Option<&str>,
    writer: Option<&Writer>,
) -> Result<Engine, u8> {
    if dispatch == Dispatch::Local {
        return Ok(engine.build());
    }
    let url = postgres_url(target, "--dispatch queue")?;
    let Some(writer) = writer else {
        eprintln!("error: --dispatch queue needs --journal postgres://... (workers reach the queue through it)");
        return Err(EXIT_USAGE);
    };
    match flow_dist::Queue::connect(&url, &writer.owner().token).await {
        Ok(queue) => Ok(engine.dispatcher(Arc::new(queue)).build()),
        Err(e) => {
            eprintln!("error: --dispatch queue: {e}");
            Err(EXIT_USAGE)
        }
    }
}

/// `flow worker`.
pub async fn work(args: WorkerArgs) -> u8 {
    let url = match postgres_url(args.journal.as_deref(), "flow worker") {
        Ok(url) => url,
        Err(code) => return code,
    };
    let engine = Engine::new();
    if let Some(kinds) = &args.kinds {
        let names = engine.registry().names();
        for kind in kinds {
            if engine.registry().get(kind).is_none() {
                let hint = flow_engine::core::did_you_mean(kind, names.iter().copied())
                    .map(|h| format!(" (did you mean `{h}`?)"))
                    .unwrap_or_default();
                eprintln!(
                    "error: --kinds: unknown node kind `{kind}`{hint}; this worker knows: {}",
                    names.join(", ")
                );
                return EXIT_USAGE;
            }
        }
    }
    let config = flow_dist::WorkerConfig::new(args.concurrency as usize)
        .kinds(args.kinds)
        .claim_ttl(args.claim_ttl)
        .grace(args.grace);
    let worker = flow_dist::Worker::new(engine, url.clone(), config);
    eprintln!(
        "flow worker {}: working for {} ({} at once)",
        worker.id(),
        flow_engine::journal::shown_url(&url),
        args.concurrency
    );
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        eprintln!("flow worker: stopping: no new tasks; attempts under way may finish (Ctrl-C again exits at once)");
        on_signal.cancel();
        wait_for_signal().await;
        std::process::exit(130);
    });
    match worker.run(stop).await {
        Ok(()) => EXIT_OK,
        Err(e @ flow_dist::Error::Open { .. }) => {
            eprintln!("error: --journal: {e}");
            EXIT_USAGE
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILED
        }
    }
}

/// `flow workers list`.
pub async fn list(args: WorkersListArgs) -> u8 {
    let url = match postgres_url(args.journal.as_deref(), "flow workers list") {
        Ok(url) => url,
        Err(code) => return code,
    };
    let workers = match flow_dist::list_workers(&url).await {
        Ok(workers) => workers,
        Err(e) => {
            eprintln!("error: --journal: {e}");
            return EXIT_USAGE;
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&workers).unwrap_or_else(|_| "[]".into())
        );
        return EXIT_OK;
    }
    if workers.is_empty() {
        println!("no workers");
        return EXIT_OK;
    }
    let now = flow_engine::journal::now_ms();
    println!(
        "{:<36}  {:<6}  {:<16}  {:>7}  {:<12}  {:>9}  {:>9}  RUNNING",
        "WORKER", "STATUS", "HOST", "PID", "KINDS", "AT ONCE", "SEEN"
    );
    for w in &workers {
        let kinds = w.kinds.as_ref().map_or("all".to_owned(), |k| k.join(","));
        let seen = format!("{:.1}s ago", (now - w.seen_at_ms).max(0) as f64 / 1000.0);
        println!(
            "{:<36}  {:<6}  {:<16}  {:>7}  {:<12}  {:>9}  {:>9}  {}",
            w.id,
            if w.alive { "alive" } else { "gone" },
            w.host,
            w.pid,
            kinds,
            w.concurrency,
            seen,
            if w.running.is_empty() {
                "-".to_owned()
            } else {
                w.running.join("; ")
            }
        );
    }
    EXIT_OK
}
