//! `FLOW_TOKEN`: the API, `/metrics` and the pages need it; `/healthz`,
//! `/openapi.json`, `/assets/*` and `/login` do not. Without a token everything
//! is open. Beyond loopback the server does not start without a token (or
//! `--insecure`).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::support::{Dirs, Flow, Resp, Start, client, command};
use crate::workflows::QUICK;

const TOKEN: &str = "s3cret-Token_42";

/// Ten wrong tokens in a minute from one address: the next login, even with
/// the right token, is a 429 until the minute is over. `--cookie-secure`
/// marks the session cookie `Secure`.
#[tokio::test]
async fn logins_are_limited_and_the_cookie_can_be_secure() {
    let dirs = Dirs::with(&[("quick.yaml", QUICK)]);
    let flow = Flow::start_with(
        &dirs,
        Start {
            token: Some(TOKEN),
            args: &["--cookie-secure"],
            ..Start::default()
        },
    );
    let http = client();
    let login = |token: &str| {
        http.post(flow.url("/login"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("token={token}"))
    };
    let ok = Resp::of(login(TOKEN)).await;
    assert_eq!(ok.status, 303, "{ok:?}");
    assert!(ok.header("set-cookie").contains("; Secure"), "{ok:?}");
    for _ in 0..10 {
        assert_eq!(Resp::of(login("guess")).await.status, 401);
    }
    let limited = Resp::of(login(TOKEN)).await;
    assert_eq!(limited.status, 429, "{limited:?}");
    assert_eq!(limited.header("retry-after"), "60");
    assert!(limited.header("set-cookie").is_empty(), "{limited:?}");
    // The bearer token still works: the limit is on the login form.
    let api = Resp::of(http.get(flow.url("/api/v1/runs")).bearer_auth(TOKEN)).await;
    assert_eq!(api.status, 200, "{api:?}");
}

#[tokio::test]
async fn the_token_guards_the_api_metrics_and_pages() {
    let dirs = Dirs::with(&[("quick.yaml", QUICK)]);
    let flow = Flow::start_with(
        &dirs,
        Start {
            token: Some(TOKEN),
            ..Start::default()
        },
    );
    let http = client();
    let url = |path: &str| flow.url(path);
    let report = flow.run_to_end("quick", &json!({})).await;
    let id = report["run_id"].as_str().unwrap_or_default().to_owned();

    let guarded = [
        (Method::GET, "/api/v1/workflows".to_owned()),
        (Method::POST, "/api/v1/workflows/reload".to_owned()),
        (Method::POST, "/api/v1/workflows/quick/runs".to_owned()),
        (Method::GET, "/api/v1/runs".to_owned()),
        (Method::GET, format!("/api/v1/runs/{id}")),
        (Method::GET, format!("/api/v1/runs/{id}/events")),
        (Method::GET, format!("/api/v1/runs/{id}/timeline.svg")),
        (Method::POST, format!("/api/v1/runs/{id}/cancel")),
        (Method::POST, format!("/api/v1/runs/{id}/retry")),
        (Method::GET, "/api/v1/nothing".to_owned()),
        (Method::GET, "/metrics".to_owned()),
    ];
    let wrong = [
        None,
        Some(format!("Bearer {TOKEN}x")),
        Some("Bearer s3cret".to_owned()),
        Some("Bearer ".to_owned()),
        Some(format!("Basic {TOKEN}")),
        Some(TOKEN.to_owned()),
    ];
    for (method, path) in &guarded {
        for authorization in &wrong {
            let mut request = http.request(method.clone(), url(path));
            if let Some(value) = authorization {
                request = request.header("Authorization", value);
            }
            let resp = Resp::of(request).await;
            resp.problem(401);
            assert_eq!(resp.header("www-authenticate"), "Bearer", "{method} {path}");
        }
        // The right token opens it.
        let resp = Resp::of(http.request(method.clone(), url(path)).bearer_auth(TOKEN)).await;
        assert_ne!(resp.status, 401, "{method} {path} with the token: {resp:?}");
        assert!(resp.status < 500, "{method} {path} with the token: {resp:?}");
    }
    // A cookie with a made-up session, or the token itself as a cookie, opens nothing.
    for cookie in [
        "flow_session=nope".to_owned(),
        format!("flow_session={TOKEN}"),
        format!("flow_token={TOKEN}"),
    ] {
        let resp = Resp::of(http.get(url("/api/v1/runs")).header("Cookie", cookie)).await;
        resp.problem(401);
    }
    // The API's answers with the token.
    let runs = flow.get("/api/v1/runs").await;
    assert_eq!(runs.status, 200);
    let runs = runs.json();
    let listed = runs["runs"]
        .as_array()
        .is_some_and(|r| r.iter().any(|r| r["run_id"] == id.as_str()));
    assert!(listed, "{id} is not listed: {runs}");
    let metrics = flow.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.text.contains("flow_runs_started_total"), "{}", metrics.text);

    // Open to anyone.
    for path in [
        "/healthz",
        "/openapi.json",
        "/assets/app.js",
        "/assets/style.css",
        "/login",
    ] {
        let resp = Resp::of(http.get(url(path))).await;
        assert_eq!(resp.status, 200, "{path}: {resp:?}");
    }

    // Pages: to the login form without the token.
    for path in ["/".to_owned(), "/workflows".to_owned(), format!("/runs/{id}")] {
        let resp = Resp::of(http.get(url(&path))).await;
        assert_eq!(resp.status, 303, "{path}: {resp:?}");
        assert_eq!(resp.header("location"), "/login", "{path}");
        let resp = Resp::of(http.get(url(&path)).header("Cookie", "flow_session=nope")).await;
        assert_eq!(resp.status, 303, "{path} with a wrong cookie: {resp:?}");
    }
    let login = |token: &str| {
        http.post(url("/login"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("token={token}"))
    };
    let resp = Resp::of(login("wrong")).await;
    assert_eq!(resp.status, 401, "{resp:?}");
    assert!(resp.header("content-type").starts_with("text/html"), "{resp:?}");
    assert!(resp.header("set-cookie").is_empty(), "{resp:?}");
    let resp = Resp::of(http.post(url("/login")).body("")).await;
    assert_eq!(resp.status, 400, "a login without a token: {resp:?}");

    let resp = Resp::of(login(TOKEN)).await;
    assert_eq!(resp.status, 303, "{resp:?}");
    assert_eq!(resp.header("location"), "/");
    let set_cookie = resp.header("set-cookie");
    // A session id, never the token.
    assert!(set_cookie.starts_with("flow_session="), "{set_cookie}");
    assert!(!set_cookie.contains(TOKEN), "{set_cookie}");
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    assert!(
        !set_cookie.contains("Secure"),
        "not without --cookie-secure: {set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap_or_default().to_owned();
    for path in ["/".to_owned(), "/workflows".to_owned(), format!("/runs/{id}")] {
        let resp = Resp::of(http.get(url(&path)).header("Cookie", &cookie)).await;
        assert_eq!(resp.status, 200, "{path} with the cookie: {resp:?}");
        assert!(resp.header("content-type").starts_with("text/html"), "{path}: {resp:?}");
        // The bearer token opens pages too.
        let resp = Resp::of(http.get(url(&path)).bearer_auth(TOKEN)).await;
        assert_eq!(resp.status, 200, "{path} with the bearer token: {resp:?}");
    }
    let page = Resp::of(http.get(url(&format!("/runs/{id}"))).header("Cookie", &cookie)).await;
    assert!(page.text.contains(&id), "the run's page names the run");
    // The cookie opens the API too (the page's own requests).
    let resp = Resp::of(
        http.get(url("/api/v1/runs"))
            .header("Cookie", format!("theme=dark; {cookie}")),
    )
    .await;
    assert_eq!(resp.status, 200, "{resp:?}");
}

#[tokio::test]
async fn without_a_token_everything_is_open() {
    let dirs = Dirs::with(&[("quick.yaml", QUICK)]);
    let flow = Flow::start(&dirs);
    let report = flow.run_to_end("quick", &json!({})).await;
    let id = report["run_id"].as_str().unwrap_or_default().to_owned();
    let http = client();
    for path in [
        "/".to_owned(),
        "/workflows".to_owned(),
        format!("/runs/{id}"),
        "/api/v1/workflows".to_owned(),
        format!("/api/v1/runs/{id}"),
        "/metrics".to_owned(),
    ] {
        // Any Authorization header is ignored.
        let resp = Resp::of(http.get(flow.url(&path)).header("Authorization", "Bearer whatever")).await;
        assert_eq!(resp.status, 200, "{path}: {resp:?}");
    }
    // The login form has nothing to check: to the runs.
    let resp = Resp::of(
        http.post(flow.url("/login"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("token=anything"),
    )
    .await;
    assert_eq!(resp.status, 303, "{resp:?}");
    assert_eq!(resp.header("location"), "/");
    let page = Resp::of(http.get(flow.url("/runs/nope"))).await;
    assert_eq!(page.status, 404, "{page:?}");
    let page = Resp::of(http.get(flow.url("/no/such/page"))).await;
    assert_eq!(page.status, 404, "{page:?}");
}

/// `flow serve` with `args` and `FLOW_TOKEN=token`, expected to exit at once.
fn refused(args: &[&str], token: Option<&str>) -> (Option<i32>, String) {
    let dirs = Dirs::new();
    let mut cmd = command();
    cmd.arg("serve")
        .arg("--workflows")
        .arg(&dirs.workflows)
        .arg("--journal")
        .arg(&dirs.journal)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    if let Some(token) = token {
        cmd.env("FLOW_TOKEN", token);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run flow serve: {e}"));
    let started = Instant::now();
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("flow serve {args:?} did not exit: it should have refused to start");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    assert!(!dirs.journal.exists(), "a refused start created the journal");
    (status.code(), stderr)
}

#[tokio::test]
async fn beyond_loopback_only_with_a_token_or_insecure() {
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let (code, stderr) = refused(&["--listen", listen], None);
        assert_eq!(code, Some(2), "{listen}: {stderr}");
        assert!(stderr.contains("FLOW_TOKEN"), "{stderr}");
        assert!(stderr.contains("--insecure"), "{stderr}");
        assert!(!stderr.contains("listening"), "{stderr}");
    }
    let (code, stderr) = refused(&["--listen", "127.0.0.1:0"], Some(""));
    assert_eq!(code, Some(2), "an empty token: {stderr}");
    assert!(stderr.contains("FLOW_TOKEN"), "{stderr}");
    let (code, stderr) = refused(&["--listen", "127.0.0.1:0", "--grace", "soon"], None);
    assert_eq!(code, Some(2), "a bad --grace: {stderr}");

    let dirs = Dirs::with(&[("quick.yaml", QUICK)]);
    let open = Flow::start_with(
        &dirs,
        Start {
            listen: Some("0.0.0.0:0"),
            args: &["--insecure"],
            ..Start::default()
        },
    );
    assert!(
        open.stderr().contains("listening on http://0.0.0.0:"),
        "{}",
        open.stderr()
    );
    let resp = open.get("/api/v1/workflows").await;
    assert_eq!(resp.status, 200, "--insecure: no token needed: {resp:?}");
    drop(open);

    let guarded = Flow::start_with(
        &dirs,
        Start {
            listen: Some("0.0.0.0:0"),
            token: Some(TOKEN),
            ..Start::default()
        },
    );
    let resp = guarded.get("/api/v1/workflows").await;
    assert_eq!(resp.status, 200, "{resp:?}");
    Resp::of(client().get(guarded.url("/api/v1/workflows")))
        .await
        .problem(401);
    assert_eq!(Resp::of(client().get(guarded.url("/healthz"))).await.status, 200);
}
