//! Command-line arguments and dispatch.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use flow_engine::{Engine, Limits, StrategySpec};

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

/// Run workflow graphs of HTTP calls, notifications and checks, with independent
/// branches side by side.
#[derive(Debug, Parser)]
#[command(name = "flow", version, about, max_term_width = 100)]
pub struct Cli {
    /// More log output on stderr (-v: info, -vv: debug, -vvv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a workflow file and report every node's outcome.
    ///
    /// Progress and the summary go to stderr; stdout stays empty unless
    /// `--report -` prints the JSON report there (to pipe into jq).
    Run(RunArgs),
    /// Check a workflow file without running it.
    Validate(ValidateArgs),
    /// Draw a saved report (`flow run --report`) as a Gantt chart (SVG).
    Timeline(TimelineArgs),
    /// Print a workflow file as a diagram (Mermaid or Graphviz DOT).
    Graph(GraphArgs),
    /// Show a workflow's plan without running it: levels, critical path, time bounds.
    Explain(ExplainArgs),
    /// The seed's benchmark: N parallel HTTP calls to a local delay server, under every strategy.
    Demo(crate::demo::DemoArgs),
    /// Look at journaled runs: list them, show one's report.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Continue an interrupted run from its journal (or, with --retry-failed, a failed one).
    Resume(ResumeArgs),
    /// Send a signal to a run: one of its `signal` nodes that waits for NAME takes it.
    Signal(SignalArgs),
    /// Serve runs over HTTP: an API, live events and a web page, every run journaled.
    Serve(ServeArgs),
    /// Run node attempts that coordinators (`--dispatch queue`) put in the PostgreSQL queue.
    Worker(WorkerArgs),
    /// Look at the workers of a PostgreSQL queue.
    #[command(subcommand)]
    Workers(WorkersCommand),
}

/// Where node attempts run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Dispatch {
    /// In this process.
    #[default]
    Local,
    /// On `flow worker` processes, through the PostgreSQL journal's queue.
    Queue,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The PostgreSQL journal whose queue to work for (postgres://...).
    #[arg(long, value_name = "URL", env = "FLOW_JOURNAL")]
    pub journal: Option<String>,
    /// Attempts run at once.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// Only take tasks of these node kinds (comma-separated, e.g. http,notify).
    #[arg(long, value_name = "KINDS", value_delimiter = ',')]
    pub kinds: Option<Vec<String>>,
    /// How long a claim holds without renewal: a worker that dies holds its tasks this long (e.g. 10s).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub claim_ttl: std::time::Duration,
    /// After SIGTERM or Ctrl-C, how long attempts under way may go on before they go back to the queue.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub grace: std::time::Duration,
}

#[derive(Debug, Subcommand)]
pub enum WorkersCommand {
    /// Workers that have not stopped: where they run, what they take, what they run now.
    List(WorkersListArgs),
}

#[derive(Debug, Args)]
pub struct WorkersListArgs {
    /// The PostgreSQL journal (postgres://...).
    #[arg(long, value_name = "URL", env = "FLOW_JOURNAL")]
    pub journal: Option<String>,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: a free port, printed at start). Beyond loopback it needs FLOW_TOKEN or --insecure.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// The folder of workflow files (.yaml, .yml, .json); SIGHUP reloads it.
    #[arg(long, value_name = "DIR", default_value = "workflows")]
    pub workflows: PathBuf,
    /// Where runs are journaled: a SQLite file or a postgres:// URL.
    #[arg(long, value_name = "TARGET", env = "FLOW_JOURNAL", default_value = "flow-runs.db")]
    pub journal: String,
    /// SQLite only: `full` makes every commit survive a power cut, `normal` only a crash of the process.
    #[arg(long, value_name = "LEVEL", default_value = "full", value_parser = ["full", "normal"])]
    pub journal_sync: String,
    /// Listen beyond loopback without FLOW_TOKEN (anyone who can reach the port can run workflows).
    #[arg(long)]
    pub insecure: bool,
    /// After SIGTERM, how long runs under way may go on before the server stops (e.g. 30s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub grace: std::time::Duration,
    /// Largest request body accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Where node attempts run: here (local), or on `flow worker`s through the PostgreSQL journal (queue).
    #[arg(long, value_name = "WHERE", value_enum, default_value_t = Dispatch::Local)]
    pub dispatch: Dispatch,
    /// A host name clients reach the server by (repeatable), besides IP addresses and localhost: requests naming another host are refused (DNS rebinding).
    #[arg(long = "allowed-host", value_name = "NAME")]
    pub allowed_hosts: Vec<String>,
    /// Mark the login's session cookie Secure: give it when clients reach the server over TLS (a proxy in front).
    #[arg(long)]
    pub cookie_secure: bool,
    /// Most connections open at once; one more is answered 503 and closed.
    #[arg(long, value_name = "N", default_value_t = flow_serve::Bounds::default().max_connections)]
    pub max_connections: usize,
    /// Most event streams (/api/v1/runs/{id}/events) open at once; one more is a 503 problem.
    #[arg(long, value_name = "N", default_value_t = flow_serve::Bounds::default().max_event_streams)]
    pub max_event_streams: usize,
    /// How long a connection has to send a request's headers, from its opening or its previous answer (idle connections close after it).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub header_timeout: std::time::Duration,
    /// How long a client may leave an answer unread, or a request body unsent, before its connection is closed.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub stall_timeout: std::time::Duration,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// `30s`, `500ms`, `2m`, or a number of seconds.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, "s"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (try 30s, 500ms or 2m)"))?;
    let seconds = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (use ms, s or m)")),
    };
    std::time::Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Runs in the journal, newest first (on stdout).
    List(RunsListArgs),
    /// One run's report, rebuilt from the journal (finished, running or interrupted), on stdout.
    Show(RunsShowArgs),
}

/// Where runs are journaled.
#[derive(Debug, Default, Args)]
pub struct JournalArgs {
    /// The journal: a SQLite file or a postgres:// URL. `flow run` creates a missing SQLite file; `runs` and `resume` only read one that exists.
    #[arg(long, value_name = "TARGET", env = "FLOW_JOURNAL")]
    pub journal: Option<String>,
    /// SQLite only: `full` makes every commit survive a power cut, `normal` only a crash of the process.
    #[arg(long, value_name = "LEVEL", default_value = "full", value_parser = ["full", "normal"])]
    pub journal_sync: String,
}

#[derive(Debug, Args)]
pub struct SignalArgs {
    /// The run's id, or a unique prefix of it.
    pub run_id: String,
    /// The signal's name (as the `signal` node's `config.name`).
    pub name: String,
    /// The payload: JSON text, or @FILE to read it from a file (default: null).
    #[arg(long, value_name = "JSON|@FILE")]
    pub data: Option<String>,
    #[command(flatten)]
    pub journal: JournalArgs,
}

#[derive(Debug, Args)]
pub struct RunsListArgs {
    #[command(flatten)]
    pub journal: JournalArgs,
    /// Only this workflow's runs.
    #[arg(long, value_name = "NAME")]
    pub workflow: Option<String>,
    /// Only runs with this status: running, waiting, succeeded, failed, cancelled, interrupted.
    #[arg(long, value_name = "STATUS", value_parser = ["running", "waiting", "succeeded", "failed", "cancelled", "interrupted"])]
    pub status: Option<String>,
    /// At most N runs.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
    /// Leave out child runs (those a `workflow` node started).
    #[arg(long)]
    pub top_level: bool,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunsShowArgs {
    /// The run's id, or a unique prefix of it (as git takes a short hash).
    pub run_id: String,
    #[command(flatten)]
    pub journal: JournalArgs,
    /// Write the JSON report to PATH; `-` prints only the report to stdout.
    #[arg(long, value_name = "PATH")]
    pub report: Option<String>,
    /// Draw the run as a Gantt chart: a self-contained SVG file at PATH.
    #[arg(long, value_name = "PATH")]
    pub timeline: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The run's id, or a unique prefix of it (as git takes a short hash).
    pub run_id: String,
    #[command(flatten)]
    pub journal: JournalArgs,
    /// Also continue a failed or cancelled run: its failed, cancelled and upstream_failed nodes (and failed items) run again.
    #[arg(long)]
    pub retry_failed: bool,
    /// Write the JSON report to PATH; `-` prints only the report to stdout.
    #[arg(long, value_name = "PATH")]
    pub report: Option<String>,
    /// Print only the final summary (no progress display).
    #[arg(short, long)]
    pub quiet: bool,
    /// Draw the run as a Gantt chart: a self-contained SVG file at PATH.
    #[arg(long, value_name = "PATH")]
    pub timeline: Option<PathBuf>,
    /// Write every event of the resumed part of the run to PATH, one JSON object per line.
    #[arg(long, value_name = "PATH")]
    pub events: Option<PathBuf>,
    /// Where node attempts run: here (local), or on `flow worker`s through the PostgreSQL journal (queue).
    #[arg(long, value_name = "WHERE", value_enum, default_value_t = Dispatch::Local)]
    pub dispatch: Dispatch,
}

#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Largest workflow file accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_file_bytes)]
    pub max_file_bytes: usize,
    /// Most nodes a workflow may have.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_nodes)]
    pub max_nodes: usize,
    /// Deepest nesting of a node's `config` or of `input`.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_depth)]
    pub max_depth: usize,
    /// Most edges a workflow may have.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_edges)]
    pub max_edges: usize,
    /// Most items one `for_each` may give in a run (a longer list fails its node).
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_items)]
    pub max_items: usize,
}

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_file_bytes: self.max_file_bytes,
            max_nodes: self.max_nodes,
            max_depth: self.max_depth,
            max_edges: self.max_edges,
            max_items: self.max_items,
        }
    }
}

/// The strategy flags of `flow run` and `flow explain`, over the file's `strategy:`.
#[derive(Debug, Default, Args)]
pub struct StrategyArgs {
    /// Strategy, replacing the file's: sequential, parallel, all-settled, rate-limited.
    #[arg(long, value_name = "KIND")]
    pub strategy: Option<String>,
    /// At most this many nodes at once (every strategy but sequential).
    #[arg(long, value_name = "N")]
    pub max_concurrency: Option<u64>,
    /// rate-limited: node starts per second (replaces the file's).
    #[arg(long, value_name = "RATE")]
    pub per_second: Option<f64>,
    /// rate-limited: starts admitted at once after an idle time (replaces the file's).
    #[arg(long, value_name = "N")]
    pub burst: Option<u64>,
}

impl StrategyArgs {
    /// Whether any flag was given.
    pub fn any(&self) -> bool {
        self.strategy.is_some() || self.max_concurrency.is_some() || self.per_second.is_some() || self.burst.is_some()
    }

    /// Refuses a `--strategy` that names no kind of `engine`.
    pub fn check_kind(&self, engine: &Engine) -> Result<(), String> {
        let Some(kind) = &self.strategy else { return Ok(()) };
        if engine.strategies().get(kind).is_some() {
            return Ok(());
        }
        let names = engine.strategies().names();
        let hint = flow_engine::core::did_you_mean(kind, names.iter().copied())
            .map(|h| format!(" (did you mean `{h}`?)"))
            .unwrap_or_default();
        Err(format!(
            "--strategy: unknown strategy `{kind}`{hint}; expected one of: {}",
            names.join(", ")
        ))
    }

    /// The `strategy:` section of `kind` the flags ask for, over the file's:
    /// options the flags do not give are kept from the file when the kind is the
    /// file's own.
    pub fn over(&self, kind: &str, file: Option<&StrategySpec>) -> StrategySpec {
        let mut spec = match file {
            Some(s) if s.kind == kind => s.clone(),
            _ => StrategySpec::new(kind),
        };
        if let Some(n) = self.max_concurrency {
            spec.options.insert("max_concurrency".to_owned(), n.into());
        }
        if let Some(r) = self.per_second {
            spec.options.insert("per_second".to_owned(), r.into());
        }
        if let Some(b) = self.burst {
            spec.options.insert("burst".to_owned(), b.into());
        }
        spec
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The workflow file (.yaml, .yml or .json).
    pub file: PathBuf,
    #[command(flatten)]
    pub strategy: StrategyArgs,
    /// The run's input as JSON, or @file.json to read it from a file (replaces the file's `input:`).
    #[arg(long, value_name = "JSON")]
    pub input: Option<String>,
    /// With --journal: return as soon as the run waits (a `wait` or `signal` node), parked in the journal (exit 0, the report's status `waiting`); a `flow serve` on the journal, or `flow resume RUN_ID`, takes it from there.
    #[arg(long)]
    pub detach: bool,
    /// Write the JSON report to PATH; `-` prints only the report to stdout.
    #[arg(long, value_name = "PATH")]
    pub report: Option<String>,
    /// Print only the final summary (no progress display).
    #[arg(short, long)]
    pub quiet: bool,
    /// Draw the run as a Gantt chart: a self-contained SVG file at PATH.
    #[arg(long, value_name = "PATH")]
    pub timeline: Option<PathBuf>,
    /// Write every event of the run to PATH, one JSON object per line.
    #[arg(long, value_name = "PATH")]
    pub events: Option<PathBuf>,
    #[command(flatten)]
    pub journal: JournalArgs,
    /// Where node attempts run: here (local), or on `flow worker`s through the PostgreSQL journal (queue).
    #[arg(long, value_name = "WHERE", value_enum, default_value_t = Dispatch::Local)]
    pub dispatch: Dispatch,
    #[command(flatten)]
    pub catalog: CatalogArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Where `workflow` nodes find the workflows they run.
#[derive(Debug, Clone, clap::Args)]
pub struct CatalogArgs {
    /// The folder whose workflow files `workflow` nodes run, by their `name` (default: the folder of FILE).
    #[arg(long, value_name = "DIR")]
    pub workflows: Option<PathBuf>,
}

impl CatalogArgs {
    /// The catalog for `file`: `--workflows DIR`, else the file's folder.
    pub fn catalog(&self, file: &Path) -> Arc<dyn flow_engine::Catalog> {
        let dir = match &self.workflows {
            Some(dir) => dir.clone(),
            None => match file.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            },
        };
        Arc::new(flow_engine::FolderCatalog::new(dir))
    }
}

#[derive(Debug, Args)]
pub struct TimelineArgs {
    /// A JSON report written by `flow run --report`.
    pub report: PathBuf,
    /// Where the SVG goes; without it, stdout.
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// Mermaid flowchart (renders in GitHub and GitLab Markdown).
    Mermaid,
    /// Graphviz DOT (`dot -Tsvg`).
    Dot,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The workflow file (.yaml, .yml or .json).
    pub file: PathBuf,
    /// The diagram's language.
    #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
    pub format: GraphFormat,
    /// Where the diagram goes; without it, stdout.
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The workflow file (.yaml, .yml or .json).
    pub file: PathBuf,
    /// Bound the strategies with these options (`--strategy` marks which row is the run's).
    #[command(flatten)]
    pub strategy: StrategyArgs,
    /// Measure durations in this journal's past runs of the workflow (a SQLite file or a postgres:// URL): each node's p50 and p95 there, the file's estimate where it never ran.
    #[arg(long, value_name = "TARGET")]
    pub journal: Option<String>,
    /// With --journal: how many of the newest finished runs to measure.
    #[arg(long, value_name = "N", default_value_t = 100, requires = "journal")]
    pub last: usize,
    #[command(flatten)]
    pub catalog: CatalogArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The workflow file (.yaml, .yml or .json).
    pub file: PathBuf,
    #[command(flatten)]
    pub catalog: CatalogArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Logs on stderr. With `-v` or `RUST_LOG`, each span is logged when it closes,
/// with its fields and timing: `run` at info, every `node` attempt at debug.
pub fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::fmt::format::FmtSpan;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let from_env = EnvFilter::try_from_default_env().ok();
    let spans = if verbose > 0 || from_env.is_some() {
        FmtSpan::CLOSE
    } else {
        FmtSpan::NONE
    };
    let filter = from_env.unwrap_or_else(|| EnvFilter::new(default));
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::progress::LogWriter)
        .with_target(false)
        .with_ansi(colour)
        .with_span_events(spans)
        .try_init();
}

pub async fn dispatch(cli: Cli) -> u8 {
    match cli.command {
        Command::Run(args) => crate::run::run(args).await,
        Command::Validate(args) => validate(&args),
        Command::Timeline(args) => crate::timeline::command(&args),
        Command::Graph(args) => crate::graph::command(&args),
        Command::Explain(args) => crate::explain::command(&args).await,
        Command::Demo(args) => crate::demo::command(&args).await,
        Command::Runs(RunsCommand::List(args)) => crate::runs::list(args).await,
        Command::Runs(RunsCommand::Show(args)) => crate::runs::show(args).await,
        Command::Resume(args) => crate::runs::resume(args).await,
        Command::Signal(args) => crate::runs::signal(args).await,
        Command::Serve(args) => serve(args).await,
        Command::Worker(args) => crate::worker::work(args).await,
        Command::Workers(WorkersCommand::List(args)) => crate::worker::list(args).await,
    }
}

/// Writes a command's text output to `path`, or to stdout without one.
pub fn write_output(path: Option<&Path>, text: &str, flag: &str) -> u8 {
    match path {
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) => EXIT_OK,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => EXIT_OK,
                Err(e) => {
                    eprintln!("error: cannot write to stdout: {e}");
                    EXIT_FAILED
                }
            }
        }
        Some(path) => match std::fs::write(path, text) {
            Ok(()) => EXIT_OK,
            Err(e) => {
                eprintln!("error: {flag}: cannot write {}: {e}", path.display());
                EXIT_USAGE
            }
        },
    }
}

/// Loads a workflow, printing every problem (with the offending line) on failure.
pub fn load(engine: &Engine, file: &Path) -> Result<std::sync::Arc<flow_engine::Workflow>, u8> {
    engine.load(file).map_err(|e| {
        report_load_error(file, &e);
        EXIT_USAGE
    })
}

/// The library names a limit (`the `max_nodes` limit`); the CLI says which
/// flag raises it.
pub(crate) fn with_flags(message: &str) -> String {
    message
        .replace("(the `max_nodes` limit)", "(raise it with --max-nodes)")
        .replace("(the `max_file_bytes` limit)", "(raise it with --max-file-bytes)")
        .replace("(the `max_depth` limit)", "(raise it with --max-depth)")
}

pub fn report_load_error(file: &Path, error: &flow_engine::Error) {
    let shown = file.display().to_string();
    match error {
        flow_engine::Error::Workflow(
            inner @ (flow_engine::core::Error::Parse(_) | flow_engine::core::Error::Invalid(_)),
        ) => {
            // Only a problem with a line needs the text, and then the file was read
            // within the size limit: a file refused for its size (or /dev/zero) is not read.
            let placed = inner.problems().iter().any(|p| p.line.is_some());
            let source = placed
                .then(|| std::fs::read(file).ok())
                .flatten()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let count = inner.problems().len();
            eprint!("{}", with_flags(&inner.render(&shown, &source)));
            eprintln!(
                "{shown}: {count} problem{} found; nothing ran",
                if count == 1 { "" } else { "s" }
            );
        }
        other => eprintln!("error: {other}"),
    }
}

fn validate(args: &ValidateArgs) -> u8 {
    let engine = Engine::builder()
        .limits(args.limits.limits())
        .catalog(args.catalog.catalog(&args.file))
        .build();
    match load(&engine, &args.file) {
        Ok(wf) => {
            let strategy = wf
                .strategy()
                .map_or("parallel (default)".to_owned(), |s| s.kind.to_string());
            println!(
                "{}: valid: workflow `{}`, {} nodes, {} edges, {} levels, strategy {strategy}",
                args.file.display(),
                wf.name(),
                wf.nodes().len(),
                wf.edges().len(),
                wf.levels().len(),
            );
            EXIT_OK
        }
        Err(code) => code,
    }
}

async fn serve(args: ServeArgs) -> u8 {
    let config = flow_serve::Config {
        listen: args.listen,
        workflows: args.workflows,
        journal: args.journal,
        sync: args.journal_sync.parse().unwrap_or_default(),
        token: std::env::var("FLOW_TOKEN").ok(),
        insecure: args.insecure,
        grace: args.grace,
        limits: args.limits.limits(),
        max_body_bytes: args.max_body_bytes,
        queue: args.dispatch == Dispatch::Queue,
        allowed_hosts: args.allowed_hosts,
        cookie_secure: args.cookie_secure,
        bounds: flow_serve::Bounds {
            max_connections: args.max_connections,
            header_timeout: args.header_timeout,
            stall_timeout: args.stall_timeout,
            max_event_streams: args.max_event_streams,
        },
    };
    match flow_serve::serve(config).await {
        Ok(()) => EXIT_OK,
        Err(flow_serve::ServeError::Usage(message)) => {
            eprintln!("error: {message}");
            EXIT_USAGE
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILED
        }
    }
}
