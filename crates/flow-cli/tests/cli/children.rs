//! Sub-workflows through the `flow` binary: a `workflow` node runs another
//! workflow of its folder as a child run and outputs the child's `output`;
//! `for_each` fans out one child per item under the node's cap; a child's
//! failure fails the node; unknown names are exit 2; a workflow that calls
//! itself stops at the depth limit; a parent killed while its child runs is
//! resumed with the same child (SQLite and PostgreSQL); a cancelled parent
//! cancels its child.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::durable::{Backend, Journal, Server, collect, flow, resume, run_id_of, spawn};
use crate::support::{tempdir, write};

const CHARGE: &str = "name: charge
input: { order: { id: 0, amount: 0 } }
nodes:
  - { id: price, kind: transform, config: { output: { cents: '{{ input.order.amount * 100 }}' } } }
  - { id: receipt, kind: transform, config: { output: 'order {{ input.order.id }} charged' } }
edges: [{ from: price, to: receipt }]
output: { order: '{{ input.order.id }}', cents: '{{ nodes.price.output.cents }}', receipt: '{{ nodes.receipt.output }}' }
";

const ORDERS: &str = "name: orders
input: { orders: [ { id: 1, amount: 5 }, { id: 2, amount: 7 } ] }
nodes:
  - id: charge
    kind: workflow
    for_each: '{{ input.orders }}'
    config: { workflow: charge, input: { order: '{{ item }}' } }
  - { id: default, kind: workflow, config: { workflow: charge } }
output: { charged: '{{ nodes.charge.output }}', first: '{{ nodes.charge.output[0].receipt }}' }
";

/// `flow run FILE --quiet --report -` with `more` flags.
fn run(file: &Path, more: &[&str]) -> crate::support::Out {
    let mut args = vec!["run".to_owned(), file.display().to_string()];
    args.extend(more.iter().map(|s| (*s).to_owned()));
    args.extend(["--quiet".into(), "--report".into(), "-".into()]);
    crate::support::flow(&args)
}

#[test]
fn a_parent_reads_its_childs_output_and_each_child_names_its_parent() {
    let dir = tempdir();
    write(&dir, "charge.yaml", CHARGE);
    let orders = write(&dir, "orders.yaml", ORDERS);
    let out = run(&orders, &[]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let report = out.report();
    assert_eq!(
        report["output"],
        json!({
            "charged": [
                { "order": 1, "cents": 500, "receipt": "order 1 charged" },
                { "order": 2, "cents": 700, "receipt": "order 2 charged" },
            ],
            "first": "order 1 charged",
        })
    );
    // Without `input`, the child runs with its own default input.
    assert_eq!(
        report["nodes"]["default"]["output"]["receipt"], "order 0 charged",
        "{report}"
    );
    let child = report["nodes"]["default"]["child_run_id"].as_str().unwrap_or_default();
    assert_eq!(child.len(), 36, "{report}");
    let items: Vec<&str> = report["nodes"]["charge"]["item_runs"]
        .as_array()
        .map(|runs| runs.iter().filter_map(|r| r["child_run_id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(items.len(), 2, "{report}");
    assert!(items[0] != items[1] && items[0] != child, "{report}");

    // Journaled: each child is a run of its own, listed with its parent.
    let journal = dir.path().join("runs.db").display().to_string();
    let out = run(&orders, &["--journal", &journal]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let parent = run_id_of(&out.report());
    let listed = flow(&["runs", "list", "--journal", &journal, "--json"]);
    assert_eq!(listed.code, Some(0), "{listed:?}");
    let rows: Vec<Value> = serde_json::from_str(&listed.stdout).unwrap_or_default();
    let children: Vec<&Value> = rows.iter().filter(|r| r["workflow"] == "charge").collect();
    assert_eq!(children.len(), 3, "{rows:?}");
    for row in &children {
        assert_eq!(row["parent"]["run_id"], parent.as_str(), "{row}");
        assert_eq!(row["status"], "succeeded", "{row}");
    }
    let mut items: Vec<i64> = children
        .iter()
        .filter(|r| r["parent"]["node"] == "charge")
        .filter_map(|r| r["parent"]["item"].as_i64())
        .collect();
    items.sort_unstable();
    assert_eq!(items, vec![0, 1], "{rows:?}");
    let top = rows.iter().find(|r| r["workflow"] == "orders");
    assert_eq!(top.map(|r| &r["parent"]), Some(&Value::Null), "{rows:?}");
    let top = flow(&["runs", "list", "--journal", &journal, "--json", "--top-level"]);
    let top: Vec<Value> = serde_json::from_str(&top.stdout).unwrap_or_default();
    assert_eq!(top.len(), 1, "--top-level leaves child runs out: {top:?}");
    assert_eq!(top[0]["run_id"], parent.as_str());
    let child = children[0]["run_id"].as_str().unwrap_or_default();
    let shown = flow(&["runs", "show", child, "--journal", &journal, "--report", "-"]);
    assert_eq!(shown.report()["parent"]["run_id"], parent.as_str(), "{shown:?}");
}

#[test]
fn for_each_over_a_child_workflow_holds_its_cap() {
    let server = Server::start();
    let dir = tempdir();
    write(
        &dir,
        "slow.yaml",
        format!(
            "name: slow
input: {{ n: 0 }}
nodes:
  - {{ id: call, kind: http, config: {{ url: '{}/hold/c{{{{ input.n }}}}?ms=150' }} }}
",
            server.base
        ),
    );
    let parent = write(
        &dir,
        "fan.yaml",
        "name: fan
nodes:
  - id: each
    kind: workflow
    for_each: '{{ [0, 1, 2, 3, 4, 5] }}'
    max_concurrency: 2
    config: { workflow: slow, input: { n: '{{ item }}' } }
",
    );
    let out = run(&parent, &[]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.report()["nodes"]["each"]["items"]["succeeded"], 6);
    let starts = server.log.times_of("c");
    let ends: Vec<Instant> = server.log.ended().into_iter().map(|e| e.at).collect();
    assert_eq!((starts.len(), ends.len()), (6, 6));
    let most = starts
        .iter()
        .map(|&at| starts.iter().filter(|&&s| s <= at).count() - ends.iter().filter(|&&e| e <= at).count())
        .max()
        .unwrap_or(0);
    assert!(most <= 2, "{most} children ran at once under max_concurrency 2");
}

#[test]
fn a_child_failure_fails_the_parent_node_with_the_childs_error() {
    let dir = tempdir();
    write(
        &dir,
        "charge.yaml",
        "name: charge
nodes:
  - { id: card, kind: fail, config: { message: card declined } }
",
    );
    let parent = write(
        &dir,
        "order.yaml",
        "name: order
nodes:
  - { id: pay, kind: workflow, config: { workflow: charge } }
  - { id: ship, kind: noop }
edges: [{ from: pay, to: ship }]
",
    );
    let out = run(&parent, &[]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let report = out.report();
    let child = report["nodes"]["pay"]["child_run_id"].as_str().unwrap_or_default();
    assert_eq!(
        report["nodes"]["pay"]["error"],
        format!("child run {child} failed: node `card`: card declined"),
        "{report}"
    );
    assert_eq!(report["nodes"]["ship"]["status"], "upstream_failed", "{report}");
}

#[test]
fn an_unknown_child_is_exit_2_with_its_place_and_a_did_you_mean() {
    let dir = tempdir();
    write(&dir, "charge.yaml", CHARGE);
    let parent = write(
        &dir,
        "order.yaml",
        "name: order
nodes:
  - { id: pay, kind: workflow, config: { workflow: chrage } }
",
    );
    for command in ["run", "validate"] {
        let out = flow(&[command, &parent.display().to_string()]);
        assert_eq!(out.code, Some(2), "{command}: {out:?}");
        assert!(
            out.stderr
                .contains("nodes[0].config.workflow: no workflow `chrage`; did you mean `charge`?"),
            "{command}: {out:?}"
        );
    }
    // `flow graph` marks the node with what it runs.
    let good = write(
        &dir,
        "good.yaml",
        "name: good\nnodes:\n  - { id: pay, kind: workflow, config: { workflow: charge } }\n",
    );
    let graph = flow(&["graph", &good.display().to_string(), "--format", "mermaid"]);
    assert_eq!(graph.code, Some(0), "{graph:?}");
    assert!(graph.stdout.contains("pay<br/>workflow ▸ charge"), "{graph:?}");
    // Another folder holds it: `--workflows DIR`.
    let other = tempdir();
    write(&other, "charge.yaml", CHARGE.replace("name: charge", "name: chrage"));
    let out = run(&parent, &["--workflows", &other.path().display().to_string()]);
    assert_eq!(out.code, Some(0), "{out:?}");
}

#[test]
fn a_workflow_that_calls_itself_stops_at_the_depth_limit() {
    let dir = tempdir();
    let file = write(
        &dir,
        "again.yaml",
        "name: again
nodes:
  - { id: deeper, kind: workflow, config: { workflow: again } }
",
    );
    let started = Instant::now();
    let out = run(&file, &[]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let error = out.report()["nodes"]["deeper"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("nested 17 deep, beyond the limit of 16 runs"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// A parent whose child makes a quick request, then a slow one.
fn killable(dir: &tempfile::TempDir, server: &Server, slow_ms: u64) -> std::path::PathBuf {
    write(
        dir,
        "child.yaml",
        format!(
            "name: child
nodes:
  - {{ id: quick, kind: http, config: {{ method: POST, url: '{0}/echo/quick' }} }}
  - {{ id: slow, kind: http, config: {{ method: POST, url: '{0}/hold/slow?ms={1}' }} }}
edges: [{{ from: quick, to: slow }}]
output: '{{{{ nodes.slow.output.body.name }}}}'
",
            server.base, slow_ms
        ),
    );
    write(
        dir,
        "parent.yaml",
        format!(
            "name: parent
nodes:
  - {{ id: first, kind: http, config: {{ method: POST, url: '{0}/echo/first' }} }}
  - {{ id: sub, kind: workflow, config: {{ workflow: child }} }}
edges: [{{ from: first, to: sub }}]
output: '{{{{ nodes.sub.output }}}}'
",
            server.base
        ),
    )
}

/// Waits until the server saw a request named `name`.
fn wait_for_request(server: &Server, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.log.count(name) == 0 {
        assert!(Instant::now() < deadline, "no `{name}` request came");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `flow resume PARENT` finishes the parent of [`killable`] with the child it
/// had: the child's output, one child run, its settled node run once.
fn resumed_with_the_same_child(server: &Server, journal: &Journal, parent_id: &str) -> String {
    let out = resume(parent_id, journal, &[]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let report = out.report();
    assert_eq!(report["output"], "slow", "{report}");
    let child_id = report["nodes"]["sub"]["child_run_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        server.log.of_run_ids(),
        vec![parent_id.to_owned(), child_id.clone()],
        "one child run"
    );
    assert_eq!(server.log.count("first"), 1, "the parent's settled node ran once");
    assert_eq!(server.log.count("quick"), 1, "the child's settled node ran once");
    child_id
}

/// A journaled `flow run` of [`killable`]'s parent, once its child's slow
/// request (`slow_ms` long) has come: the server, the folder, the journal and
/// the process.
fn while_the_child_runs(
    backend: Backend,
    name: &str,
    slow_ms: u64,
) -> (Server, tempfile::TempDir, Journal, std::process::Child) {
    let server = Server::start();
    let dir = tempdir();
    let parent = killable(&dir, &server, slow_ms);
    let journal = Journal::new(backend, name);
    let child = spawn(&[
        "run",
        &parent.display().to_string(),
        "--journal",
        &journal.target,
        "--quiet",
        "--report",
        "-",
    ]);
    wait_for_request(&server, "slow");
    (server, dir, journal, child)
}

/// `kill SIGNAL PID` of `child`.
fn send(child: &std::process::Child, signal: &str) {
    let pid = child.id().to_string();
    let sent = std::process::Command::new("kill").args([signal, &pid]).status();
    assert!(sent.is_ok_and(|s| s.success()), "kill {signal} {pid}");
}

fn parent_killed_while_its_child_runs_is_resumed_with_the_same_child(backend: Backend) {
    let (server, _dir, journal, child) = while_the_child_runs(backend, "child_kill", 1500);
    // SIGKILL: nothing of the process runs after it.
    send(&child, "-9");
    let out = collect(child);
    assert_eq!(out.code, None, "killed: {out:?}");
    let parent_id = server.log.of_run_ids().first().cloned().unwrap_or_default();

    let child_id = resumed_with_the_same_child(&server, &journal, &parent_id);
    let slow = server.log.keys_of("slow");
    assert!(
        slow.iter().all(|k| k.as_deref() == Some(&format!("{child_id}:slow"))),
        "the node in flight at the kill is sent again with the same key: {slow:?}"
    );
}

#[test]
fn a_parent_killed_while_its_child_runs_is_resumed_with_the_same_child_sqlite() {
    parent_killed_while_its_child_runs_is_resumed_with_the_same_child(Backend::Sqlite);
}

#[test]
fn a_parent_killed_while_its_child_runs_is_resumed_with_the_same_child_postgres() {
    parent_killed_while_its_child_runs_is_resumed_with_the_same_child(Backend::Postgres);
}

/// Ctrl-C on an attached parent whose child runs in the same process: the
/// child is work under way, so the parent is cancelled (not parked), and its
/// child with it, its end journaled.
fn ctrl_c_cancels_a_parent_and_its_child(backend: Backend) {
    let (server, _dir, journal, child) = while_the_child_runs(backend, "child_cancel", 5000);
    let asked = Instant::now();
    send(&child, "-INT");
    let out = collect(child);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.report()["status"], "cancelled", "{out:?}");
    // The child's slow request was dropped, well before its 5 s.
    let ended = server.log.ended();
    assert!(
        ended
            .iter()
            .any(|e| e.name == "slow" && !e.answered && e.at.duration_since(asked) < Duration::from_secs(3)),
        "{ended:?}"
    );
    let listed = flow(&["runs", "list", "--journal", &journal.target, "--json"]);
    let rows: Vec<Value> = serde_json::from_str(&listed.stdout).unwrap_or_default();
    let statuses: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["workflow"].as_str().unwrap_or_default().to_owned(),
                r["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(statuses.contains(&("child".into(), "cancelled".into())), "{statuses:?}");
    assert!(
        statuses.contains(&("parent".into(), "cancelled".into())),
        "{statuses:?}"
    );
}

#[test]
fn ctrl_c_cancels_a_parent_and_its_child_sqlite() {
    ctrl_c_cancels_a_parent_and_its_child(Backend::Sqlite);
}

#[test]
fn ctrl_c_cancels_a_parent_and_its_child_postgres() {
    ctrl_c_cancels_a_parent_and_its_child(Backend::Postgres);
}

#[test]
fn a_retried_workflow_node_continues_the_same_child_and_runs_only_its_failed_nodes() {
    let server = Server::start();
    let dir = tempdir();
    write(
        &dir,
        "child.yaml",
        format!(
            "name: child
nodes:
  - {{ id: ok, kind: http, config: {{ method: POST, url: '{0}/echo/ok' }} }}
  - {{ id: shaky, kind: http, config: {{ method: POST, url: '{0}/flaky/shaky' }} }}
edges: [{{ from: ok, to: shaky }}]
output: '{{{{ nodes.shaky.output.body.name }}}}'
",
            server.base
        ),
    );
    let parent = write(
        &dir,
        "parent.yaml",
        "name: parent
nodes:
  - { id: sub, kind: workflow, retry: { max_attempts: 2, backoff_ms: 10 }, config: { workflow: child } }
output: '{{ nodes.sub.output }}'
",
    );
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let journal = Journal::new(backend, "child_retry");
        let before = server.log.of_run_ids().len();
        let out = run(&parent, &["--journal", &journal.target]);
        assert_eq!(out.code, Some(0), "{out:?}");
        let report = out.report();
        assert_eq!(report["output"], "shaky", "{report}");
        assert_eq!(report["nodes"]["sub"]["attempts"], 2, "{report}");
        let child = report["nodes"]["sub"]["child_run_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let ids = server.log.of_run_ids();
        assert_eq!(
            ids[before..],
            *std::slice::from_ref(&child),
            "one child run for both attempts"
        );
        let keys = server.log.of_run(&child);
        assert_eq!(
            keys.get(&format!("{child}:ok")),
            Some(&1),
            "the child's succeeded node ran once: {keys:?}"
        );
        assert_eq!(keys.get(&format!("{child}:shaky")), Some(&2), "{keys:?}");
    }
}

#[test]
fn explain_bounds_a_workflow_node_by_its_childs_own_plan() {
    let dir = tempdir();
    write(
        &dir,
        "steps.yaml",
        "name: steps
strategy: { kind: sequential }
nodes:
  - { id: a, kind: delay, config: { ms: 200 } }
  - { id: b, kind: delay, config: { ms: 300 } }
",
    );
    let parent = write(
        &dir,
        "caller.yaml",
        "name: caller
nodes:
  - { id: first, kind: delay, config: { ms: 100 } }
  - { id: sub, kind: workflow, config: { workflow: steps } }
  - { id: again, kind: workflow, config: { workflow: caller } }
edges: [{ from: first, to: sub }]
",
    );
    let out = flow(&["explain", &parent.display().to_string()]);
    assert_eq!(out.code, Some(0), "{out:?}");
    // The child's two steps one after the other, under its own strategy.
    assert!(out.stdout.contains("sub    workflow  500 ms"), "{}", out.stdout);
    assert!(
        out.stdout.contains("critical path: first -> sub (600 ms)"),
        "{}",
        out.stdout
    );
    // A workflow that calls itself has no bound, and explain ends.
    assert!(out.stdout.contains("again  workflow  unknown"), "{}", out.stdout);
}

#[test]
fn a_parents_secret_passed_to_its_child_stays_secret_in_the_childs_report_and_journal() {
    const SECRET: &str = "s3cr3t-token-98765";
    let dir = tempdir();
    write(
        &dir,
        "echo.yaml",
        "name: echo
input: { token: none }
nodes:
  - { id: use, kind: transform, config: { output: 'Bearer {{ input.token }}' } }
output: '{{ nodes.use.output }}'
",
    );
    let parent = write(
        &dir,
        "parent.yaml",
        "name: parent
secrets: [API_TOKEN]
nodes:
  - { id: sub, kind: workflow, config: { workflow: echo, input: { token: '{{ env.API_TOKEN }}' } } }
output: '{{ nodes.sub.output }}'
",
    );
    let journal = dir.path().join("runs.db");
    let out = crate::support::command()
        .args([
            "run",
            &parent.display().to_string(),
            "--journal",
            &journal.display().to_string(),
        ])
        .args(["--quiet", "--report", "-"])
        .env("API_TOKEN", SECRET)
        .output()
        .unwrap_or_else(|e| panic!("cannot run flow: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap_or_default();
    // The child got the real value (it worked with it); nobody sees it.
    assert_eq!(report["output"], "Bearer ***", "{report}");
    assert!(!stdout.contains(SECRET), "{stdout}");
    let child = report["nodes"]["sub"]["child_run_id"].as_str().unwrap_or_default();
    let shown = flow(&[
        "runs",
        "show",
        child,
        "--journal",
        &journal.display().to_string(),
        "--report",
        "-",
    ]);
    assert!(
        !shown.stdout.contains(SECRET) && shown.stdout.contains("Bearer ***"),
        "{shown:?}"
    );
    for file in ["runs.db", "runs.db-wal"] {
        let bytes = std::fs::read(dir.path().join(file)).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(SECRET), "{file} holds the secret");
    }
}
