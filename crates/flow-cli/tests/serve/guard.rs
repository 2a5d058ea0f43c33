//! Cross-site requests and DNS rebinding, as a browser would send them: a
//! page of another origin (another port of this host) posting `text/plain` or
//! a form, an attacker's name pointing at 127.0.0.1, all without a token (the
//! default on loopback). Refused, with a problem; the server's own page and
//! scripts (no `Origin`, or its own) go through.

use reqwest::Method;
use serde_json::json;

use crate::support::{Dirs, Flow, Resp, Start};
use crate::workflows::QUICK;

#[tokio::test]
async fn cross_site_and_rebinding_requests_are_refused() {
    let dirs = Dirs::with(&[("quick.yaml", QUICK)]);
    let flow = Flow::start(&dirs);
    let own = flow.url("").trim_end_matches('/').to_owned();
    let post = |origin: Option<&str>, content_type: Option<&str>, body: &str| {
        let mut request = flow.request(Method::POST, "/api/v1/workflows/quick/runs");
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        Resp::of(request.body(body.to_owned()))
    };
    let body = r#"{"input": {"who": "x", "naps": [1]}}"#;
    // `fetch(url, {mode: 'no-cors', headers: {'Content-Type': 'text/plain'}})` from another port.
    let other = "http://127.0.0.1:1";
    post(Some(other), Some("text/plain;charset=UTF-8"), body)
        .await
        .problem(403);
    // `<form enctype="text/plain">` and a form post, from another site.
    post(Some("https://attacker.example"), Some("text/plain"), body)
        .await
        .problem(403);
    post(Some("null"), Some("application/x-www-form-urlencoded"), "input=1")
        .await
        .problem(403);
    // Even without an Origin, a body must be JSON.
    let detail = post(None, Some("text/plain"), body).await.problem(415);
    assert!(detail.contains("application/json"), "{detail}");
    post(None, None, body).await.problem(415);
    // A cancel from another origin, bodiless.
    let cancel = Resp::of(
        flow.request(Method::POST, "/api/v1/runs/x/cancel")
            .header("Origin", other),
    )
    .await;
    cancel.problem(403);
    // Nothing of that ran.
    let list = flow.get("/api/v1/runs").await.json();
    assert_eq!(list["runs"].as_array().map(Vec::len), Some(0), "{list}");

    // The server's own origin, or none (curl), with JSON: started.
    let started = post(Some(&own), Some("application/json"), body).await;
    assert_eq!(started.status, 201, "{started:?}");
    let started = post(None, Some("application/json; charset=utf-8"), body).await;
    assert_eq!(started.status, 201, "{started:?}");

    // DNS rebinding: a request naming another host reads nothing.
    let rebound = Resp::of(
        flow.request(Method::GET, "/api/v1/runs")
            .header("Host", "attacker.example:8080"),
    )
    .await;
    let detail = rebound.problem(421);
    assert!(detail.contains("--allowed-host"), "{detail}");
    let page = Resp::of(flow.request(Method::GET, "/").header("Host", "attacker.example")).await;
    assert_eq!(page.status, 421, "{page:?}");
    // Addresses and localhost are this server; /healthz answers any name.
    for host in ["localhost", "127.0.0.1:9", "[::1]:8080"] {
        let resp = Resp::of(flow.request(Method::GET, "/api/v1/runs").header("Host", host)).await;
        assert_eq!(resp.status, 200, "{host}: {resp:?}");
    }
    let health = Resp::of(flow.request(Method::GET, "/healthz").header("Host", "flow-service")).await;
    assert_eq!(health.status, 200, "{health:?}");
}

#[tokio::test]
async fn an_allowed_host_is_served() {
    let dirs = Dirs::with(&[("quick.yaml", QUICK)]);
    let flow = Flow::start_with(
        &dirs,
        Start {
            args: &["--allowed-host", "flow.example.com"],
            ..Start::default()
        },
    );
    let resp = Resp::of(
        flow.request(Method::GET, "/api/v1/workflows")
            .header("Host", "FLOW.example.com:443"),
    )
    .await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let other = Resp::of(
        flow.request(Method::GET, "/api/v1/workflows")
            .header("Host", "other.example.com"),
    )
    .await;
    other.problem(421);
    // Its own origin under that name may post.
    let submit = Resp::of(
        flow.request(Method::POST, "/api/v1/workflows/quick/runs")
            .header("Host", "flow.example.com")
            .header("Origin", "https://flow.example.com")
            .json(&json!({})),
    )
    .await;
    assert_eq!(submit.status, 201, "{submit:?}");
}

/// The workflows page's start form, posted as a browser without JavaScript
/// posts it: form-encoded, with the page's `csrf` value, from the server's own
/// origin. It starts the run and answers with the run's page; without the
/// value, or from another origin, nothing starts.
#[tokio::test]
async fn the_start_form_works_without_javascript() {
    let dirs = Dirs::with(&[("quick.yaml", QUICK)]);
    let flow = Flow::start(&dirs);
    let own = flow.url("").trim_end_matches('/').to_owned();
    let page = flow.get("/workflows").await;
    assert_eq!(page.status, 200);
    let csrf = page
        .text
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no csrf value in the page: {}", page.text))
        .to_owned();
    assert!(page.text.contains(r#"action="/workflows/quick/runs""#), "{}", page.text);
    let post = |origin: &str, form: Vec<(&'static str, String)>| {
        Resp::of(
            flow.request(Method::POST, "/workflows/quick/runs")
                .header("Origin", origin.to_owned())
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form_encoded(&form)),
        )
    };

    let started = post(
        &own,
        vec![
            ("input", r#"{"who": "form", "naps": [1]}"#.to_owned()),
            ("csrf", csrf.clone()),
        ],
    )
    .await;
    assert_eq!(started.status, 303, "{started:?}");
    let location = started.header("location");
    let run_id = location
        .strip_prefix("/runs/")
        .unwrap_or_else(|| panic!("not a run's page: {location}"))
        .to_owned();
    let report = flow.wait_status(&run_id, "succeeded").await;
    assert_eq!(report["nodes"]["done"]["output"]["greeting"], "hello form", "{report}");
    // Left empty: the file's own input.
    let started = post(&own, vec![("input", "  ".to_owned()), ("csrf", csrf.clone())]).await;
    assert_eq!(started.status, 303, "{started:?}");

    let runs_before = flow.get("/api/v1/runs").await.json()["runs"]
        .as_array()
        .map_or(0, Vec::len);
    // Without the page's value, with another, from another origin, bad JSON: refused, nothing starts.
    let missing = post(&own, vec![("input", "{}".to_owned())]).await;
    assert_eq!(missing.status, 403, "{missing:?}");
    assert!(missing.text.contains("open the workflows page again"), "{missing:?}");
    let wrong = post(&own, vec![("input", "{}".to_owned()), ("csrf", "guess".to_owned())]).await;
    assert_eq!(wrong.status, 403, "{wrong:?}");
    let foreign = post(
        "http://127.0.0.1:1",
        vec![("input", "{}".to_owned()), ("csrf", csrf.clone())],
    )
    .await;
    foreign.problem(403);
    let bad = post(&own, vec![("input", "{who".to_owned()), ("csrf", csrf.clone())]).await;
    assert_eq!(bad.status, 422, "{bad:?}");
    assert!(bad.text.contains("The input is not JSON"), "{bad:?}");
    let unknown = Resp::of(
        flow.request(Method::POST, "/workflows/nope/runs")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form_encoded(&[("input", String::new()), ("csrf", csrf.clone())])),
    )
    .await;
    assert_eq!(unknown.status, 404, "{unknown:?}");
    let runs_after = flow.get("/api/v1/runs").await.json()["runs"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(runs_before, runs_after, "a refused form started a run");
}

/// `application/x-www-form-urlencoded`, as a browser encodes a form.
pub(crate) fn form_encoded(fields: &[(&str, String)]) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => (b as char).to_string(),
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}
