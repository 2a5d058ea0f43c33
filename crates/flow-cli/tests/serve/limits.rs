//! A workflow's `limits:` hold across every run of the server: one engine
//! serves them all.

use serde_json::json;

use crate::support::{Dirs, Flow};

const ONE_AT_A_TIME: &str = r#"
name: guarded
limits:
  single: { max_concurrency: 1 }
nodes:
  - { id: work, kind: delay, limit: single, config: { ms: 300 } }
"#;

#[tokio::test]
async fn a_limit_is_shared_by_concurrent_runs() {
    let dirs = Dirs::with(&[("guarded.yaml", ONE_AT_A_TIME)]);
    let flow = Flow::start(&dirs);
    let body = json!({});
    let (a, b, c) = tokio::join!(
        flow.run_to_end("guarded", &body),
        flow.run_to_end("guarded", &body),
        flow.run_to_end("guarded", &body)
    );
    let mut waits: Vec<f64> = [&a, &b, &c]
        .iter()
        .map(|r| {
            assert_eq!(r["status"], "succeeded", "{r}");
            r["nodes"]["work"]["limit_wait_ms"].as_f64().unwrap_or(-1.0)
        })
        .collect();
    waits.sort_by(f64::total_cmp);
    // One slot for three runs of 300 ms: the second waits about 300 ms, the
    // third about 600 ms (generous margins: a shared machine).
    assert!(waits[0] >= 0.0, "{waits:?}");
    assert!(waits[1] >= 200.0, "the second run waited for the first: {waits:?}");
    assert!(waits[2] >= 450.0, "the third run waited for both: {waits:?}");
}
