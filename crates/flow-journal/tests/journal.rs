//! The journal's contract, checked the same way on SQLite and on the machine's
//! PostgreSQL (`FLOW_TEST_PG_URL`; each test in its own schema). PostgreSQL
//! tests fail, not skip, when the server cannot be reached.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use flow_core::{NodeReport, NodeReports, NodeStatus, Record, Report, RunStatus};
use flow_journal::{Entry, Journal, LEASE, Owner, RunFilter, SqliteJournal, SyncLevel, Writer, now_ms};
use serde_json::json;

fn started(workflow: &str) -> Record {
    serde_json::from_value(json!({
        "kind": "run_started",
        "workflow": workflow,
        "document": { "name": workflow, "nodes": [] },
        "hash": "00",
        "input": { "n": 1 },
        "started_at_ms": now_ms(),
    }))
    .unwrap()
}

fn node_started(node: &str, attempt: u32) -> Record {
    serde_json::from_value(json!({ "kind": "node_started", "node": node, "attempt": attempt, "at_ms": 1.0 })).unwrap()
}

fn finished(status: RunStatus) -> Record {
    let mut nodes = NodeReports::default();
    nodes.push("a", NodeReport::new(NodeStatus::Succeeded));
    nodes.push("b", NodeReport::new(NodeStatus::Failed));
    serde_json::from_value(json!({
        "kind": "run_finished",
        "status": status,
        "duration_ms": 12.5,
        "report": Report::new("w", "r", "parallel", status, 12.5, nodes),
    }))
    .unwrap()
}

fn lease() -> i64 {
    now_ms() + LEASE.as_millis() as i64
}

/// A process that has exited: its pid names no process any more.
fn dead_owner() -> Owner {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    Owner {
        pid,
        ..Owner::this_process()
    }
}

async fn sqlite() -> (Arc<dyn Journal>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let journal = SqliteJournal::open(dir.path().join("runs.db"), SyncLevel::Normal).unwrap();
    (Arc::new(journal), dir)
}

async fn postgres(name: &str) -> (Arc<dyn Journal>, String) {
    let schema = format!("t_{name}_{}_{}", std::process::id(), now_ms() % 1_000_000);
    let url = flow_journal::in_schema(&flow_journal::test_pg_url(), &schema)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL is needed for this test and is not reachable (set FLOW_TEST_PG_URL): {e}")
        });
    let journal = flow_journal::PgJournal::connect(&url).await.unwrap();
    (Arc::new(journal), schema)
}

/// Drops a test's schema (left behind when the test failed, to look at).
async fn drop_schema(schema: &str) {
    let (client, connection) = tokio_postgres::connect(&flow_journal::test_pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

async fn records_round_trip(journal: Arc<dyn Journal>) {
    let owner = Owner::this_process();
    journal.create("r1", "w", &started("w"), &owner, lease()).await.unwrap();
    let run_id: Arc<str> = Arc::from("r1");
    let entries: Vec<Entry> = (2..=4)
        .map(|seq| Entry {
            run_id: run_id.clone(),
            seq,
            record: node_started("a", seq as u32 - 1),
        })
        .collect();
    journal.append(&owner, &entries).await.unwrap();
    let stored = journal.load("r1").await.unwrap().unwrap();
    assert_eq!(
        stored.records.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(stored.records[0].1, started_like(&stored.records[0].1));
    assert_eq!(stored.records[3].1, node_started("a", 3));
    assert_eq!(stored.row.status, RunStatus::Running);
    assert_eq!(stored.row.status_now(now_ms()), RunStatus::Running);
    assert_eq!(stored.row.owner.as_ref().map(|o| &o.token), Some(&owner.token));
    assert!(journal.load("nope").await.unwrap().is_none());
    // A row alone, and the records a page at a time.
    assert_eq!(journal.row("r1").await.unwrap().unwrap().status, RunStatus::Running);
    assert!(journal.row("nope").await.unwrap().is_none());
    let page = |after, limit| {
        let journal = journal.clone();
        async move {
            let records = journal.records_page("r1", after, limit).await.unwrap();
            records.into_iter().map(|(seq, _)| seq).collect::<Vec<_>>()
        }
    };
    assert_eq!(page(0, 2).await, [1, 2]);
    assert_eq!(page(2, 2).await, [3, 4]);
    assert_eq!(page(3, 10).await, [4]);
    assert!(page(4, 10).await.is_empty());
    assert!(journal.records_page("nope", 0, 10).await.unwrap().is_empty());

    // A batch is atomic: a duplicate sequence number rejects all of it.
    let bad = [
        Entry {
            run_id: run_id.clone(),
            seq: 5,
            record: node_started("b", 1),
        },
        Entry {
            run_id: run_id.clone(),
            seq: 2,
            record: node_started("b", 1),
        },
    ];
    assert!(journal.append(&owner, &bad).await.is_err());
    assert_eq!(journal.load("r1").await.unwrap().unwrap().records.len(), 4);

    // The end marks the row finished, with counts, and releases the lease.
    journal
        .append(
            &owner,
            &[Entry {
                run_id: run_id.clone(),
                seq: 5,
                record: finished(RunStatus::Failed),
            }],
        )
        .await
        .unwrap();
    let row = journal.load("r1").await.unwrap().unwrap().row;
    assert_eq!(journal.row("r1").await.unwrap().as_ref(), Some(&row));
    assert_eq!(row.status, RunStatus::Failed);
    assert_eq!(row.duration_ms, Some(12.5));
    assert!(row.owner.is_none());
    assert_eq!(row.counts, Some(json!({ "succeeded": 1, "failed": 1 })));
    // A finished run is held by nobody: nothing more is written to it.
    let late = [Entry {
        run_id,
        seq: 6,
        record: node_started("c", 1),
    }];
    assert_eq!(journal.append(&owner, &late).await.unwrap().len(), 1);
    assert_eq!(journal.load("r1").await.unwrap().unwrap().records.len(), 5);
}

/// The same record (the test builds it with the time of day).
fn started_like(record: &Record) -> Record {
    record.clone()
}

async fn lists_newest_first_with_filters(journal: Arc<dyn Journal>) {
    let owner = Owner::this_process();
    for (i, workflow) in ["a", "b", "a", "c", "a"].iter().enumerate() {
        journal
            .create(&format!("run{i}"), workflow, &started(workflow), &owner, lease())
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    journal
        .append(
            &owner,
            &[Entry {
                run_id: Arc::from("run2"),
                seq: 2,
                record: finished(RunStatus::Succeeded),
            }],
        )
        .await
        .unwrap();
    let ids = |rows: Vec<flow_journal::RunRow>| rows.into_iter().map(|r| r.run_id).collect::<Vec<_>>();
    let all = journal.list(&RunFilter::default()).await.unwrap();
    assert_eq!(ids(all.clone()), vec!["run4", "run3", "run2", "run1", "run0"]);
    let only_a = RunFilter {
        workflow: Some("a".into()),
        ..RunFilter::default()
    };
    assert_eq!(ids(journal.list(&only_a).await.unwrap()), vec!["run4", "run2", "run0"]);
    let succeeded = RunFilter {
        status: Some(RunStatus::Succeeded),
        ..RunFilter::default()
    };
    assert_eq!(ids(journal.list(&succeeded).await.unwrap()), vec!["run2"]);
    let page = RunFilter {
        limit: 2,
        ..RunFilter::default()
    };
    let first = journal.list(&page).await.unwrap();
    assert_eq!(ids(first.clone()), vec!["run4", "run3"]);
    let last = first.last().unwrap();
    let next = RunFilter {
        limit: 2,
        before: Some((last.started_at_ms, last.run_id.clone())),
        ..RunFilter::default()
    };
    assert_eq!(ids(journal.list(&next).await.unwrap()), vec!["run2", "run1"]);
}

async fn one_of_two_claims_wins(journal: Arc<dyn Journal>) {
    let dead = dead_owner();
    journal.create("r", "w", &started("w"), &dead, lease()).await.unwrap();
    let row = journal.load("r").await.unwrap().unwrap().row;
    assert_eq!(row.status_now(now_ms()), RunStatus::Interrupted, "its process is gone");
    let (a, b) = (Owner::this_process(), Owner::this_process());
    let expected = Some(dead.token.as_str());
    let (won_a, won_b) = tokio::join!(
        journal.claim("r", &a, expected, lease()),
        journal.claim("r", &b, expected, lease())
    );
    assert!(won_a.unwrap() ^ won_b.unwrap(), "exactly one claim wins");
    let row = journal.load("r").await.unwrap().unwrap().row;
    assert_eq!(row.status_now(now_ms()), RunStatus::Running);

    // An owner elsewhere whose lease ran out is gone too; renewing extends it.
    let elsewhere = Owner {
        host: "another-machine".into(),
        ..Owner::this_process()
    };
    journal
        .create("far", "w", &started("w"), &elsewhere, now_ms() - 1)
        .await
        .unwrap();
    let row = journal.load("far").await.unwrap().unwrap().row;
    assert_eq!(row.status_now(now_ms()), RunStatus::Interrupted);
    journal.renew(&elsewhere.token, lease()).await.unwrap();
    let row = journal.load("far").await.unwrap().unwrap().row;
    assert_eq!(row.status_now(now_ms()), RunStatus::Running);
}

async fn the_writer_numbers_and_batches(journal: Arc<dyn Journal>) {
    let writer = Writer::start(journal.clone(), Owner::this_process()).unwrap();
    journal
        .create("w1", "w", &started("w"), writer.owner(), lease())
        .await
        .unwrap();
    let log = writer.run(Arc::from("w1"), 2);
    // Many waiters at once: all acknowledged, numbered without a gap, in order.
    let mut waits = Vec::new();
    for i in 0..500u32 {
        let each = log.clone();
        waits.push(tokio::spawn(async move {
            each.append_durable(node_started("n", i + 1)).await
        }));
        if i % 7 == 0 {
            log.append(node_started("m", i + 1));
        }
    }
    for w in waits {
        w.await.unwrap().unwrap();
    }
    log.flush().await.unwrap();
    let stored = journal.load("w1").await.unwrap().unwrap();
    let seqs: Vec<u64> = stored.records.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(seqs.len(), 1 + 500 + 72);
}

async fn a_takeover_fences_off_the_old_owner(journal: Arc<dyn Journal>) {
    let writer = Writer::start(journal.clone(), Owner::this_process()).unwrap();
    let old = writer.owner().clone();
    for run in ["x", "y"] {
        journal
            .create(run, "w", &started("w"), writer.owner(), lease())
            .await
            .unwrap();
    }
    let (x, y) = (writer.run(Arc::from("x"), 2), writer.run(Arc::from("y"), 2));
    x.append_durable(node_started("a", 1)).await.unwrap();
    y.append_durable(node_started("a", 1)).await.unwrap();

    // Another process takes `x` over (it took this one for dead).
    let other = Owner::this_process();
    assert!(journal.claim("x", &other, Some(&old.token), lease()).await.unwrap());
    let err = x.append_durable(node_started("b", 1)).await.unwrap_err();
    assert!(
        matches!(&err, flow_journal::Error::Lost { run_id } if run_id == "x"),
        "{err}"
    );
    x.append(node_started("c", 1));
    assert!(matches!(x.flush().await, Err(flow_journal::Error::Lost { .. })));
    // The writer goes on with the runs it still holds.
    y.append_durable(node_started("b", 1)).await.unwrap();
    y.flush().await.unwrap();
    writer.flush().await.unwrap();
    assert_eq!(journal.load("x").await.unwrap().unwrap().records.len(), 2);
    assert_eq!(journal.load("y").await.unwrap().unwrap().records.len(), 3);

    // One batch for both: only the held run's records are written, the other is named.
    let batch = [
        Entry {
            run_id: Arc::from("y"),
            seq: 4,
            record: node_started("c", 1),
        },
        Entry {
            run_id: Arc::from("x"),
            seq: 3,
            record: node_started("c", 1),
        },
    ];
    let refused = journal.append(&old, &batch).await.unwrap();
    assert_eq!(refused, vec![Arc::<str>::from("x")]);
    assert_eq!(journal.load("y").await.unwrap().unwrap().records.len(), 4);
    // The new owner continues `x` where it stood.
    let refused = journal.append(&other, &batch[1..]).await.unwrap();
    assert!(refused.is_empty());
    assert_eq!(journal.load("x").await.unwrap().unwrap().records.len(), 3);
}

async fn a_first_record_creates_its_run(journal: Arc<dyn Journal>) {
    let owner = Owner::this_process();
    // Two new runs and their next records, in one batch.
    let batch: Vec<Entry> = ["n1", "n2"]
        .iter()
        .flat_map(|run| {
            let run_id: Arc<str> = Arc::from(*run);
            [
                Entry {
                    run_id: run_id.clone(),
                    seq: 1,
                    record: started("w"),
                },
                Entry {
                    run_id,
                    seq: 2,
                    record: node_started("a", 1),
                },
            ]
        })
        .collect();
    assert!(journal.append(&owner, &batch).await.unwrap().is_empty());
    for run in ["n1", "n2"] {
        let stored = journal.load(run).await.unwrap().unwrap();
        assert_eq!(stored.records.len(), 2);
        assert_eq!(stored.row.workflow, "w");
        assert_eq!(stored.row.owner.as_ref().map(|o| &o.token), Some(&owner.token));
        assert!(stored.row.lease_until_ms.unwrap() > now_ms());
        assert_eq!(stored.row.status_now(now_ms()), RunStatus::Running);
    }
    // A large batch of many runs: every run whole and in order.
    let many: Vec<Entry> = (0..40)
        .flat_map(|i| {
            let run_id: Arc<str> = Arc::from(format!("m{i}"));
            (1..=3).map(move |seq| Entry {
                run_id: run_id.clone(),
                seq,
                record: if seq == 1 {
                    started("w")
                } else {
                    node_started("a", seq as u32)
                },
            })
        })
        .collect();
    assert!(journal.append(&owner, &many).await.unwrap().is_empty());
    for i in 0..40 {
        let stored = journal.load(&format!("m{i}")).await.unwrap().unwrap();
        let seqs: Vec<u64> = stored.records.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, vec![1, 2, 3]);
        assert_eq!(stored.records[2].1, node_started("a", 3));
    }
    // Creating a run that exists fails the whole batch.
    let again = [
        Entry {
            run_id: Arc::from("n3"),
            seq: 1,
            record: started("w"),
        },
        batch[0].clone(),
    ];
    assert!(journal.append(&owner, &again).await.is_err());
    assert!(journal.load("n3").await.unwrap().is_none());
}

async fn a_key_binds_one_run(journal: Arc<dyn Journal>) {
    assert_eq!(journal.remember("k", "run-a").await.unwrap(), None);
    assert_eq!(journal.remember("k", "run-b").await.unwrap().as_deref(), Some("run-a"));
    // Racing callers with one key: one binds it, the others get its run.
    let results = futures_join(
        (0..8)
            .map(|i| {
                let journal = journal.clone();
                tokio::spawn(async move { journal.remember("race", &format!("run{i}")).await.unwrap() })
            })
            .collect(),
    )
    .await;
    let bound: Vec<_> = results.iter().filter(|r| r.is_none()).collect();
    assert_eq!(bound.len(), 1, "{results:?}");
    let winners: std::collections::HashSet<_> = results.iter().flatten().collect();
    assert_eq!(winners.len(), 1, "every other caller sees the same run: {results:?}");
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<Option<String>>>) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

async fn a_prefix_resolves_to_its_runs(journal: Arc<dyn Journal>) {
    let owner = Owner::this_process();
    for id in ["01a2-aaaa-1", "01a2-aaaa-2", "01a2-bbbb-1", "01a2-bbbb", "09ff-0000"] {
        journal.create(id, "w", &started("w"), &owner, lease()).await.unwrap();
    }
    let resolve = |prefix: &'static str| {
        let journal = journal.clone();
        async move { journal.resolve(prefix, 10).await.unwrap() }
    };
    assert_eq!(resolve("09").await, ["09ff-0000"]);
    assert_eq!(resolve("01a2-aaaa").await, ["01a2-aaaa-1", "01a2-aaaa-2"]);
    // A whole id comes first, even when it prefixes others.
    assert_eq!(resolve("01a2-bbbb").await, ["01a2-bbbb", "01a2-bbbb-1"]);
    assert!(resolve("01a3").await.is_empty());
    // No pattern syntax leaks through.
    assert!(resolve("01a2%").await.is_empty());
    assert!(resolve("01a2_").await.is_empty());
    assert_eq!(journal.resolve("01a2", 2).await.unwrap().len(), 2);
}

/// A `run_started` with an idempotency key binds it in the commit that
/// creates the run; a second run with the key is not created at all (its
/// writer hears `Lost`), and the key still names the first.
async fn a_first_record_binds_its_key_in_its_commit(journal: Arc<dyn Journal>) {
    let writer = Writer::start(journal.clone(), Owner::this_process()).unwrap();
    let keyed = |workflow: &str| {
        let mut record = serde_json::to_value(started(workflow)).unwrap();
        record["idempotency_key"] = json!("w\nk-1");
        serde_json::from_value::<Record>(record).unwrap()
    };
    assert_eq!(journal.bound("w\nk-1").await.unwrap(), None);
    writer
        .run(Arc::from("first"), 1)
        .append_durable(keyed("w"))
        .await
        .unwrap();
    assert_eq!(journal.bound("w\nk-1").await.unwrap().as_deref(), Some("first"));
    let second = writer.run(Arc::from("second"), 1).append_durable(keyed("w")).await;
    assert!(matches!(second, Err(flow_journal::Error::Lost { .. })), "{second:?}");
    assert!(journal.load("second").await.unwrap().is_none(), "never created");
    assert_eq!(journal.bound("w\nk-1").await.unwrap().as_deref(), Some("first"));
    // Its first record reads back alone, with the key.
    match journal.first_record("first").await.unwrap() {
        Some(Record::RunStarted { idempotency_key, .. }) => assert_eq!(idempotency_key.as_deref(), Some("w\nk-1")),
        other => panic!("{other:?}"),
    }
    assert!(journal.first_record("second").await.unwrap().is_none());
    // The writer goes on with other runs.
    writer
        .run(Arc::from("third"), 1)
        .append_durable(started("w"))
        .await
        .unwrap();
    assert!(journal.load("third").await.unwrap().is_some());
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (journal, _dir) = super::sqlite().await;
                    super::$name(journal).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (journal, schema) = super::postgres(stringify!($name)).await;
                    super::$name(journal).await;
                    super::drop_schema(&schema).await;
                }
            )*
        }
    };
}

both!(
    records_round_trip,
    lists_newest_first_with_filters,
    one_of_two_claims_wins,
    the_writer_numbers_and_batches,
    a_takeover_fences_off_the_old_owner,
    a_first_record_creates_its_run,
    a_key_binds_one_run,
    a_prefix_resolves_to_its_runs,
    a_first_record_binds_its_key_in_its_commit,
);

/// A URL whose `search_path` names a schema that is not there yet: the journal
/// creates it and keeps its tables in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_path_schema_is_created_when_missing() {
    let schema = format!("t_sp_{}_{}", std::process::id(), now_ms() % 1_000_000);
    drop_schema(&schema).await;
    let base = flow_journal::test_pg_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    let journal = flow_journal::PgJournal::connect(&url).await.unwrap();
    journal
        .create("r1", "w", &started("w"), &Owner::this_process(), lease())
        .await
        .unwrap();
    let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let n: i64 = client
        .query_one(&format!("SELECT count(*) FROM \"{schema}\".flow_runs"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    drop_schema(&schema).await;
}

/// A role that may not create schemas, and a missing one: the error says
/// which schema to create, not PostgreSQL's "no schema has been selected".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_schema_that_cannot_be_created_is_named() {
    let base = flow_journal::test_pg_url();
    let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'flow_test_noschema') THEN
                 CREATE ROLE flow_test_noschema LOGIN;
               END IF;
             END $$",
        )
        .await
        .unwrap();
    let schema = "t_not_there_for_noschema";
    drop_schema(schema).await;
    let rest = base.split_once("://").map_or(base.as_str(), |(_, r)| r);
    let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
    let url = format!("postgres://flow_test_noschema@{rest}?options=-c%20search_path%3D{schema}");
    let err = flow_journal::PgJournal::connect(&url).await.unwrap_err().to_string();
    assert!(
        err.contains("schema `t_not_there_for_noschema`") && err.contains("CREATE SCHEMA"),
        "{err}"
    );
    assert!(!err.contains("no schema has been selected"), "{err}");
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(
        &path,
        "this is not a database, just some text that is long enough\n".repeat(20),
    )
    .unwrap();
    let err = SqliteJournal::open(&path, SyncLevel::Full).unwrap_err().to_string();
    assert!(err.contains("not a SQLite file"), "{err}");
    assert!(err.contains("notes.txt"), "{err}");
    let err = SqliteJournal::open(dir.path().join("missing/runs.db"), SyncLevel::Full)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot open"), "{err}");
    let err = SqliteJournal::open(dir.path(), SyncLevel::Full)
        .unwrap_err()
        .to_string();
    assert!(err.contains("directory"), "{err}");
}

#[test]
fn reopening_keeps_runs_and_does_not_migrate_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    {
        let journal = SqliteJournal::open(&path, SyncLevel::Full).unwrap();
        rt.block_on(journal.create("r", "w", &started("w"), &Owner::this_process(), lease()))
            .unwrap();
    }
    let journal = SqliteJournal::open(&path, SyncLevel::Full).unwrap();
    let stored = rt.block_on(journal.load("r")).unwrap().unwrap();
    assert_eq!(stored.records.len(), 1);
    assert_eq!(
        stored.row.status_now(now_ms()),
        RunStatus::Running,
        "this process still owns it"
    );
}

#[tokio::test]
async fn a_postgres_that_refuses_is_an_open_error() {
    let err = flow_journal::PgJournal::connect("postgres://flow:secret@127.0.0.1:1/test")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("journal postgres://flow:***@127.0.0.1:1/test"), "{err}");
    assert!(!err.contains("secret"), "{err}");
}

/// A SQLite call that waits for the file's lock (another process writing)
/// waits on the blocking pool: the runtime's only thread goes on with its
/// other tasks meanwhile.
#[tokio::test(flavor = "current_thread")]
async fn a_waiting_sqlite_call_leaves_the_runtime_thread_free() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (journal, dir) = sqlite().await;
    let owner = Owner::this_process();
    journal.create("r1", "w", &started("w"), &owner, lease()).await.unwrap();
    let holder = rusqlite::Connection::open(dir.path().join("runs.db")).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(600));
        holder.execute_batch("COMMIT").unwrap();
    });
    let ticks = Arc::new(AtomicUsize::new(0));
    let ticker = tokio::spawn({
        let ticks = ticks.clone();
        async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                ticks.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    journal.renew(&owner.token, lease()).await.unwrap();
    let seen = ticks.load(Ordering::Relaxed);
    ticker.abort();
    release.join().unwrap();
    assert!(
        seen >= 5,
        "the runtime thread was blocked: {seen} ticks while the call waited"
    );
}
