//! `flow demo`: the seed's benchmark, reproduced.

use clap::Args;
use flow_demo::{DelayServer, DemoShape};
use flow_engine::Engine;

use crate::cli::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many parallel HTTP calls.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub branches: usize,
    /// Each call's server-side delay, in ms.
    #[arg(long, value_name = "D", default_value_t = 200)]
    pub delay_ms: u64,
    /// Timed runs per strategy (after one warm-up run); the table shows the median.
    #[arg(long, value_name = "K", default_value_t = 3)]
    pub runs: usize,
}

pub async fn command(args: &DemoArgs) -> u8 {
    if args.branches == 0 || args.branches > 10_000 {
        eprintln!("error: --branches must be between 1 and 10000");
        return EXIT_USAGE;
    }
    if args.delay_ms == 0 || args.delay_ms > 60_000 {
        eprintln!("error: --delay-ms must be between 1 and 60000");
        return EXIT_USAGE;
    }
    if args.runs == 0 || args.runs > 100 {
        eprintln!("error: --runs must be between 1 and 100");
        return EXIT_USAGE;
    }
    let server = match DelayServer::start().await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: cannot start the delay server on 127.0.0.1: {e}");
            return EXIT_FAILED;
        }
    };
    let shape = DemoShape {
        branches: args.branches,
        delay_ms: args.delay_ms,
    };
    eprintln!(
        "flow demo: delay server on http://{}; running {} strategies x {} runs...",
        server.addr(),
        4,
        args.runs + 1
    );
    let engine = Engine::new();
    match flow_demo::run(&engine, &server, shape, args.runs).await {
        Ok(rows) => {
            print!("{}", flow_demo::render_table(shape, &rows));
            EXIT_OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILED
        }
    }
}
