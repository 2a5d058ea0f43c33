//! `GET /api/v1/runs/{id}/events`: every journal record as an event, history
//! then live, `Last-Event-ID` to resume, the end after `run_finished`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Dirs, Flow, PATIENCE, Resp, Sse};
use crate::workflows::{QUICK, steps};

fn seqs(events: &[Sse]) -> Vec<u64> {
    events.iter().map(Sse::seq).collect()
}

#[tokio::test]
async fn history_and_last_event_id() {
    let dirs = Dirs::with(&[("quick.yaml", QUICK)]);
    let flow = Flow::start(&dirs);
    let report = flow.run_to_end("quick", &json!({})).await;
    let id = report["run_id"].as_str().unwrap_or_default().to_owned();

    let all = flow.events(&id, None).await;
    let n = all.len() as u64;
    assert_eq!(seqs(&all), (1..=n).collect::<Vec<_>>(), "{all:?}");
    let kinds: Vec<&str> = all.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"run_started"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"run_finished"), "{kinds:?}");
    for kind in ["node_started", "node_settled", "items_listed", "item_settled"] {
        assert!(kinds.contains(&kind), "no {kind} event: {kinds:?}");
    }
    // hello, three naps (one event each) and done start and settle.
    assert_eq!(kinds.iter().filter(|k| **k == "node_started").count(), 5, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "item_settled").count(), 3, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "node_settled").count(), 3, "{kinds:?}");
    assert!(all.iter().all(|e| e.data.is_object()), "{all:?}");
    let started = all[0].data.to_string();
    assert!(
        started.contains("\"quick\""),
        "run_started names its workflow: {started}"
    );
    let finished = &all[all.len() - 1].data;
    assert!(finished.to_string().contains("succeeded"), "{finished}");

    // After id 3: the rest, the same events.
    let rest = flow.events(&id, Some("3")).await;
    assert_eq!(rest, all[3..].to_vec());
    let rest = flow.events(&id, Some(&(n - 1).to_string())).await;
    assert_eq!(rest, all[(n - 1) as usize..].to_vec());
    let rest = flow.events(&id, Some(" 0 ")).await;
    assert_eq!(rest, all);

    // After the last one: nothing more will come, so the stream ends at once
    // (a browser's EventSource reconnects with the last id it saw).
    let started = Instant::now();
    let rest = flow.events(&id, Some(&n.to_string())).await;
    assert_eq!(rest, Vec::<Sse>::new());
    let rest = flow.events(&id, Some("999999")).await;
    assert_eq!(rest, Vec::<Sse>::new());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );

    for garbage in ["x", "-1", "1.5", "", "18446744073709551616"] {
        let resp = Resp::of(
            flow.request(reqwest::Method::GET, &format!("/api/v1/runs/{id}/events"))
                .header("Last-Event-ID", garbage),
        )
        .await;
        let detail = resp.problem(400);
        assert!(detail.contains("Last-Event-ID"), "{garbage:?}: {detail}");
    }
}

#[tokio::test]
async fn a_long_history_comes_whole_and_in_order() {
    // Pages of the journal: 600 items make over 1200 records.
    let dirs = Dirs::with(&[("quick.yaml", QUICK)]);
    let flow = Flow::start(&dirs);
    let naps = vec![0; 600];
    let report = flow
        .run_to_end("quick", &json!({ "input": { "who": "pages", "naps": naps } }))
        .await;
    assert_eq!(report["status"], "succeeded", "{report}");
    let id = report["run_id"].as_str().unwrap_or_default().to_owned();
    let all = flow.events(&id, None).await;
    let n = all.len() as u64;
    assert!(n > 1200, "{n} events");
    assert_eq!(seqs(&all), (1..=n).collect::<Vec<_>>());
    assert_eq!(all.iter().filter(|e| e.event == "item_settled").count(), 600);
    assert_eq!(all[all.len() - 1].event, "run_finished");
    // Resumed on either side of a page's edge.
    for after in [255, 256, 257, 700] {
        let rest = flow.events(&id, Some(&after.to_string())).await;
        assert_eq!(rest, all[after..].to_vec(), "after {after}");
    }
}

#[tokio::test]
async fn live_events_and_reconnecting() {
    let dirs = Dirs::with(&[("steps.yaml", &steps("steps", 400))]);
    let flow = Flow::start(&dirs);
    let started = flow.submit("steps", "", &json!({})).await;
    let id = started["run_id"].as_str().unwrap_or_default().to_owned();
    let opened = Instant::now();

    // Two streams from the start: one read to the end, one dropped after two
    // events and opened again after the last id it saw.
    let mut whole = flow.open_events(&id, None).await;
    let mut first = flow.open_events(&id, None).await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(
            first
                .next(PATIENCE)
                .await
                .unwrap_or_else(|| panic!("the stream ended early")),
        );
    }
    drop(first);
    let last = seen[1].id.clone().unwrap_or_default();

    let mut all = Vec::new();
    let mut finished_after = Duration::ZERO;
    while let Some(event) = whole.next(PATIENCE).await {
        if event.event == "node_started" && event.data.to_string().contains("\"two\"") {
            // Still under way: the run's end has not happened yet.
            let report = flow.report(&id).await;
            assert_eq!(report["status"], "running", "{report}");
        }
        if event.event == "run_finished" {
            finished_after = opened.elapsed();
        }
        all.push(event);
    }
    assert!(
        finished_after >= Duration::from_millis(600),
        "run_finished came {finished_after:?} after the stream opened: not live"
    );
    let n = all.len() as u64;
    assert_eq!(seqs(&all), (1..=n).collect::<Vec<_>>(), "{all:?}");
    let kinds: Vec<&str> = all.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "run_started",
            "node_started",
            "node_settled",
            "node_started",
            "node_settled",
            "run_finished"
        ]
    );
    let finished: &Value = &all[all.len() - 1].data;
    assert!(finished.to_string().contains("succeeded"), "{finished}");

    let rest = flow.events(&id, Some(&last)).await;
    seen.extend(rest);
    assert_eq!(seen, all, "two events, then the rest after Last-Event-ID {last}");
}
