//! The API endpoints, without a token: workflows, submitting (input,
//! strategy, `?wait=`, bad bodies), reports, the list of runs, cancel, retry,
//! idempotent submits, the timeline, `/openapi.json`, `/metrics`, `/healthz`.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Counter, Dirs, Flow, Resp, Start, command, parse};
use crate::workflows::{ECHO, FAILING, GATED, QUICK, SLOW};

/// `flow runs show RUN_ID --journal JOURNAL --report -`, parsed.
fn runs_show(dirs: &Dirs, run_id: &str) -> Value {
    let out = command()
        .args(["runs", "show", run_id, "--report", "-", "--journal"])
        .arg(&dirs.journal)
        .output()
        .unwrap_or_else(|e| panic!("cannot run flow runs show: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "flow runs show: {out:?}");
    parse(&stdout).unwrap_or_else(|e| panic!("flow runs show printed no report ({e}): {stdout}"))
}

fn run_id(started: &Value) -> String {
    started["run_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no run_id: {started}"))
        .to_owned()
}

#[tokio::test]
async fn workflows_are_listed() {
    let dirs = Dirs::with(&[
        ("quick.yaml", QUICK),
        ("slow.yml", SLOW),
        ("failing.json.yaml", FAILING),
    ]);
    let flow = Flow::start(&dirs);
    let resp = flow.get("/api/v1/workflows").await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(resp.header("content-type").starts_with("application/json"));
    let list = resp.json();
    let expected = json!([
        { "name": "failing", "file": "failing.json.yaml", "nodes": 2, "input": null, "strategy": "parallel", "valid": true, "problems": [] },
        { "name": "quick", "file": "quick.yaml", "nodes": 3, "input": { "who": "world", "naps": [5, 10, 15] }, "strategy": "parallel", "valid": true, "problems": [] },
        { "name": "slow", "file": "slow.yml", "nodes": 3, "input": null, "strategy": "sequential", "valid": true, "problems": [] },
    ]);
    assert_eq!(list, expected);
    assert!(flow.stderr().contains("(3 workflows, journal "), "{}", flow.stderr());
}

#[tokio::test]
async fn submit_runs_and_reports() {
    let dirs = Dirs::with(&[("quick.yaml", QUICK), ("slow.yaml", SLOW)]);
    let flow = Flow::start_with(
        &dirs,
        Start {
            args: &["--max-body-bytes", "4096"],
            ..Start::default()
        },
    );

    // No body at all: the file's input; answered at once.
    let resp = Resp::of(flow.request(Method::POST, "/api/v1/workflows/quick/runs")).await;
    assert_eq!(resp.status, 201, "{resp:?}");
    let started = resp.json();
    let id = run_id(&started);
    assert_eq!(
        started,
        json!({ "run_id": id, "status": "running", "url": format!("/api/v1/runs/{id}"), "page": format!("/runs/{id}") })
    );
    assert_eq!(resp.header("location"), format!("/api/v1/runs/{id}"));
    let report = flow.wait_status(&id, "succeeded").await;
    assert_eq!(report["run_id"], id.as_str());
    assert_eq!(report["workflow"], "quick");
    assert_eq!(
        report["nodes"]["done"]["output"],
        json!({ "greeting": "hello world", "slept": 30 })
    );
    assert_eq!(report["nodes"]["naps"]["items"]["succeeded"], 3);
    assert!(report["nodes"]["naps"]["limit_wait_ms"].is_number(), "{report}");

    // An input, `?wait=`: the report, with its url and page.
    let body = json!({ "input": { "who": "http", "naps": [1] } });
    let report = flow.submit("quick", "?wait=20", &body).await;
    let id = run_id(&report);
    assert_eq!(report["status"], "succeeded", "{report}");
    assert_eq!(report["url"], format!("/api/v1/runs/{id}"));
    assert_eq!(report["page"], format!("/runs/{id}"));
    assert_eq!(
        report["nodes"]["done"]["output"],
        json!({ "greeting": "hello http", "slept": 1 })
    );
    // The report GET gives is the same, but for the url and page.
    let mut stored = flow.report(&id).await;
    // ... and the one `flow runs show --report -` rebuilds from the journal.
    assert_eq!(stored, runs_show(&dirs, &id));
    stored["url"] = report["url"].clone();
    stored["page"] = report["page"].clone();
    assert_eq!(stored, report);

    // A strategy of the run's own.
    let body = json!({ "input": { "who": "you", "naps": [] }, "strategy": { "kind": "rate-limited", "per_second": 1000, "burst": 5 } });
    let report = flow.submit("quick", "?wait=20", &body).await;
    assert_eq!(report["strategy"], "rate-limited", "{report}");
    assert_eq!(report["status"], "succeeded", "{report}");
    let report = flow
        .submit("quick", "?wait=20", &json!({ "strategy": { "kind": "sequential" } }))
        .await;
    assert_eq!(report["strategy"], "sequential", "{report}");

    // `?wait=` that ends before the run: the run as started.
    let started = flow.submit("slow", "?wait=0.05", &json!({})).await;
    assert_eq!(started["status"], "running", "{started}");
    assert!(started.get("nodes").is_none(), "{started}");
    let slow = run_id(&started);
    let cancelled = flow.post_empty(&format!("/api/v1/runs/{slow}/cancel")).await;
    assert_eq!(cancelled.status, 202, "{cancelled:?}");

    // Bad submits.
    let raw = |body: &'static str| {
        flow.request(Method::POST, "/api/v1/workflows/quick/runs")
            .header("content-type", "application/json")
            .body(body)
    };
    let detail = Resp::of(raw("{\"input\": ")).await.problem(400);
    assert!(detail.contains("not valid JSON"), "{detail}");
    Resp::of(raw("   \n")).await; // whitespace only: no body, a run
    for body in ["[1, 2]", "\"text\"", "42", "null", "true"] {
        let detail = Resp::of(raw(body)).await.problem(422);
        assert!(detail.contains("must be a JSON object"), "{body}: {detail}");
    }
    let detail = flow
        .post("/api/v1/workflows/quick/runs", &json!({ "inputs": {} }))
        .await
        .problem(422);
    assert!(detail.contains("unknown field `inputs`"), "{detail}");
    let detail = flow
        .post(
            "/api/v1/workflows/quick/runs",
            &json!({ "strategy": { "kind": "teleport" } }),
        )
        .await
        .problem(422);
    assert!(detail.contains("teleport"), "{detail}");
    flow.post(
        "/api/v1/workflows/quick/runs",
        &json!({ "strategy": { "kind": "rate-limited", "per_second": -1 } }),
    )
    .await
    .problem(422);
    flow.post("/api/v1/workflows/quick/runs", &json!({ "strategy": "parallel" }))
        .await
        .problem(422);
    let detail = flow.post("/api/v1/workflows/quik/runs", &json!({})).await.problem(404);
    assert!(detail.contains("did you mean `quick`"), "{detail}");
    for wait in ["abc", "-1", "NaN", "inf"] {
        let detail = flow
            .post(&format!("/api/v1/workflows/quick/runs?wait={wait}"), &json!({}))
            .await
            .problem(400);
        assert!(detail.contains("wait"), "{wait}: {detail}");
    }
    let big = json!({ "input": { "text": "x".repeat(5000) } });
    flow.post("/api/v1/workflows/quick/runs", &big).await.problem(413);

    // Unknown runs, paths and methods.
    for path in [
        "/api/v1/runs/nope",
        "/api/v1/runs/nope/timeline.svg",
        "/api/v1/runs/nope/events",
    ] {
        let detail = flow.get(path).await.problem(404);
        assert!(detail.contains("nope"), "{path}: {detail}");
    }
    flow.post_empty("/api/v1/runs/nope/cancel").await.problem(404);
    flow.post_empty("/api/v1/runs/nope/retry").await.problem(404);
    flow.get("/api/v1/nothing/here").await.problem(404);
    flow.get("/api/v2/workflows").await.problem(404);
    flow.post_empty("/api/v1/workflows").await.problem(405);
    flow.get("/api/v1/workflows/reload").await.problem(405);
    flow.get("/api/v1/workflows/quick/runs").await.problem(405);
    Resp::of(flow.request(Method::DELETE, &format!("/api/v1/runs/{id}")))
        .await
        .problem(405);
    flow.get(&format!("/api/v1/runs/{id}/cancel")).await.problem(405);

    // The timeline of a finished run.
    let svg = flow.get(&format!("/api/v1/runs/{id}/timeline.svg")).await;
    assert_eq!(svg.status, 200, "{svg:?}");
    assert_eq!(svg.header("content-type"), "image/svg+xml");
    let doc = roxmltree::Document::parse(&svg.text).unwrap_or_else(|e| panic!("not XML ({e}): {}", svg.text));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
}

#[tokio::test]
async fn openapi_healthz_and_metrics() {
    let dirs = Dirs::with(&[("quick.yaml", QUICK), ("failing.yaml", FAILING)]);
    let flow = Flow::start(&dirs);
    let health = flow.get("/healthz").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), json!({ "status": "ok", "runs_in_flight": 0 }));

    let spec = flow.get("/openapi.json").await;
    assert_eq!(spec.status, 200, "{spec:?}");
    let spec = spec.json();
    assert!(spec["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{spec}");
    let paths: BTreeSet<&str> = spec["paths"]
        .as_object()
        .unwrap_or_else(|| panic!("no paths: {spec}"))
        .keys()
        .map(String::as_str)
        .collect();
    for path in [
        "/api/v1/workflows",
        "/api/v1/workflows/reload",
        "/api/v1/workflows/{name}/runs",
        "/api/v1/runs",
        "/api/v1/runs/{id}",
        "/api/v1/runs/{id}/events",
        "/api/v1/runs/{id}/timeline.svg",
        "/api/v1/runs/{id}/cancel",
        "/api/v1/runs/{id}/retry",
        "/healthz",
        "/metrics",
    ] {
        assert!(paths.contains(path), "{path} is not in /openapi.json: {paths:?}");
    }
    assert!(spec["paths"]["/api/v1/workflows/{name}/runs"]["post"].is_object());
    assert!(spec["paths"]["/api/v1/runs/{id}/cancel"]["post"].is_object());

    let quick = [
        flow.run_to_end("quick", &json!({})).await,
        flow.run_to_end("quick", &json!({})).await,
    ];
    let failed = flow.run_to_end("failing", &json!({})).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    // The attempts in the nodes' reports (a for_each node's items are not
    // counted as attempts of their own).
    let attempts = |report: &Value| -> f64 {
        report["nodes"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, node)| node["attempts_detail"].as_array().map_or(0, Vec::len))
            .sum::<usize>() as f64
    };
    flow.wait_idle().await;
    let metrics = flow.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.header("content-type").starts_with("text/plain"));
    let text = metrics.text;
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no `{prefix}` in /metrics:\n{text}"))
    };
    assert_eq!(value("flow_runs_started_total{workflow=\"quick\"}"), 2.0);
    assert_eq!(value("flow_runs_started_total{workflow=\"failing\"}"), 1.0);
    let finished = |workflow: &str, status: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("flow_runs_finished_total{")
                    && l.contains(&format!("workflow=\"{workflow}\""))
                    && l.contains(&format!("status=\"{status}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no runs of {workflow} {status} in /metrics:\n{text}"))
    };
    assert_eq!(finished("quick", "succeeded"), 2.0);
    assert_eq!(finished("failing", "failed"), 1.0);
    assert_eq!(value("flow_runs_in_flight"), 0.0);
    assert_eq!(
        value("flow_node_attempt_duration_seconds_count{workflow=\"quick\"}"),
        attempts(&quick[0]) + attempts(&quick[1])
    );
    // The noop, and the fail node's two attempts.
    assert_eq!(attempts(&failed), 3.0);
    assert_eq!(
        value("flow_node_attempt_duration_seconds_count{workflow=\"failing\"}"),
        3.0
    );
    assert!(text.contains("flow_node_attempt_duration_seconds_bucket{"), "{text}");
    assert!(
        value("flow_limit_wait_seconds_count{workflow=\"quick\"}") >= 1.0,
        "{text}"
    );
}

#[tokio::test]
async fn runs_are_listed_filtered_and_paged() {
    let dirs = Dirs::with(&[("quick.yaml", QUICK), ("failing.yaml", FAILING), ("slow.yaml", SLOW)]);
    let flow = Flow::start(&dirs);
    let empty = flow.get("/api/v1/runs").await.json();
    assert_eq!(empty, json!({ "runs": [], "next_cursor": null }));

    let mut ids = Vec::new();
    for workflow in ["quick", "failing", "quick", "quick"] {
        ids.push(run_id(&flow.run_to_end(workflow, &json!({})).await));
    }
    let slow = run_id(&flow.submit("slow", "", &json!({})).await);
    ids.push(slow.clone());
    flow.wait_report(&slow, "node `wait` running", |r| {
        r["nodes"]["wait"]["status"] == "running"
    })
    .await;
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();

    let list = flow.get("/api/v1/runs").await.json();
    let listed: Vec<String> = list["runs"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(run_id)
        .collect();
    assert_eq!(listed, newest_first);
    assert_eq!(list["next_cursor"], Value::Null);
    let row = &list["runs"][1];
    assert_eq!(row["workflow"], "quick");
    assert_eq!(row["status"], "succeeded");
    assert_eq!(row["url"], format!("/api/v1/runs/{}", ids[3]));
    assert_eq!(row["page"], format!("/runs/{}", ids[3]));
    assert!(row["started_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{row}");
    assert!(row["finished_at"].is_string(), "{row}");
    assert!(row["duration_ms"].is_number(), "{row}");
    assert!(row["nodes"].is_object(), "{row}");
    assert_eq!(list["runs"][0]["status"], "running");
    assert_eq!(list["runs"][0]["finished_at"], Value::Null);

    let ids_of = |list: &Value| -> Vec<String> {
        list["runs"]
            .as_array()
            .unwrap_or_else(|| panic!("{list}"))
            .iter()
            .map(run_id)
            .collect()
    };
    let quick = flow.get("/api/v1/runs?workflow=quick").await.json();
    assert_eq!(ids_of(&quick), vec![ids[3].clone(), ids[2].clone(), ids[0].clone()]);
    let failed = flow.get("/api/v1/runs?status=failed").await.json();
    assert_eq!(ids_of(&failed), vec![ids[1].clone()]);
    let running = flow.get("/api/v1/runs?status=running").await.json();
    assert_eq!(ids_of(&running), vec![slow.clone()]);
    let none = flow.get("/api/v1/runs?status=interrupted").await.json();
    assert_eq!(ids_of(&none), Vec::<String>::new());
    let none = flow.get("/api/v1/runs?workflow=failing&status=succeeded").await.json();
    assert_eq!(ids_of(&none), Vec::<String>::new());
    let all = flow.get("/api/v1/runs?workflow=&status=&limit=&cursor=").await.json();
    assert_eq!(ids_of(&all), newest_first);

    // Pages of two.
    let mut paged = Vec::new();
    let mut path = "/api/v1/runs?limit=2".to_owned();
    for _ in 0..3 {
        let page = flow.get(&path).await.json();
        paged.extend(ids_of(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/runs?limit=2&cursor={cursor}"),
            None => {
                path.clear();
                break;
            }
        }
    }
    assert!(path.is_empty(), "a third page has a next one");
    assert_eq!(paged, newest_first);
    let page = flow.get("/api/v1/runs?limit=1&workflow=quick").await.json();
    let cursor = page["next_cursor"].as_str().unwrap_or_else(|| panic!("{page}"));
    let next = flow
        .get(&format!("/api/v1/runs?limit=5&workflow=quick&cursor={cursor}"))
        .await
        .json();
    assert_eq!(ids_of(&next), vec![ids[2].clone(), ids[0].clone()]);

    for query in [
        "limit=0",
        "limit=501",
        "limit=-1",
        "limit=ten",
        "status=bogus",
        "status=RUNNING",
        "cursor=garbage",
        "cursor=x_y",
    ] {
        let detail = flow.get(&format!("/api/v1/runs?{query}")).await.problem(400);
        let field = query.split('=').next().unwrap_or_default();
        assert!(detail.contains(field), "{query}: {detail}");
    }
    assert_eq!(ids_of(&flow.get("/api/v1/runs?limit=500").await.json()).len(), 5);
    let cancel = flow.post_empty(&format!("/api/v1/runs/{slow}/cancel")).await;
    assert_eq!(cancel.status, 202, "{cancel:?}");
}

#[tokio::test]
async fn a_run_under_way_is_reported_and_cancelled() {
    let dirs = Dirs::with(&[("slow.yaml", SLOW)]);
    let flow = Flow::start(&dirs);
    let id = run_id(&flow.submit("slow", "", &json!({})).await);
    let report = flow
        .wait_report(&id, "node `wait` running", |r| {
            r["nodes"]["wait"]["status"] == "running"
        })
        .await;
    assert_eq!(report["status"], "running", "{report}");
    assert_eq!(report["workflow"], "slow");
    assert_eq!(report["strategy"], "sequential");
    assert_eq!(report["nodes"]["first"]["status"], "succeeded", "{report}");
    assert_eq!(report["nodes"]["after"]["status"], "pending", "{report}");
    assert_eq!(flow.get("/healthz").await.json()["runs_in_flight"], 1);
    let svg = flow.get(&format!("/api/v1/runs/{id}/timeline.svg")).await;
    assert_eq!(svg.status, 200, "{svg:?}");
    assert!(roxmltree::Document::parse(&svg.text).is_ok(), "{}", svg.text);

    let detail = flow.post_empty(&format!("/api/v1/runs/{id}/retry")).await.problem(409);
    assert!(detail.contains("running"), "{detail}");

    let started = std::time::Instant::now();
    let cancel = flow.post_empty(&format!("/api/v1/runs/{id}/cancel")).await;
    assert_eq!(cancel.status, 202, "{cancel:?}");
    assert_eq!(cancel.json()["run_id"], id.as_str());
    let report = flow.wait_status(&id, "cancelled").await;
    assert!(
        started.elapsed().as_secs() < 5,
        "the cancel took {:?}",
        started.elapsed()
    );
    assert_eq!(report["nodes"]["first"]["status"], "succeeded", "{report}");
    assert_ne!(report["nodes"]["after"]["status"], "succeeded", "{report}");
    flow.wait_idle().await;
    let detail = flow.post_empty(&format!("/api/v1/runs/{id}/cancel")).await.problem(409);
    assert!(detail.contains("cancelled"), "{detail}");

    let events = flow.events(&id, None).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"run_started"), "{kinds:?}");
    assert!(kinds.contains(&"run_cancelled"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"run_finished"), "{kinds:?}");
}

#[tokio::test]
async fn retry_runs_the_failed_nodes_again() {
    let counter = Counter::start();
    let dirs = Dirs::with(&[("gated.yaml", &counter.fill(GATED)), ("failing.yaml", FAILING)]);
    let flow = Flow::start(&dirs);
    counter.close_gate(true);
    let report = flow.run_to_end("gated", &json!({})).await;
    let id = run_id(&report);
    assert_eq!(report["status"], "failed", "{report}");
    assert_eq!(report["nodes"]["first"]["status"], "succeeded", "{report}");
    assert_eq!(report["nodes"]["shaky"]["status"], "failed", "{report}");
    flow.wait_idle().await;

    counter.close_gate(false);
    let retry = flow.post_empty(&format!("/api/v1/runs/{id}/retry")).await;
    assert_eq!(retry.status, 202, "{retry:?}");
    assert_eq!(retry.json()["run_id"], id.as_str());
    let report = flow.wait_status(&id, "succeeded").await;
    assert_eq!(report["nodes"]["after"]["output"], "shaky", "{report}");
    let keys = counter.log.of_run(&id);
    let expected = [(format!("{id}:first"), 1), (format!("{id}:shaky"), 2)];
    assert_eq!(
        keys,
        expected.into_iter().collect(),
        "what the counting server received"
    );
    let kinds: Vec<String> = flow.events(&id, None).await.into_iter().map(|e| e.event).collect();
    assert!(kinds.iter().any(|k| k == "run_resumed"), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "run_finished").count(), 2, "{kinds:?}");

    flow.wait_idle().await;
    let detail = flow.post_empty(&format!("/api/v1/runs/{id}/retry")).await.problem(409);
    assert!(detail.contains("succeeded"), "{detail}");

    // A node that fails again fails the retried run again, after one more
    // attempt; a retry within a run shows as an `attempt_failed` event.
    let report = flow.run_to_end("failing", &json!({})).await;
    let failing = run_id(&report);
    flow.wait_idle().await;
    // Four retries at once: while one holds the run, the others are refused.
    // The retried run is one quick attempt, so on a loaded machine a later
    // retry may come after it ended and take the run again: every 202 is one
    // more attempt and one more end, never two at once.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        tasks.spawn(Resp::of(
            flow.request(Method::POST, &format!("/api/v1/runs/{failing}/retry")),
        ));
    }
    let mut taken = 0u64;
    while let Some(resp) = tasks.join_next().await {
        let resp = resp.unwrap_or_else(|e| panic!("a retry task: {e}"));
        if resp.status == 202 {
            taken += 1;
        } else {
            resp.problem(409);
        }
    }
    assert!(taken >= 1, "no retry took the run");
    let report = flow
        .wait_report(&failing, "second failure", |r| {
            r["status"] == "failed" && r["nodes"]["boom"]["attempts"].as_u64().unwrap_or(0) == 2 + taken
        })
        .await;
    assert_eq!(report["nodes"]["fine"]["status"], "succeeded", "{report}");
    let events = flow.events(&failing, None).await;
    let count = |kind: &str| events.iter().filter(|e| e.event == kind).count() as u64;
    assert_eq!(count("attempt_failed"), 1, "{events:?}");
    assert_eq!(count("run_finished"), 1 + taken, "{events:?}");
    assert_eq!(count("run_resumed"), taken, "{events:?}");
    // The noop that succeeded started once, the failing node twice, then once
    // a retry.
    let started = |node: &str| {
        events
            .iter()
            .filter(|e| e.event == "node_started" && e.data.to_string().contains(&format!("\"{node}\"")))
            .count() as u64
    };
    assert_eq!(started("fine"), 1, "{events:?}");
    assert_eq!(started("boom"), 2 + taken, "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_submits_give_one_run() {
    let dirs = Dirs::with(&[("quick.yaml", QUICK), ("failing.yaml", FAILING)]);
    let flow = Flow::start(&dirs);
    let submit = |workflow: &str, key: &str| {
        Resp::of(
            flow.request(Method::POST, &format!("/api/v1/workflows/{workflow}/runs"))
                .header("Idempotency-Key", key)
                .json(&json!({ "input": { "who": key, "naps": [1] } })),
        )
    };
    let first = submit("quick", "order-1").await;
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(first.header("idempotent-replayed"), "");
    let id = run_id(&first.json());
    let report = flow.wait_status(&id, "succeeded").await;
    assert_eq!(report["nodes"]["hello"]["output"], "hello order-1");

    let again = submit("quick", "order-1").await;
    assert_eq!(again.status, 201, "{again:?}");
    assert_eq!(again.header("idempotent-replayed"), "true");
    let again = again.json();
    assert_eq!(again["run_id"], id.as_str());
    assert_eq!(again["status"], "succeeded", "{again}");
    assert_eq!(again["url"], format!("/api/v1/runs/{id}"));
    // With `?wait`, a replay answers as the first submit would have: the report.
    let waited = Resp::of(
        flow.request(Method::POST, "/api/v1/workflows/quick/runs?wait=20")
            .header("Idempotency-Key", "order-1")
            .json(&json!({ "input": { "who": "order-1", "naps": [1] } })),
    )
    .await;
    assert_eq!(waited.header("idempotent-replayed"), "true");
    let waited = waited.json();
    assert_eq!(waited["run_id"], id.as_str());
    assert_eq!(waited["status"], "succeeded", "{waited}");
    assert_eq!(waited["nodes"]["hello"]["output"], "hello order-1", "{waited}");

    // The key with another body: refused, as Stripe does, naming the run.
    let reused = Resp::of(
        flow.request(Method::POST, "/api/v1/workflows/quick/runs")
            .header("Idempotency-Key", "order-1")
            .json(&json!({ "input": { "who": "someone else" } })),
    )
    .await
    .problem(422);
    assert!(reused.contains(&id) && reused.contains("another input"), "{reused}");

    let other = run_id(&submit("quick", "order-2").await.json());
    assert_ne!(other, id);
    // A key is a workflow's own.
    let elsewhere = submit("failing", "order-1").await;
    assert_eq!(elsewhere.status, 201);
    assert_eq!(elsewhere.header("idempotent-replayed"), "");
    assert_ne!(run_id(&elsewhere.json()), id);

    submit("quick", &"k".repeat(256)).await.problem(400);
    submit("quick", "").await.problem(400);

    // Eight at once with one key: one run.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let request = flow
            .request(Method::POST, "/api/v1/workflows/quick/runs")
            .header("Idempotency-Key", "together")
            .json(&json!({}));
        tasks.spawn(Resp::of(request));
    }
    let mut ids = BTreeSet::new();
    let mut replayed = 0;
    while let Some(resp) = tasks.join_next().await {
        let resp = resp.unwrap_or_else(|e| panic!("a submit task: {e}"));
        assert_eq!(resp.status, 201, "{resp:?}");
        if resp.header("idempotent-replayed") == "true" {
            replayed += 1;
        }
        ids.insert(run_id(&resp.json()));
    }
    assert_eq!(ids.len(), 1, "one key, several runs: {ids:?}");
    assert_eq!(replayed, 7);
    let together = ids.into_iter().next().unwrap_or_default();
    flow.wait_status(&together, "succeeded").await;
    let list = flow.get("/api/v1/runs?workflow=quick").await.json();
    let listed: Vec<String> = list["runs"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(run_id)
        .collect();
    assert_eq!(listed, vec![together, other, id], "the runs of quick");
}

/// `[[[…]]]`, `depth` levels.
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!([]), |inner, _| json!([inner]))
}

#[tokio::test]
async fn deeply_nested_input_is_kept_and_read_back() {
    let dirs = Dirs::with(&[("echo.yaml", ECHO)]);
    // `--max-depth` covers a run's input (64 by default): raised here.
    let flow = Flow::start_with(
        &dirs,
        Start {
            args: &["--max-depth", "200"],
            ..Start::default()
        },
    );
    // The body is 126 levels deep: within serde_json's 128; the journal's
    // records hold it a few levels deeper.
    let x = nested(123);
    let report = flow
        .run_to_end("echo", &json!({ "input": { "x": x, "items": [] } }))
        .await;
    let id = run_id(&report);
    assert_eq!(report["status"], "succeeded", "{report}");
    let stored = flow.report(&id).await;
    assert_eq!(stored["nodes"]["show"]["output"]["x"], x);
    let svg = flow.get(&format!("/api/v1/runs/{id}/timeline.svg")).await;
    assert_eq!(svg.status, 200, "{svg:?}");
    let events = flow.events(&id, None).await;
    assert_eq!(events.last().map(|e| e.event.as_str()), Some("run_finished"));
    let page = flow.get(&format!("/runs/{id}")).await;
    assert_eq!(page.status, 200, "{page:?}");
    // Deeper than serde_json reads: refused.
    let body = json!({ "input": { "x": nested(130) } });
    flow.post("/api/v1/workflows/echo/runs", &body).await.problem(400);
}
