//! `flow run`.

use std::path::{Path, PathBuf};

use flow_engine::journal::{Owner, SyncLevel, Writer};
use flow_engine::{Engine, EventReceiver, Report, RunHandle, RunOptions, RunStatus};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::cli::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, JournalArgs, RunArgs, load};
use crate::progress::Display;

/// Where the report goes.
pub enum ReportTarget {
    Stdout,
    File(PathBuf),
}

pub async fn run(args: RunArgs) -> u8 {
    let catalog = args.catalog.catalog(&args.file);
    let engine = Engine::builder()
        .limits(args.limits.limits())
        .catalog(catalog.clone())
        .build();
    let workflow = match load(&engine, &args.file) {
        Ok(wf) => wf,
        Err(code) => return code,
    };
    let submit_strategy = match strategy_override(&engine, &args, workflow.strategy()) {
        Ok(spec) => spec,
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_USAGE;
        }
    };
    let submit_input = match args.input.as_deref().map(parse_input) {
        None => None,
        Some(Ok(input)) => Some(input),
        Some(Err(message)) => {
            eprintln!("error: --input: {message}");
            return EXIT_USAGE;
        }
    };
    let outputs = match Outputs::prepare(
        args.report.as_deref(),
        args.timeline.as_ref(),
        args.events.as_ref(),
        args.quiet,
    ) {
        Ok(outputs) => outputs,
        Err(code) => return code,
    };
    // A bad journal is an error before anything runs.
    let writer = match open_journal(&args.journal).await {
        Ok(writer) => writer,
        Err(code) => return code,
    };
    if args.detach && writer.is_none() {
        eprintln!("error: --detach needs --journal TARGET: a detached run is kept there until it is woken");
        return EXIT_USAGE;
    }
    // A signal can only reach a run that another process can find.
    if writer.is_none()
        && let Some(node) = workflow.nodes().iter().find(|n| n.kind_name() == "signal")
    {
        eprintln!(
            "error: node `{}` waits for a signal, which only a journaled run can receive: give --journal TARGET (then send it with `flow signal`)",
            node.id()
        );
        return EXIT_USAGE;
    }
    let mut options = RunOptions::new();
    if writer.is_none() {
        if let Some(spec) = submit_strategy.clone() {
            options = options.strategy_spec(spec);
        }
        if let Some(input) = submit_input.clone() {
            options = options.input(input);
        }
    }
    let engine = match crate::worker::engine_for(
        Engine::builder().limits(args.limits.limits()).catalog(catalog),
        args.dispatch,
        args.journal.journal.as_deref(),
        writer.as_ref(),
    )
    .await
    {
        Ok(engine) => engine,
        Err(code) => return code,
    };
    let display = Display::choose(args.quiet);
    let events = (display != Display::Quiet || outputs.event_log.is_some()).then(|| options.subscribe());

    let cancel = CancellationToken::new();
    options = options.cancel_token(cancel.clone());
    if writer.is_none() {
        tokio::spawn(cancel_on_signal(cancel.clone()));
    }

    let started = match &writer {
        // Journaled: through the runtime, as every front end that keeps runs.
        Some(writer) => {
            let mut runtime = flow_runtime::Runtime::new(engine, writer.clone());
            if args.detach {
                runtime = runtime.with_parking();
            }
            let submit = flow_runtime::Submit {
                input: submit_input,
                strategy: submit_strategy,
                idempotency_key: None,
            };
            match runtime.start_with(&workflow, submit, options).await {
                Ok(flow_runtime::Started::New(handle)) => Ok(handle),
                Ok(flow_runtime::Started::Replayed { run_id }) => Err(format!("run {run_id} was started already")),
                Err(flow_runtime::Error::Journal(e)) => {
                    eprintln!("error: --journal: {e}");
                    return EXIT_FAILED;
                }
                Err(e) => Err(e.to_string()),
            }
        }
        None => engine.start(&workflow, options).map_err(|e| e.to_string()),
    };
    let handle = match started {
        Ok(handle) => handle,
        Err(message) => {
            eprintln!("error: {}", crate::cli::with_flags(&message));
            return EXIT_USAGE;
        }
    };
    if let Some(writer) = &writer {
        crate::progress::note(&format!(
            "flow: run {} journaled in {}",
            handle.run_id(),
            writer.journal().target()
        ));
        // Ctrl-C leaves a waiting run waiting in the journal; one that runs is cancelled.
        tokio::spawn(park_or_cancel_on_signal(cancel.clone(), Some(handle.park_token())));
    }
    finish(
        handle,
        events,
        display,
        workflow.nodes().len(),
        outputs,
        writer.as_ref(),
    )
    .await
}

/// The files a run writes besides its summary, checked before it starts.
pub struct Outputs {
    report: Option<ReportTarget>,
    timeline: Option<PathBuf>,
    event_log: Option<(PathBuf, std::io::BufWriter<std::fs::File>)>,
    quiet: bool,
}

impl Outputs {
    /// Checks `--report`, `--timeline` and `--events` (their folders exist; the
    /// events file is created).
    pub fn prepare(
        report: Option<&str>,
        timeline: Option<&PathBuf>,
        events: Option<&PathBuf>,
        quiet: bool,
    ) -> Result<Outputs, u8> {
        let report = match report {
            None => None,
            Some("-") => Some(ReportTarget::Stdout),
            Some(path) => {
                let path = PathBuf::from(path);
                if let Err(message) = check_folder(&path, "--report") {
                    eprintln!("{message}");
                    return Err(EXIT_USAGE);
                }
                Some(ReportTarget::File(path))
            }
        };
        if let Some(path) = timeline
            && let Err(message) = check_folder(path, "--timeline")
        {
            eprintln!("{message}");
            return Err(EXIT_USAGE);
        }
        let event_log = match events {
            None => None,
            Some(path) => match std::fs::File::create(path) {
                Ok(file) => Some((path.clone(), std::io::BufWriter::new(file))),
                Err(e) => {
                    eprintln!("error: --events: cannot create {}: {e}", path.display());
                    return Err(EXIT_USAGE);
                }
            },
        };
        Ok(Outputs {
            report,
            timeline: timeline.cloned(),
            event_log,
            quiet,
        })
    }

    /// Whether `--events` was given.
    pub fn has_event_log(&self) -> bool {
        self.event_log.is_some()
    }

    /// Writes the summary, the timeline and the report of a finished run; the
    /// exit code (1 when the run did not succeed).
    pub fn write(&self, report: &Report) -> u8 {
        let written = self.write_all(report);
        // A detached run that waits is where it should be.
        if written && matches!(report.status, RunStatus::Succeeded | RunStatus::Waiting) {
            EXIT_OK
        } else {
            EXIT_FAILED
        }
    }

    /// Writes the summary, the timeline and the report; whether all were written.
    pub fn write_all(&self, report: &Report) -> bool {
        eprint!("{}", crate::summary::render(report, self.quiet));
        self.write_files(report)
    }

    /// As [`write_all`](Self::write_all), for a command whose answer is the
    /// summary (`flow runs show`): it goes to stdout, unless stdout carries the
    /// report.
    pub fn write_all_to_stdout(&self, report: &Report) -> bool {
        let summary = crate::summary::render(report, self.quiet);
        match self.report {
            Some(ReportTarget::Stdout) => eprint!("{summary}"),
            _ => print!("{summary}"),
        }
        self.write_files(report)
    }

    fn write_files(&self, report: &Report) -> bool {
        let mut ok = true;
        if let Some(path) = &self.timeline
            && let Err(e) = std::fs::write(path, flow_view::timeline::render(report))
        {
            eprintln!("error: --timeline: cannot write {}: {e}", path.display());
            ok = false;
        }
        if let Some(target) = &self.report
            && let Err(message) = write_report(report, target)
        {
            eprintln!("error: --report: {message}");
            ok = false;
        }
        ok
    }
}

/// Opens the journal the flags (or `FLOW_JOURNAL`) name and starts its writer;
/// `None` without one. A target that cannot be used is exit 2, with why.
pub async fn open_journal(args: &JournalArgs) -> Result<Option<Writer>, u8> {
    let Some(target) = args.journal.as_deref().filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let sync = args.journal_sync.parse::<SyncLevel>().unwrap_or_default();
    let journal = match flow_engine::journal::open(target, sync).await {
        Ok(journal) => journal,
        Err(e) => {
            eprintln!("error: --journal: {e}");
            return Err(EXIT_USAGE);
        }
    };
    match Writer::start(journal, Owner::this_process()) {
        Ok(writer) => Ok(Some(writer)),
        Err(e) => {
            eprintln!("error: --journal: {e}");
            Err(EXIT_USAGE)
        }
    }
}

/// Follows a started run to its end: progress, summary, report; the exit code.
pub async fn finish(
    handle: RunHandle,
    events: Option<EventReceiver>,
    display: Display,
    nodes: usize,
    mut outputs: Outputs,
    writer: Option<&Writer>,
) -> u8 {
    let follower = events.map(|events| {
        tokio::spawn(crate::progress::follow(
            events,
            display,
            nodes,
            outputs.event_log.take(),
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
    let mut code = outputs.write(&report);
    if report.status == RunStatus::Waiting {
        crate::progress::note(&format!(
            "flow: run {} waits, parked in the journal: a `flow serve` on it wakes the run when due, or `flow resume {}` follows it here",
            report.run_id, report.run_id
        ));
    }
    if let Err(message) = followed {
        eprintln!("error: --events: {message}");
        code = EXIT_FAILED;
    }
    if let Some(writer) = writer
        && let Err(e) = writer.flush().await
    {
        eprintln!("error: the run's journal is incomplete: {e}");
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

pub fn write_report(report: &Report, target: &ReportTarget) -> Result<(), String> {
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
) -> Result<Option<flow_engine::StrategySpec>, String> {
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
    let spec = flags.over(kind, file);
    engine
        .build_strategy(&spec)
        .map(|_| Some(spec))
        .map_err(|e| format!("{} (from the command line flags)", e.to_string().replace('\n', "; ")))
}

fn parse_input(raw: &str) -> Result<Value, String> {
    json_argument(raw).map_err(|e| match e {
        JsonArgError::Unreadable { path, error } => format!("cannot read {path}: {error}"),
        JsonArgError::Invalid { path, error } => format!(
            "{} is not valid JSON: {error}",
            path.as_deref().unwrap_or("the argument")
        ),
    })
}

/// Why a JSON argument (the text, or `@FILE`) could not be read.
pub(crate) enum JsonArgError {
    /// `@FILE` names a file that cannot be read.
    Unreadable { path: String, error: std::io::Error },
    /// The text (of the file, when `path`) is not JSON.
    Invalid {
        path: Option<String>,
        error: serde_json::Error,
    },
}

/// A JSON argument: the text itself, or `@FILE` to read it from a file.
pub(crate) fn json_argument(raw: &str) -> Result<Value, JsonArgError> {
    let (text, path) = match raw.strip_prefix('@') {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => (text, Some(path.to_owned())),
            Err(error) => {
                return Err(JsonArgError::Unreadable {
                    path: path.to_owned(),
                    error,
                });
            }
        },
        None => (raw.to_owned(), None),
    };
    serde_json::from_str(&text).map_err(|error| JsonArgError::Invalid { path, error })
}

/// First Ctrl-C or SIGTERM cancels the run (running nodes stop, the report is still
/// written); a second Ctrl-C exits at once.
pub async fn cancel_on_signal(cancel: CancellationToken) {
    park_or_cancel_on_signal(cancel, None).await;
}

/// As [`cancel_on_signal`]; with `park` (a journaled run's), the first Ctrl-C
/// parks the run if every node under way waits (it is left `waiting` in the
/// journal, for `flow resume` or a `flow serve`) and cancels it otherwise.
pub async fn park_or_cancel_on_signal(cancel: CancellationToken, park: Option<CancellationToken>) {
    wait_for_signal().await;
    if let Some(park) = park {
        park.cancel();
        // A run that waits parks at once; one that does not is cancelled.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    crate::progress::note("flow: cancelling the run (press Ctrl-C again to exit at once)");
    cancel.cancel();
    wait_for_signal().await;
    crate::progress::clear();
    eprintln!("flow: exiting without a report");
    std::process::exit(130);
}

#[cfg(unix)]
pub async fn wait_for_signal() {
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
pub async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
