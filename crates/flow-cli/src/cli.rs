//! Command-line arguments and dispatch.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use flow_engine::{Engine, Limits};

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
    Run(RunArgs),
    /// Check a workflow file without running it.
    Validate(ValidateArgs),
}

#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Largest workflow file accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_file_bytes)]
    pub max_file_bytes: usize,
    /// Most nodes a workflow may have.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_nodes)]
    pub max_nodes: usize,
}

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_file_bytes: self.max_file_bytes,
            max_nodes: self.max_nodes,
            ..Limits::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The workflow file (.yaml, .yml or .json).
    pub file: PathBuf,
    /// Strategy for this run, replacing the file's: sequential, parallel, all-settled, rate-limited.
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
    /// The run's input as JSON, or @file.json to read it from a file (replaces the file's `input:`).
    #[arg(long, value_name = "JSON")]
    pub input: Option<String>,
    /// Write the JSON report to PATH; `-` prints only the report to stdout.
    #[arg(long, value_name = "PATH")]
    pub report: Option<String>,
    /// Print only the final summary.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The workflow file (.yaml, .yml or .json).
    pub file: PathBuf,
    #[command(flatten)]
    pub limits: LimitArgs,
}

pub fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

pub async fn dispatch(cli: Cli) -> u8 {
    match cli.command {
        Command::Run(args) => crate::run::run(args).await,
        Command::Validate(args) => validate(&args),
    }
}

/// Loads a workflow, printing every problem (with the offending line) on failure.
pub fn load(engine: &Engine, file: &Path) -> Result<std::sync::Arc<flow_engine::Workflow>, u8> {
    engine.load(file).map_err(|e| {
        report_load_error(file, &e);
        EXIT_USAGE
    })
}

pub fn report_load_error(file: &Path, error: &flow_engine::Error) {
    let shown = file.display().to_string();
    match error {
        flow_engine::Error::Workflow(
            inner @ (flow_engine::core::Error::Parse(_) | flow_engine::core::Error::Invalid(_)),
        ) => {
            let source = std::fs::read(file)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let count = inner.problems().len();
            eprint!("{}", inner.render(&shown, &source));
            eprintln!(
                "{shown}: {count} problem{} found; nothing ran",
                if count == 1 { "" } else { "s" }
            );
        }
        other => eprintln!("error: {other}"),
    }
}

fn validate(args: &ValidateArgs) -> u8 {
    let engine = Engine::builder().limits(args.limits.limits()).build();
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
