//! `flow`: run, validate and inspect workflow files.
//!
//! Exit codes: 0 the run succeeded (or the file is valid), 1 the run failed or was
//! cancelled, 2 bad usage or an invalid workflow (nothing ran).

mod cli;
mod demo;
mod explain;
mod graph;
mod progress;
mod run;
mod runs;
mod summary;
mod timeline;
mod worker;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_tracing(args.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = runtime.block_on(async move {
        // Everything runs inside a task on the multi-threaded runtime, never on the
        // thread that called `block_on`: waking that parked thread is slow.
        match tokio::spawn(cli::dispatch(args)).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: internal failure: {e}");
                cli::EXIT_USAGE
            }
        }
    });
    // Do not wait for stray blocking work (a node stuck in a blocking call).
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    ExitCode::from(code)
}
