//! flow's plug-in API, through the public API only: a node kind written with
//! nothing but `flow_engine::kind::*`, and a strategy kind registered by the
//! embedder and named from a workflow file.
#![allow(clippy::unwrap_used)]

mod kind;
mod strategy;
mod truth;

/// Every problem of a rejected workflow, as `(place, message)`.
fn problems(result: flow_engine::Result<std::sync::Arc<flow_engine::Workflow>>) -> Vec<(String, String)> {
    match result {
        Ok(_) => panic!("the workflow was accepted"),
        Err(flow_engine::Error::Workflow(e)) => e
            .problems()
            .iter()
            .map(|p| (p.place.clone(), p.message.clone()))
            .collect(),
        Err(other) => panic!("not a validation error: {other}"),
    }
}

/// The places of a rejected workflow's problems, in order.
fn places(result: flow_engine::Result<std::sync::Arc<flow_engine::Workflow>>) -> Vec<String> {
    problems(result).into_iter().map(|(place, _)| place).collect()
}

/// Runs the calling test again in a child process with `name=value` in its
/// environment, where the engine reads declared secrets from (setting a
/// variable in this multi-threaded process would need `unsafe`, which the
/// workspace forbids). True in the child, which then runs the test's body; the
/// parent waits for the child, fails if it failed, and gets false.
fn in_child_with_env(test: &str, name: &str, value: &str) -> bool {
    if std::env::var(name).as_deref() == Ok(value) {
        return true;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(name, value)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the child run of {test} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    false
}
