//! Observability of `flow`: progress and event lines, the timeline SVG, graph
//! diagrams, `explain`, and errors that point at their place. Runs the real binary.

mod errors;
mod explain;
mod graph;
mod progress;
mod timeline;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `flow` with `args` in `dir`; stdin is empty, stdout and stderr are pipes.
fn flow(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flow"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .output()
        .expect("the flow binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Writes `text` to `dir/name` and returns the path.
fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("the test can write its files");
    path
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary folder")
}

/// The repository's `examples/` folder.
fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name)
}
