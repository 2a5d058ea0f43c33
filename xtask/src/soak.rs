//! `cargo xtask soak`: the engine's soak test (100,000 short runs on one engine,
//! resident memory sampled every 10,000) in release mode, where it takes a few
//! seconds. It is `#[ignore]`d in the normal test run so CI stays fast.

use std::process::Command;

/// Runs the soak test; extra arguments go to the test binary (e.g. `--exact`).
pub fn run(args: &[String]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(&cargo)
        .args(["test", "--release", "-p", "flow-engine", "--test", "load", "--"])
        .args(["--ignored", "--nocapture", "load::soak_of_100_000_runs_shows_no_growth"])
        .args(args)
        .status()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the soak test failed ({status})"))
    }
}
