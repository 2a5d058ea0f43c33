//! The journal goes away and comes back: PostgreSQL terminates every
//! connection of the server (`pg_terminate_backend`) while a run is under way.
//! The server reconnects: the run goes on and finishes, nothing is written
//! twice, new submits and reads work, and `/healthz` says ok again.

use std::time::Duration;

use serde_json::json;

use crate::support::{Dirs, Flow, Schema, Start};

const SLOW: &str = "name: slow\nnodes:\n  - { id: first, kind: noop }\n  - { id: nap, kind: delay, config: { ms: 1500 } }\n  - { id: last, kind: noop }\nedges: [{ from: first, to: nap }, { from: nap, to: last }]\n";

/// Terminates every connection whose application name is `name`; how many.
async fn terminate(name: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(&flow_journal::test_pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is needed by this test: {e}"));
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            &[&name],
        )
        .await
        .unwrap_or_else(|e| panic!("terminating the server's connections: {e}"));
    row.get(0)
}

/// `/healthz` once it answers 503, or its last answer after `within`.
async fn healthz_once_down(flow: &Flow, within: Duration) -> crate::support::Resp {
    let deadline = std::time::Instant::now() + within;
    loop {
        let health = flow.get("/healthz").await;
        if health.status == 503 || std::time::Instant::now() > deadline {
            return health;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A server on `journal` with a run of `slow` in its `nap`: the server and the run.
async fn slow_run_under_way(dirs: &Dirs, journal: &str) -> (Flow, String) {
    let flow = Flow::start_with(
        dirs,
        Start {
            journal: Some(journal),
            ..Start::default()
        },
    );
    let started = flow.submit("slow", "", &json!({})).await;
    let id = started["run_id"].as_str().unwrap_or_default().to_owned();
    flow.wait_report(&id, "node `nap` running", |r| r["nodes"]["nap"]["status"] == "running")
        .await;
    (flow, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_postgres_connection_is_opened_again() {
    let (url, _schema) = Schema::fresh("t_serve_outage").await;
    let name = format!("flow_outage_{}", std::process::id());
    let url = format!("{url}&application_name={name}");
    let dirs = Dirs::with(&[("slow.yaml", SLOW)]);
    let (flow, id) = slow_run_under_way(&dirs, &url).await;
    let killed = terminate(&name).await;
    assert!(killed >= 2, "the server's write and read connections: {killed}");
    // The run goes on: its next records wait for the new connection.
    let report = flow.wait_status(&id, "succeeded").await;
    assert_eq!(report["nodes"]["last"]["status"], "succeeded", "{report}");
    // Each record once: one start of each node in the event stream.
    let events = flow.events(&id, None).await;
    let starts = events.iter().filter(|e| e.event == "node_started").count();
    assert_eq!(starts, 3, "{events:?}");
    let seqs: Vec<String> = events.iter().filter_map(|e| e.id.clone()).collect();
    let expected: Vec<String> = (1..=seqs.len()).map(|n| n.to_string()).collect();
    assert_eq!(seqs, expected, "numbered without a gap or a repeat");
    // Once more, between runs: the next submit and read reconnect at once.
    terminate(&name).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let again = flow.submit("slow", "?wait=20", &json!({})).await;
    assert_eq!(again["status"], "succeeded", "{again}");
    let list = flow.get("/api/v1/runs").await.json();
    assert_eq!(list["runs"].as_array().map(Vec::len), Some(2), "{list}");
    let health = flow.get("/healthz").await;
    assert_eq!(health.status, 200, "{health:?}");
    assert!(!flow.stderr().contains("panicked"), "{}", flow.stderr());
}

/// While PostgreSQL refuses the server (its role may not log in), `/healthz`
/// is a 503 with the reason and the run waits; when it may again, the run
/// goes on and finishes, and `/healthz` is ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_tells_while_the_journal_is_unreachable() {
    let (_, schema) = Schema::fresh("t_serve_refused").await;
    let role = format!("flow_refused_{}", std::process::id());
    let admin = |sql: String| async move {
        let (client, connection) = tokio_postgres::connect(&flow_journal::test_pg_url(), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL is needed by this test: {e}"));
        tokio::spawn(connection);
        client
            .batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    };
    admin(format!(
        "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN; GRANT ALL ON SCHEMA \"{}\" TO {role};",
        schema.name()
    ))
    .await;
    let base = flow_journal::test_pg_url();
    let rest = base.split_once("://").map_or(base.as_str(), |(_, r)| r);
    let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
    let sep = if rest.contains('?') { '&' } else { '?' };
    let url = format!(
        "postgres://{role}@{rest}{sep}options=-c%20search_path%3D{}&application_name={role}",
        schema.name()
    );
    let dirs = Dirs::with(&[("slow.yaml", SLOW)]);
    let (mut flow, id) = slow_run_under_way(&dirs, &url).await;
    admin(format!("ALTER ROLE {role} NOLOGIN")).await;
    terminate(&role).await;
    let down = healthz_once_down(&flow, Duration::from_secs(15)).await;
    assert_eq!(down.status, 503, "{down:?}");
    let body = down.json();
    assert_eq!(body["status"], "unavailable", "{body}");
    assert!(body["reason"].as_str().is_some_and(|r| !r.is_empty()), "{body}");
    admin(format!("ALTER ROLE {role} LOGIN")).await;
    let report = flow.wait_status(&id, "succeeded").await;
    assert_eq!(report["nodes"]["last"]["status"], "succeeded", "{report}");
    assert_eq!(flow.get("/healthz").await.status, 200);
    flow.kill();
    admin(format!("DROP OWNED BY {role}; DROP ROLE {role}")).await;
}

/// A record PostgreSQL refuses (a workflow name too long for its index: 8,000
/// random letters, which do not compress below the index's 2,704 bytes) fails
/// its own run, not the server: the next runs of other workflows go through
/// and `/healthz` stays ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_the_journal_refuses_fails_only_its_run() {
    let (url, _schema) = Schema::fresh("t_serve_poison").await;
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let long: String = (0..8000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            char::from(b'a' + (seed % 26) as u8)
        })
        .collect();
    let dirs = Dirs::with(&[
        (
            "long.yaml",
            &format!("name: {long}\nnodes:\n  - {{ id: a, kind: noop }}\n"),
        ),
        ("fine.yaml", "name: fine\nnodes:\n  - { id: a, kind: noop }\n"),
    ]);
    let flow = Flow::start_with(
        &dirs,
        Start {
            journal: Some(&url),
            ..Start::default()
        },
    );
    let refused = flow.post(&format!("/api/v1/workflows/{long}/runs"), &json!({})).await;
    // Said as it is: the journal refused the run's records (not "taken over").
    let detail = refused.problem(422);
    assert!(detail.contains("records were refused"), "{detail}");
    for _ in 0..3 {
        let fine = flow.submit("fine", "?wait=20", &json!({})).await;
        assert_eq!(fine["status"], "succeeded", "{fine}");
    }
    let health = flow.get("/healthz").await;
    assert_eq!(health.status, 200, "{health:?}");
}

/// SQLite's disk fills (the server's file size limit, `prlimit --fsize`, set
/// below the journal's size: every write past it fails as on a full disk)
/// while a run is under way: `/healthz` says so, the run waits; space comes
/// back (the limit raised): the run finishes, `/healthz` is ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sqlite_disk_is_waited_out() {
    let dirs = Dirs::with(&[("slow.yaml", SLOW)]);
    let journal = dirs.journal.to_string_lossy().into_owned();
    let (flow, id) = slow_run_under_way(&dirs, &journal).await;
    let prlimit = |fsize: &str| {
        let status = std::process::Command::new("prlimit")
            .arg("--pid")
            .arg(flow.pid().to_string())
            .arg(format!("--fsize={fsize}"))
            .status()
            .unwrap_or_else(|e| panic!("prlimit (util-linux) is needed by this test: {e}"));
        assert!(status.success(), "prlimit --fsize={fsize}: {status}");
    };
    // Soft limit 4 KiB (the journal is larger), hard limit unchanged.
    prlimit("4096:");
    let down = healthz_once_down(&flow, Duration::from_secs(20)).await;
    assert_eq!(down.status, 503, "{down:?}\n{}", flow.stderr());
    let body = down.json();
    assert_eq!(body["status"], "unavailable", "{body}");
    // A submit meanwhile is refused or waits; the running one is not lost.
    assert!(flow.wait_report(&id, "the run, read", |_| true).await["status"] == "running");
    prlimit("unlimited:");
    let report = flow.wait_status(&id, "succeeded").await;
    assert_eq!(report["nodes"]["last"]["status"], "succeeded", "{report}");
    assert_eq!(flow.get("/healthz").await.status, 200);
    let again = flow.run_to_end("slow", &json!({})).await;
    assert_eq!(again["status"], "succeeded", "{again}");
    // Each record once.
    let events = flow.events(&id, None).await;
    let starts = events.iter().filter(|e| e.event == "node_started").count();
    assert_eq!(starts, 3, "{events:?}");
}

/// A statement that hangs (another session holds a lock on the journal's
/// table) fails after its timeout (`statement_timeout`, here set to 500 ms
/// by the URL's `options`) instead of holding the run forever: `/healthz`
/// says the journal is unavailable, and once the lock is gone the run finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_statement_times_out_and_is_tried_again() {
    let (url, schema) = Schema::fresh("t_serve_hung").await;
    let url = url.replacen("options=", "options=-c%20statement_timeout%3D500%20", 1);
    let dirs = Dirs::with(&[("slow.yaml", SLOW)]);
    let (flow, id) = slow_run_under_way(&dirs, &url).await;
    let (locker, connection) = tokio_postgres::connect(&flow_journal::test_pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is needed by this test: {e}"));
    tokio::spawn(connection);
    locker
        .batch_execute(&format!(
            "BEGIN; LOCK TABLE \"{}\".flow_records IN ACCESS EXCLUSIVE MODE",
            schema.name()
        ))
        .await
        .unwrap_or_else(|e| panic!("locking the journal: {e}"));
    // The run's next record (after its 1.5 s nap) cannot be written.
    let down = healthz_once_down(&flow, Duration::from_secs(20)).await;
    assert_eq!(down.status, 503, "{down:?}\n{}", flow.stderr());
    let reason = down.json()["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("statement timeout"), "{reason}");
    locker.batch_execute("ROLLBACK").await.unwrap_or_else(|e| panic!("{e}"));
    let report = flow.wait_status(&id, "succeeded").await;
    assert_eq!(report["nodes"]["last"]["status"], "succeeded", "{report}");
    assert_eq!(flow.get("/healthz").await.status, 200);
}
