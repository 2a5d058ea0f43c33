//! `flow runs` on a SQLite journal: what a list shows of a killed run, short
//! run ids, and where `runs show` answers.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{command, example, flow, tempdir, write};

fn listed(journal: &std::path::Path) -> Vec<Value> {
    let out = flow(
        ["runs", "list", "--json", "--journal"]
            .map(std::ffi::OsStr::new)
            .into_iter()
            .chain([journal.as_os_str()]),
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    match serde_json::from_str::<Value>(&out.stdout) {
        Ok(Value::Array(rows)) => rows,
        other => panic!("not a JSON array: {other:?}\n{out:?}"),
    }
}

#[test]
fn a_killed_run_is_listed_with_its_counts_and_a_duration_that_stopped() {
    let dir = tempdir();
    let file = write(
        &dir,
        "slow.yaml",
        "name: slow\nnodes:\n  - { id: a, kind: noop }\n  - { id: b, kind: delay, config: { ms: 60000 } }\n  - { id: c, kind: noop }\nedges:\n  - { from: a, to: b }\n  - { from: b, to: c }\n",
    );
    let journal = dir.path().join("runs.db");
    let mut child = command()
        .arg("run")
        .arg(&file)
        .arg("--quiet")
        .arg("--journal")
        .arg(&journal)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run flow: {e}"));
    // Until `b` has started: `a` succeeded, `b` running, `c` pending.
    let started = Instant::now();
    loop {
        if journal.exists()
            && let Some(row) = listed(&journal).first()
            && row["nodes"]["running"] == 1
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "b never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    let first = listed(&journal);
    std::thread::sleep(Duration::from_millis(400));
    let again = listed(&journal);
    let (row, later) = (&first[0], &again[0]);
    assert_eq!(row["status"], "interrupted", "{row}");
    assert_eq!(
        row["nodes"],
        json!({ "succeeded": 1, "running": 1, "pending": 1 }),
        "{row}"
    );
    assert_eq!(
        row["duration_ms"], later["duration_ms"],
        "an interrupted run's time stops at its last record"
    );
    assert!(row["duration_ms"].as_f64().is_some_and(|d| d < 10_000.0), "{row}");

    // The table shows the same counts.
    let out = flow([
        "runs".as_ref(),
        "list".as_ref(),
        "--journal".as_ref(),
        journal.as_os_str(),
    ]);
    assert!(out.stdout.contains("1 succeeded, 1 running, 1 pending"), "{out:?}");
}

#[test]
fn a_unique_prefix_names_a_run_and_an_ambiguous_one_lists_the_matches() {
    let dir = tempdir();
    let journal = dir.path().join("runs.db");
    for _ in 0..2 {
        let out = flow([
            "run".as_ref(),
            example("diamond.yaml").as_os_str(),
            "--quiet".as_ref(),
            "--journal".as_ref(),
            journal.as_os_str(),
        ]);
        assert_eq!(out.code, Some(0), "{out:?}");
    }
    let ids: Vec<String> = listed(&journal)
        .iter()
        .map(|r| r["run_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(ids.len(), 2);
    let show = |id: &str| {
        flow([
            "runs".as_ref(),
            "show".as_ref(),
            id.as_ref(),
            "--journal".as_ref(),
            journal.as_os_str(),
        ])
    };
    // The shortest prefix that tells the two apart, plus one character.
    let common = ids[0].chars().zip(ids[1].chars()).take_while(|(a, b)| a == b).count();
    let short = &ids[0][..common + 1];
    let out = show(short);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("run succeeded"), "the answer is on stdout: {out:?}");

    let out = show(&ids[0][..common]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("is ambiguous"), "{out:?}");
    for id in &ids {
        assert!(out.stderr.contains(id.as_str()), "{id} is not listed: {out:?}");
    }
    let out = show("zzzz");
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("no run `zzzz`"), "{out:?}");

    // `--report -`: stdout carries the report alone.
    let out = flow([
        "runs".as_ref(),
        "show".as_ref(),
        short.as_ref(),
        "--report".as_ref(),
        "-".as_ref(),
        "--journal".as_ref(),
        journal.as_os_str(),
    ]);
    assert_eq!(out.report()["run_id"], ids[0].as_str());
}

/// A `postgres://` journal where something else listens (it accepts and never
/// answers) fails within the URL's `connect_timeout`, exit 2, and the message
/// shows neither the user's password nor a `password=` parameter.
#[test]
fn a_journal_that_never_answers_fails_in_time_and_masks_passwords() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("an address").port();
    let held = std::thread::spawn(move || {
        // Accept, then say nothing until the test ends.
        let conns: Vec<_> = listener.incoming().take(2).filter_map(Result::ok).collect();
        std::thread::sleep(Duration::from_secs(8));
        drop(conns);
    });
    let url = format!("postgres://flow:secret1@127.0.0.1:{port}/db?password=secret2&connect_timeout=1");
    let started = Instant::now();
    let out = flow(["runs", "list", "--journal", &url]);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}: {out:?}",
        started.elapsed()
    );
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("no PostgreSQL answered within 1 s"), "{out:?}");
    assert!(
        out.stderr.contains("flow:***@") && out.stderr.contains("password=***"),
        "{out:?}"
    );
    assert!(
        !out.stderr.contains("secret1") && !out.stderr.contains("secret2"),
        "{out:?}"
    );
    drop(held);
}
