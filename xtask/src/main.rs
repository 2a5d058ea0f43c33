//! `cargo xtask <command>`: the project's chores, in Rust so they run wherever cargo does.
//!
//! - `bench [--quick]`: runs the criterion benches in `benches/`, then prints one
//!   markdown summary of the headline figures (also written to
//!   `target/flow-bench/summary.md`). `--quick` is a short smoke run without the
//!   100k sizes.
//! - `gen-workflow --shape fan-out|chain|layered --nodes N [-o FILE]`: writes a large
//!   `noop` workflow as YAML, for measuring `flow run` on big graphs.
//! - `soak`: 100,000 short runs in a loop, checking that memory does not grow.
//! - `test [ARGS...]`: the README's test command: checks PostgreSQL, installs
//!   Chromium for the browser test when missing (as root), runs every test with
//!   `--no-fail-fast` and prints one summary line.

mod bench;
mod gen_workflow;
mod soak;
mod test;
mod tidy;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("bench") => bench::run(&args[1..]),
        Some("gen-workflow") => gen_workflow::run(&args[1..]),
        Some("soak") => soak::run(&args[1..]),
        Some("test") => test::run(&args[1..]),
        Some("help" | "--help" | "-h") | None => {
            println!(
                "usage: cargo xtask <bench [--quick] | gen-workflow --shape SHAPE --nodes N [-o FILE] | soak | test [ARGS...]>"
            );
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`; try `cargo xtask help`")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
