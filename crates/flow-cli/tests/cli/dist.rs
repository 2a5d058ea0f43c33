//! Workers on other processes through the PostgreSQL queue (`--dispatch
//! queue`, `flow worker`), against the machine's PostgreSQL (each case in a
//! schema of its own; these tests fail, never skip, when it cannot be
//! reached): real `flow` processes, killed with SIGKILL where a case says so,
//! and a server in the test process that notes every request and its
//! `Idempotency-Key`.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::durable::{Backend, DEADLINE, Journal, Server, collect, flow, resume, run_id_of, shape, status_of};
use crate::support::{Out, command, tempdir, write};

/// `flow worker` processes of one case, killed when it ends; their logs in a folder.
struct Workers {
    journal: String,
    dir: TempDir,
    children: Vec<Child>,
}

impl Workers {
    fn new(journal: &Journal) -> Workers {
        Workers {
            journal: journal.target.clone(),
            dir: tempdir(),
            children: Vec::new(),
        }
    }

    /// Starts a worker with `more` flags; returns its index.
    fn start(&mut self, more: &[&str]) -> usize {
        let n = self.children.len();
        let log = std::fs::File::create(self.dir.path().join(format!("worker{n}.log")))
            .unwrap_or_else(|e| panic!("a log file for worker {n}: {e}"));
        let child = command()
            .args(["worker", "--journal", &self.journal])
            .args(more)
            .env("RUST_LOG", "flow_dist=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start flow worker: {e}"));
        self.children.push(child);
        n
    }

    /// SIGKILLs worker `n`.
    fn kill(&mut self, n: usize) {
        let child = &mut self.children[n];
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Every worker's log, for failure messages.
    fn logs(&self) -> String {
        (0..self.children.len())
            .map(|n| {
                let text = std::fs::read_to_string(self.dir.path().join(format!("worker{n}.log"))).unwrap_or_default();
                format!("--- worker {n}\n{text}")
            })
            .collect()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// A workflow file with `BASE` replaced by the server's address.
fn workflow(dir: &TempDir, server: &Server, yaml: &str) -> PathBuf {
    write(dir, "wf.yaml", yaml.replace("BASE", &server.base))
}

/// `flow run FILE --journal URL --dispatch queue --quiet --report -` and
/// `more`, started.
fn coordinator(file: &std::path::Path, journal: &Journal, more: &[&str]) -> Child {
    command()
        .args(["run".as_ref(), file.as_os_str()])
        .args([
            "--journal",
            &journal.target,
            "--dispatch",
            "queue",
            "--quiet",
            "--report",
            "-",
        ])
        .args(more)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run flow: {e}"))
}

/// Two coordinators of `file` at once (input `who` `a` and `b`); both must succeed.
fn two_coordinators(file: &std::path::Path, journal: &Journal, workers: &Workers) {
    let runs: Vec<Child> = ["a", "b"]
        .iter()
        .map(|who| coordinator(file, journal, &["--input", &format!("{{\"who\": \"{who}\"}}")]))
        .collect();
    for run in runs {
        succeeded(&collect(run), workers);
    }
}

/// Waits until `done` holds (checked every 20 ms), at most [`DEADLINE`], and
/// while `run` (when given) goes on.
fn wait_until(what: &str, mut run: Option<&mut Child>, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < DEADLINE, "waited {DEADLINE:?} for {what}");
        if let Some(child) = run.as_deref_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
            }
            panic!("the run ended ({status}) before {what}: {stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn succeeded(out: &Out, workers: &Workers) -> Value {
    assert_eq!(
        out.code,
        Some(0),
        "the run did not succeed: {out:?}\n{}",
        workers.logs()
    );
    out.report()
}

/// 50 `http` nodes: ten chains of five, side by side.
fn fifty() -> String {
    let mut yaml = String::from("name: fifty\nstrategy: { kind: parallel }\nnodes:\n");
    for i in 0..50 {
        let body = if i % 5 == 0 {
            format!("{{ i: {i} }}")
        } else {
            format!("{{ i: {i}, after: \"{{{{ nodes.n{}.output.body.got.i }}}}\" }}", i - 1)
        };
        yaml.push_str(&format!(
            "  - {{ id: n{i}, kind: http, config: {{ method: POST, url: \"BASE/echo/n{i}?ms=20\", body: {body} }} }}\n"
        ));
    }
    yaml.push_str("edges:\n");
    for i in 0..50 {
        if i % 5 != 4 {
            yaml.push_str(&format!("  - {{ from: n{i}, to: n{} }}\n", i + 1));
        }
    }
    yaml
}

#[test]
fn three_workers_run_fifty_http_nodes_as_a_local_run_does() {
    let server = Server::start();
    let dir = tempdir();
    let file = workflow(&dir, &server, &fifty());
    let journal = Journal::new(Backend::Postgres, "dist_fifty");
    let mut workers = Workers::new(&journal);
    for _ in 0..3 {
        workers.start(&["--concurrency", "4"]);
    }
    let queued = succeeded(&collect(coordinator(&file, &journal, &[])), &workers);
    let local = flow(&["run", &file.display().to_string(), "--quiet", "--report", "-"]);
    assert_eq!(local.code, Some(0), "{local:?}");
    assert_eq!(
        shape(&queued),
        shape(&local.report()),
        "the queued run's report differs from the local one"
    );
    // Every node ran once, with its key, from a worker.
    let run_id = run_id_of(&queued);
    let keys = server.log.of_run(&run_id);
    assert_eq!(keys.len(), 50, "{keys:?}");
    assert!(keys.values().all(|n| *n == 1), "a node ran twice: {keys:?}");
    // The workers are listed, alive, and have nothing left to run.
    let out = flow(&["workers", "list", "--journal", &journal.target, "--json"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let listed: Vec<Value> = serde_json::from_str(&out.stdout).unwrap_or_default();
    assert_eq!(listed.len(), 3, "{}", out.stdout);
    assert!(
        listed
            .iter()
            .all(|w| w["alive"] == true && w["running"] == serde_json::json!([])),
        "{}",
        out.stdout
    );
}

#[test]
fn a_task_of_a_killed_worker_runs_again_with_the_same_key() {
    let server = Server::start();
    let dir = tempdir();
    let file = workflow(
        &dir,
        &server,
        r#"name: lost
nodes:
  - { id: slow, kind: http, config: { method: POST, url: "BASE/hold/slow?ms=1500" } }
  - { id: after, kind: http, config: { method: POST, url: "BASE/echo/after", body: { from: "{{ nodes.slow.output.body.name }}" } } }
edges:
  - { from: slow, to: after }
"#,
    );
    let journal = Journal::new(Backend::Postgres, "dist_lost");
    let mut workers = Workers::new(&journal);
    let first = workers.start(&["--claim-ttl", "1s"]);
    let mut run = coordinator(&file, &journal, &[]);
    wait_until("the first worker to send `slow`", Some(&mut run), || {
        server.log.count("slow") == 1
    });
    workers.kill(first);
    workers.start(&["--claim-ttl", "1s"]);
    let report = succeeded(&collect(run), &workers);
    let run_id = run_id_of(&report);
    let key = Some(format!("{run_id}:slow"));
    assert_eq!(
        server.log.keys_of("slow"),
        vec![key.clone(), key],
        "`slow` is sent again, with the same key"
    );
    assert_eq!(server.log.count("after"), 1);
    assert_eq!(report["nodes"]["after"]["output"]["body"]["got"]["from"], "slow");
}

#[test]
fn a_run_whose_coordinator_was_killed_is_finished_by_another() {
    let server = Server::start();
    let dir = tempdir();
    let mut yaml = String::from("name: chain\nnodes:\n");
    for i in 0..6 {
        yaml.push_str(&format!(
            "  - {{ id: c{i}, kind: http, config: {{ method: POST, url: \"BASE/echo/c{i}?ms=250\" }} }}\n"
        ));
    }
    yaml.push_str("edges:\n");
    for i in 0..5 {
        yaml.push_str(&format!("  - {{ from: c{i}, to: c{} }}\n", i + 1));
    }
    let file = workflow(&dir, &server, &yaml);
    let journal = Journal::new(Backend::Postgres, "dist_coordinator");
    let mut workers = Workers::new(&journal);
    workers.start(&[]);
    let mut run = coordinator(&file, &journal, &[]);
    wait_until("the run to reach c2", Some(&mut run), || server.log.count("c2") == 1);
    let _ = run.kill();
    let _ = run.wait();
    let run_id = server.log.of_run_ids().into_iter().next().unwrap_or_default();
    assert!(!run_id.is_empty(), "no key seen");
    let out = resume(&run_id, &journal, &["--dispatch", "queue"]);
    let report = succeeded(&out, &workers);
    for i in 0..6 {
        assert_eq!(status_of(&report, &format!("c{i}")), "succeeded", "{report}");
    }
    let keys = server.log.of_run(&run_id);
    // Settled before the kill: sent once; in flight at the kill: at most twice.
    assert_eq!(keys.get(&format!("{run_id}:c0")), Some(&1), "{keys:?}");
    assert_eq!(keys.get(&format!("{run_id}:c1")), Some(&1), "{keys:?}");
    assert!(keys.values().all(|n| *n <= 2), "{keys:?}");
    assert_eq!(keys.len(), 6, "{keys:?}");
}

#[test]
fn fail_fast_cancels_the_task_a_worker_runs() {
    let server = Server::start();
    let dir = tempdir();
    let file = workflow(
        &dir,
        &server,
        r#"name: failfast
strategy: { kind: parallel }
nodes:
  - { id: slow, kind: http, config: { method: POST, url: "BASE/hold/slow?ms=10000" } }
  - { id: wait, kind: delay, config: { ms: 300 } }
  - { id: bad, kind: http, config: { method: GET, url: "BASE/no/such/path" } }
edges:
  - { from: wait, to: bad }
"#,
    );
    let journal = Journal::new(Backend::Postgres, "dist_failfast");
    let mut workers = Workers::new(&journal);
    workers.start(&[]);
    let started = Instant::now();
    let out = collect(coordinator(&file, &journal, &[]));
    let ended_run = Instant::now();
    assert_eq!(out.code, Some(1), "the run fails: {out:?}\n{}", workers.logs());
    let report = out.report();
    assert_eq!(status_of(&report, "bad"), "failed", "{report}");
    assert_eq!(status_of(&report, "slow"), "cancelled", "{report}");
    assert!(
        ended_run - started < Duration::from_secs(8),
        "the run waited for `slow`: {:?}",
        ended_run - started
    );
    // The worker dropped the request (it did not run to its 10 s).
    wait_until("the worker to drop `slow`", None, || !server.log.ended().is_empty());
    let ended = server.log.ended();
    assert_eq!(ended[0].name, "slow");
    assert!(!ended[0].answered, "`slow` was answered: {ended:?}");
    let after = ended[0].at.saturating_duration_since(ended_run);
    eprintln!(
        "`slow` dropped by its worker {:?} after the run started ({after:?} after it ended)",
        ended[0].at - started
    );
    assert!(after < Duration::from_secs(3), "dropped {after:?} after the run ended");
    assert!(
        ended[0].at - started < Duration::from_secs(6),
        "dropped late: {ended:?}"
    );
}

#[test]
fn a_worker_for_http_never_takes_a_delay_task() {
    let server = Server::start();
    let dir = tempdir();
    let file = workflow(
        &dir,
        &server,
        r#"name: kinds
nodes:
  - { id: h1, kind: http, config: { method: POST, url: "BASE/echo/h1" } }
  - { id: d1, kind: delay, config: { ms: 10 } }
  - { id: h2, kind: http, config: { method: POST, url: "BASE/echo/h2" } }
edges:
  - { from: d1, to: h2 }
"#,
    );
    let journal = Journal::new(Backend::Postgres, "dist_kinds");
    let mut workers = Workers::new(&journal);
    workers.start(&["--kinds", "http"]);
    let mut run = coordinator(&file, &journal, &[]);
    wait_until("h1 to be sent", Some(&mut run), || server.log.count("h1") == 1);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        matches!(run.try_wait(), Ok(None)),
        "the run finished without a worker for `delay`"
    );
    assert_eq!(server.log.count("h2"), 0, "h2 ran before d1 could");
    workers.start(&["--kinds", "delay"]);
    let report = succeeded(&collect(run), &workers);
    assert_eq!(status_of(&report, "h2"), "succeeded");
    // A worker for an unknown kind is refused at once.
    let out = flow(&["worker", "--journal", &journal.target, "--kinds", "htp"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("did you mean `http`"), "{}", out.stderr);
}

#[test]
fn a_limit_holds_across_two_coordinators() {
    let server = Server::start();
    let dir = tempdir();
    let mut yaml = String::from("name: limited\nlimits:\n  api: { per_second: 10 }\nnodes:\n");
    for i in 0..10 {
        yaml.push_str(&format!(
            "  - {{ id: n{i}, kind: http, limit: api, config: {{ method: POST, url: \"BASE/echo/api-{{{{ input.who }}}}-{i}\" }} }}\n"
        ));
    }
    let file = workflow(&dir, &server, &yaml);
    let journal = Journal::new(Backend::Postgres, "dist_limit");
    let mut workers = Workers::new(&journal);
    workers.start(&["--concurrency", "32"]);
    two_coordinators(&file, &journal, &workers);
    let mut times = server.log.times_of("api-");
    times.sort();
    assert_eq!(times.len(), 20);
    // 20 starts at 10/s, burst 1: 19 intervals of 100 ms between the first and
    // the last. Each coordinator alone would be done in 0.9 s.
    let span = times[19] - times[0];
    assert!(span >= Duration::from_millis(1_700), "20 starts in {span:?}");
    // And no second holds many more than 10: admissions are 100 ms apart, but a
    // request's way from its admission to the server varies on a busy machine,
    // so a late one may land next to the following ones.
    for (i, t) in times.iter().enumerate() {
        let within = times[i..]
            .iter()
            .take_while(|u| **u - *t < Duration::from_secs(1))
            .count();
        assert!(within <= 13, "{within} starts within a second of start {i}");
    }
}

#[test]
fn a_concurrency_cap_holds_across_two_coordinators() {
    let server = Server::start();
    let dir = tempdir();
    let mut yaml = String::from("name: capped\nlimits:\n  api: { max_concurrency: 2 }\nnodes:\n");
    for i in 0..4 {
        yaml.push_str(&format!(
            "  - {{ id: n{i}, kind: http, limit: api, config: {{ method: POST, url: \"BASE/hold/cap-{{{{ input.who }}}}-{i}?ms=300\" }} }}\n"
        ));
    }
    let file = workflow(&dir, &server, &yaml);
    let journal = Journal::new(Backend::Postgres, "dist_cap");
    let mut workers = Workers::new(&journal);
    workers.start(&["--concurrency", "32"]);
    two_coordinators(&file, &journal, &workers);
    // Each request's span at the server, and the most at once.
    let ended = server.log.ended();
    assert_eq!(ended.len(), 8, "{ended:?}");
    let spans: Vec<(Instant, Instant)> = ended
        .iter()
        .map(|e| {
            let start = server
                .log
                .time_of(&e.name)
                .unwrap_or_else(|| panic!("{} never came", e.name));
            (start, e.at)
        })
        .collect();
    let most = spans
        .iter()
        .map(|(start, _)| spans.iter().filter(|(s, e)| s <= start && start < e).count())
        .max()
        .unwrap_or(0);
    // Each coordinator alone allows 2: without sharing, 4 would run at once.
    assert!(most <= 2, "{most} requests at once under a cap of 2");
}

#[test]
fn queue_dispatch_and_workers_need_a_postgres_journal() {
    let dir = tempdir();
    let file = write(&dir, "wf.yaml", "name: w\nnodes:\n  - { id: a, kind: noop }\n");
    let sqlite = dir.path().join("runs.db").display().to_string();
    let out = flow(&[
        "run",
        &file.display().to_string(),
        "--journal",
        &sqlite,
        "--dispatch",
        "queue",
    ]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("PostgreSQL"), "{}", out.stderr);
    let out = flow(&["run", &file.display().to_string(), "--dispatch", "queue"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    let out = flow(&["worker", "--journal", &sqlite]);
    assert_eq!(out.code, Some(2), "{out:?}");
    let out = flow(&["worker", "--journal", "postgres://postgres@127.0.0.1:1/test"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("127.0.0.1:1"), "{}", out.stderr);
}

/// Runs `sql` on the machine's PostgreSQL as the tests' admin; the first
/// value of its last row, if any, as a number.
fn admin(sql: &str) -> Option<i64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(&flow_journal::test_pg_url(), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL is needed by this test: {e}"));
        tokio::spawn(connection);
        let messages = client.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        messages.iter().rev().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0)?.parse().ok(),
            _ => None,
        })
    })
}

/// Terminates every PostgreSQL connection named `name` (ours: letters,
/// digits, `_`); how many.
fn terminate(name: &str) -> i64 {
    admin(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '{name}'"
    ))
    .unwrap_or(0)
}

/// PostgreSQL drops every connection of a worker: it opens them again and
/// goes on working, without a restart.
#[test]
fn a_worker_whose_connections_were_dropped_opens_them_again() {
    let dir = tempdir();
    let file = write(
        &dir,
        "wf.yaml",
        "name: naps\nnodes:\n  - { id: a, kind: delay, config: { ms: 10 } }\n  - { id: b, kind: delay, config: { ms: 10 } }\nedges: [{ from: a, to: b }]\n",
    );
    let journal = Journal::new(Backend::Postgres, "dist_reconnect");
    let name = format!("flow_worker_{}", std::process::id());
    let mut workers = Workers::new(&journal);
    workers.journal = format!("{}&application_name={name}", journal.target);
    let n = workers.start(&[]);
    succeeded(&collect(coordinator(&file, &journal, &[])), &workers);
    let killed = terminate(&name);
    assert!(killed >= 2, "the worker's connections: {killed}");
    std::thread::sleep(Duration::from_millis(200));
    succeeded(&collect(coordinator(&file, &journal, &[])), &workers);
    assert!(
        matches!(workers.children[n].try_wait(), Ok(None)),
        "the worker is still up\n{}",
        workers.logs()
    );
    assert!(workers.logs().contains("opened again"), "{}", workers.logs());
}

/// A worker that cannot reach PostgreSQL for longer than its claim TTL exits
/// with an error (exit 1), for its supervisor to start it again, instead of
/// staying up doing nothing.
#[test]
fn a_worker_that_cannot_reach_postgres_past_its_claim_ttl_exits() {
    let journal = Journal::new(Backend::Postgres, "dist_give_up");
    let schema = journal
        .target
        .split("search_path%3D")
        .nth(1)
        .map(|s| s.split('&').next().unwrap_or(s).to_owned())
        .unwrap_or_else(|| panic!("a schema in {}", journal.target));
    let role = format!("flow_gone_{}", std::process::id());
    admin(&format!(
        "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN; GRANT ALL ON SCHEMA \"{schema}\" TO {role};"
    ));
    let base = flow_journal::test_pg_url();
    let rest = base.split_once("://").map_or(base.as_str(), |(_, r)| r);
    let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
    let sep = if rest.contains('?') { '&' } else { '?' };
    let mut workers = Workers::new(&journal);
    workers.journal =
        format!("postgres://{role}@{rest}{sep}options=-c%20search_path%3D{schema}&application_name={role}");
    let n = workers.start(&["--claim-ttl", "1s"]);
    wait_until("the worker to start", None, || {
        workers.logs().contains("worker started")
    });
    admin(&format!("ALTER ROLE {role} NOLOGIN"));
    terminate(&role);
    let started = Instant::now();
    let status = loop {
        if let Ok(Some(status)) = workers.children[n].try_wait() {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(20) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let logs = workers.logs();
    admin(&format!("DROP OWNED BY {role}; DROP ROLE {role}"));
    let status = status.unwrap_or_else(|| panic!("the worker stayed up\n{logs}"));
    assert_eq!(status.code(), Some(1), "{logs}");
    assert!(logs.contains("claim TTL"), "{logs}");
}

/// A coordinator whose task no live worker takes says so on stderr within a
/// few seconds, keeps waiting, and the run succeeds once a worker comes.
#[test]
fn a_coordinator_says_when_no_live_worker_takes_its_tasks() {
    use std::io::BufRead;
    let dir = tempdir();
    let file = write(
        &dir,
        "wf.yaml",
        "name: lonely\nnodes:\n  - { id: nap, kind: delay, config: { ms: 10 } }\n",
    );
    let journal = Journal::new(Backend::Postgres, "dist_unserved");
    let mut workers = Workers::new(&journal);
    let mut run = coordinator(&file, &journal, &[]);
    let stderr = run.stderr.take().unwrap_or_else(|| panic!("the coordinator's stderr"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let said = loop {
        match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(line) if line.contains("no live `flow worker` takes `delay` tasks") => break line,
            Ok(_) => continue,
            Err(e) => panic!("the coordinator never said it: {e}"),
        }
    };
    assert!(said.contains("until one that takes `delay` starts"), "{said}");
    assert!(matches!(run.try_wait(), Ok(None)), "it keeps waiting");
    workers.start(&[]);
    let out = collect(run);
    let report = succeeded(&out, &workers);
    // The run's journal (so its event stream) says it too, for its attempt.
    let run_id = report["run_id"].as_str().unwrap_or_default().to_owned();
    let records = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(async {
            let journal = flow_journal::open(&journal.target, flow_journal::SyncLevel::Full)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            journal
                .records_after(&run_id, 0)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        });
    let notices: Vec<_> = records
        .iter()
        .filter_map(|(_, r)| match r {
            flow_engine::core::Record::Notice {
                node, attempt, message, ..
            } => Some((node.clone(), *attempt, message.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(notices.len(), 1, "{records:?}");
    assert_eq!((notices[0].0.as_str(), notices[0].1), ("nap", 1));
    assert!(
        notices[0].2.contains("no live `flow worker` takes `delay` tasks"),
        "{notices:?}"
    );
}
