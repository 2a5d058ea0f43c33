//! Idempotency keys through a SIGKILL: many clients submit with keys of their
//! own, the server is killed with SIGKILL in the middle, restarted, and every
//! key is sent again. On SQLite and on PostgreSQL: every key gives a run that
//! exists and finishes, the same run as before where the first answer came,
//! and no key has two runs nor a run missing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::support::{Dirs, Flow, Resp, Schema, Start};

const CLIENTS: usize = 16;

const WORK: &str = "name: work\ninput: { who: x }\nnodes:\n  - { id: a, kind: transform, config: { output: \"{{ input.who }}\" } }\n  - { id: b, kind: delay, config: { ms: 20 } }\nedges: [{ from: a, to: b }]\n";

fn submit(flow: &Flow, key: &str) -> reqwest::RequestBuilder {
    flow.request(Method::POST, "/api/v1/workflows/work/runs")
        .header("Idempotency-Key", key)
        .json(&json!({ "input": { "who": key } }))
}

fn id_of(resp: &Resp) -> Option<String> {
    (resp.status == 201).then(|| resp.json()["run_id"].as_str().map(str::to_owned))?
}

async fn keys_survive_a_kill(journal: Option<&str>) {
    let dirs = Dirs::with(&[("work.yaml", WORK)]);
    let start = || {
        Flow::start_with(
            &dirs,
            Start {
                journal,
                ..Start::default()
            },
        )
    };
    let mut flow = start();
    // Keys are noted before they are sent: a key whose request may have
    // reached the server, answered or not.
    let sent: Arc<Mutex<Vec<String>>> = Arc::default();
    let answered: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let (sent, answered) = (sent.clone(), answered.clone());
        let request = {
            let flow_url = flow.url("");
            move |key: &str| {
                reqwest::Client::new()
                    .post(format!("{flow_url}/api/v1/workflows/work/runs"))
                    .header("Idempotency-Key", key)
                    .json(&json!({ "input": { "who": key } }))
            }
        };
        clients.spawn(async move {
            for n in 0.. {
                let key = format!("c{c}-{n}");
                sent.lock().unwrap_or_else(PoisonError::into_inner).push(key.clone());
                let Ok(resp) = request(&key).send().await else { return };
                if resp.status().as_u16() != 201 {
                    return;
                }
                let Ok(body) = resp.json::<serde_json::Value>().await else {
                    return;
                };
                if let Some(id) = body["run_id"].as_str() {
                    answered
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(key, id.to_owned());
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    flow.kill();
    while clients.join_next().await.is_some() {}
    let sent = sent.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let answered = answered.lock().unwrap_or_else(PoisonError::into_inner).clone();
    assert!(
        answered.len() >= CLIENTS,
        "some submits were answered before the kill: {}",
        answered.len()
    );

    let flow = start();
    let mut runs = BTreeSet::new();
    for key in &sent {
        let resp = Resp::of(submit(&flow, key)).await;
        let Some(id) = id_of(&resp) else {
            panic!("key {key} after the restart: {resp:?}")
        };
        if let Some(before) = answered.get(key) {
            assert_eq!(&id, before, "key {key} names another run than before the kill");
            assert_eq!(resp.header("idempotent-replayed"), "true", "{resp:?}");
        }
        assert!(runs.insert(id.clone()), "two keys, one run {id}");
    }
    for id in &runs {
        let report = flow.wait_status(id, "succeeded").await;
        let who = report["nodes"]["a"]["output"].as_str().unwrap_or_default().to_owned();
        assert!(sent.contains(&who), "run {id} ran for key {who}");
    }
    // No run without a key, none twice: as many runs as keys.
    let mut listed = 0;
    let mut cursor = String::new();
    loop {
        let page = flow.get(&format!("/api/v1/runs?limit=500{cursor}")).await.json();
        listed += page["runs"].as_array().map_or(0, Vec::len);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(listed, sent.len(), "one run per key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_survive_a_kill_on_sqlite() {
    keys_survive_a_kill(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_survive_a_kill_on_postgres() {
    let (url, _schema) = Schema::fresh("t_serve_keys").await;
    keys_survive_a_kill(Some(&url)).await;
}
