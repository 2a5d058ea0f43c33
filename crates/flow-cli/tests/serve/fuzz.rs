//! Bad input: a property test sends malformed requests (methods, paths with
//! garbage and percent-encoded segments, queries, headers, bodies) to every
//! endpoint of one server. No answer is a 5xx, every API error is a problem,
//! and the server is still alive and answering at the end. A few raw requests
//! that no HTTP client would send follow.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Dirs, Flow, Resp, Start, header, parse, problem_issue};
use crate::workflows::{BROKEN, ECHO, FAILING, QUICK};

const MAX_BODY: usize = 2048;

#[derive(Debug, Clone)]
struct Case {
    method: Method,
    path: String,
    query: String,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Option<Vec<u8>>,
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        4 => Just(Method::GET),
        4 => Just(Method::POST),
        1 => Just(Method::PUT),
        1 => Just(Method::DELETE),
        1 => Just(Method::PATCH),
        1 => Just(Method::HEAD),
        1 => Just(Method::OPTIONS),
    ]
}

/// A path segment: a name or id that exists, or garbage.
fn segment(known: Vec<String>) -> impl Strategy<Value = String> {
    let known = proptest::sample::select(known);
    prop_oneof![
        12 => known,
        2 => "[a-zA-Z0-9._~-]{0,24}",
        1 => "(%[0-9A-Fa-f]{2}){1,8}",
        1 => "%[G-Zg-z%]{0,3}",
        1 => Just("..".to_owned()),
        1 => Just("%2e%2e%2f%2e%2e".to_owned()),
        1 => Just("x".repeat(3000)),
        1 => "\\PC{0,12}",
        1 => "[ -~]{0,16}",
    ]
}

/// A path with the method it takes.
fn path(names: Vec<String>, ids: Vec<String>) -> impl Strategy<Value = (Method, String)> {
    (0usize..22, segment(names), segment(ids)).prop_map(|(which, name, id)| match which {
        0 => (Method::GET, "/api/v1/workflows".to_owned()),
        1 => (Method::POST, "/api/v1/workflows/reload".to_owned()),
        2..=6 => (Method::POST, format!("/api/v1/workflows/{name}/runs")),
        7 => (Method::GET, "/api/v1/runs".to_owned()),
        8 => (Method::GET, format!("/api/v1/runs/{id}")),
        9 => (Method::GET, format!("/api/v1/runs/{id}/events")),
        10 => (Method::GET, format!("/api/v1/runs/{id}/timeline.svg")),
        11 => (Method::POST, format!("/api/v1/runs/{id}/cancel")),
        12 => (Method::POST, format!("/api/v1/runs/{id}/retry")),
        13 => (Method::GET, format!("/api/{name}")),
        14 => (Method::POST, format!("/api/v1/{name}/{id}")),
        15 => (Method::GET, "/metrics".to_owned()),
        16 => (Method::GET, "/healthz".to_owned()),
        17 => (Method::GET, "/openapi.json".to_owned()),
        18 => (Method::GET, format!("/runs/{id}")),
        19 => (Method::GET, "/".to_owned()),
        20 => (Method::POST, "/login".to_owned()),
        _ => (Method::GET, format!("/assets/{name}")),
    })
}

fn query_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        (0u64..3).prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        Just("1e999".to_owned()),
        Just("NaN".to_owned()),
        Just("-0.0".to_owned()),
        Just("0.01".to_owned()),
        Just("99999999999999999999999999".to_owned()),
        Just("running".to_owned()),
        Just("interrupted".to_owned()),
        Just("succeeded".to_owned()),
        Just("1700000000000_x".to_owned()),
        Just("_".to_owned()),
        "(%[0-9A-Fa-f]{2}){1,6}",
        "[ -~]{0,16}",
        "\\PC{0,8}",
    ]
}

fn query() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("wait".to_owned()),
        Just("limit".to_owned()),
        Just("cursor".to_owned()),
        Just("status".to_owned()),
        Just("workflow".to_owned()),
        "[a-z%=&]{0,6}",
    ];
    prop_oneof![
        5 => Just(String::new()),
        3 => proptest::collection::vec((key, query_value()), 1..4).prop_map(|pairs| {
            pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
        }),
        1 => "[&=%a-z0-9]{0,12}",
    ]
}

/// Header bytes a client can send: visible ASCII, spaces, tabs and obs-text.
fn header_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![8 => 0x20u8..0x7f, 1 => Just(b'\t'), 2 => 0x80u8..=0xff],
        0..max,
    )
}

fn headers() -> impl Strategy<Value = Vec<(&'static str, Vec<u8>)>> {
    let content_type = prop_oneof![
        Just(b"application/json".to_vec()),
        Just(b"text/plain".to_vec()),
        Just(b"application/x-www-form-urlencoded".to_vec()),
        Just(b"multipart/form-data; boundary=x".to_vec()),
        header_bytes(40),
    ];
    let last_event_id = prop_oneof![
        (0u64..40).prop_map(|n| n.to_string().into_bytes()),
        Just(b"18446744073709551615".to_vec()),
        header_bytes(30),
    ];
    let authorization = prop_oneof![
        Just(b"Bearer ".to_vec()),
        header_bytes(40).prop_map(|b| [b"Bearer ".to_vec(), b].concat()),
        header_bytes(40),
    ];
    let one = prop_oneof![
        content_type.prop_map(|v| ("content-type", v)),
        header_bytes(300).prop_map(|v| ("idempotency-key", v)),
        Just(("idempotency-key", b"same-key".to_vec())),
        last_event_id.prop_map(|v| ("last-event-id", v)),
        authorization.prop_map(|v| ("authorization", v)),
        header_bytes(60).prop_map(|v| ("cookie", v)),
        Just(("accept", b"text/event-stream".to_vec())),
        Just(("content-encoding", b"gzip".to_vec())),
    ];
    prop_oneof![2 => Just(Vec::new()), 3 => proptest::collection::vec(one, 1..4)]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        "\\PC{0,12}".prop_map(Value::String),
        Just(json!("{{ input.x }}")),
        Just(json!("{{ nodes.nope.output }}")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn strategy_object() -> impl Strategy<Value = Value> {
    let kind = prop_oneof![
        Just(json!("parallel")),
        Just(json!("sequential")),
        Just(json!("all-settled")),
        Just(json!("rate-limited")),
        "[a-z-]{0,12}".prop_map(Value::String),
        json_value(),
    ];
    let number = prop_oneof![
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(1)),
        Just(json!(1e300)),
        Just(json!(0.5)),
        Just(json!(u64::MAX)),
        json_value(),
    ];
    (
        kind,
        proptest::option::of(number.clone()),
        proptest::option::of(number.clone()),
        proptest::option::of(number),
        proptest::option::of(json_value()),
        proptest::option::of(json_value()),
    )
        .prop_map(|(kind, max_concurrency, per_second, burst, fail_fast, junk)| {
            let mut map = serde_json::Map::new();
            map.insert("kind".into(), kind);
            for (name, value) in [
                ("max_concurrency", max_concurrency),
                ("per_second", per_second),
                ("burst", burst),
                ("fail_fast", fail_fast),
                ("junk", junk),
            ] {
                if let Some(value) = value {
                    map.insert(name.into(), value);
                }
            }
            Value::Object(map)
        })
}

fn nested(depth: usize, object: bool) -> String {
    if object {
        format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
    } else {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }
}

fn body() -> impl Strategy<Value = Option<Vec<u8>>> {
    let submit = (
        proptest::option::of(json_value()),
        proptest::option::of(prop_oneof![strategy_object(), json_value()]),
        proptest::option::of(json_value()),
    )
        .prop_map(|(input, strategy, extra)| {
            let mut map = serde_json::Map::new();
            if let Some(input) = input {
                map.insert("input".into(), input);
            }
            if let Some(strategy) = strategy {
                map.insert("strategy".into(), strategy);
            }
            if let Some(extra) = extra {
                map.insert("extra".into(), extra);
            }
            Value::Object(map).to_string().into_bytes()
        });
    let truncated = (json_value(), any::<prop::sample::Index>()).prop_map(|(value, at)| {
        let text = json!({ "input": value }).to_string();
        let cut = at.index(text.len() + 1);
        text.as_bytes()[..cut].to_vec()
    });
    let deep = (1usize..4000, any::<bool>(), any::<bool>()).prop_map(|(depth, object, wrapped)| {
        let inner = nested(depth, object);
        if wrapped {
            format!("{{\"input\": {{\"x\": {inner}}}}}").into_bytes()
        } else {
            inner.into_bytes()
        }
    });
    let numbers = prop_oneof![
        Just("{\"input\": {\"x\": 1e999}}"),
        Just("{\"input\": {\"x\": -1e999}}"),
        Just("{\"input\": {\"x\": 123456789012345678901234567890123}}"),
        Just("{\"input\": {\"items\": 1e308}}"),
        Just("{\"input\": 18446744073709551616}"),
        Just("{\"strategy\": {\"kind\": \"rate-limited\", \"per_second\": 1e-320}}"),
        Just("{\"strategy\": {\"kind\": \"parallel\", \"max_concurrency\": 18446744073709551616}}"),
        Just("{\"input\": {\"items\": [1, 2, 3]}, \"input\": {}}"),
    ]
    .prop_map(|s| s.as_bytes().to_vec());
    prop_oneof![
        2 => Just(None),
        1 => proptest::collection::vec(any::<u8>(), 0..256).prop_map(Some),
        4 => submit.prop_map(Some),
        2 => truncated.prop_map(Some),
        1 => deep.prop_map(Some),
        1 => numbers.prop_map(Some),
        1 => json_value().prop_map(|v| Some(v.to_string().into_bytes())),
        1 => (MAX_BODY..MAX_BODY * 3).prop_map(|n| Some(format!("{{\"input\": \"{}\"}}", "x".repeat(n)).into_bytes())),
    ]
}

fn case(names: Vec<String>, ids: Vec<String>) -> impl Strategy<Value = Case> {
    // Mostly the method the path takes, else any.
    let method = proptest::option::weighted(0.3, method());
    (method, path(names, ids), query(), headers(), body()).prop_map(|(method, (usual, path), query, headers, body)| {
        Case {
            method: method.unwrap_or(usual),
            path,
            query,
            headers,
            body,
        }
    })
}

/// Sends one case; what was wrong with the answer, if anything.
async fn check(flow: &Flow, case: &Case, seen: &mut BTreeMap<u16, usize>) -> Result<(), String> {
    let mut url = flow.url(&case.path);
    if !case.query.is_empty() {
        url = format!("{url}?{}", case.query);
    }
    let mut request = flow.client.request(case.method.clone(), &url);
    for (name, value) in &case.headers {
        match reqwest::header::HeaderValue::from_bytes(value) {
            Ok(value) => request = request.header(*name, value),
            Err(_) => continue,
        }
    }
    if let Some(body) = &case.body {
        request = request.body(body.clone());
    }
    let response = match tokio::time::timeout(Duration::from_secs(15), request.send()).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) if e.is_builder() => return Ok(()), // a URL reqwest will not send
        Ok(Err(e)) => return Err(format!("the request failed: {e}")),
        Err(_) => return Err("no answer in 15 s".to_owned()),
    };
    let status = response.status().as_u16();
    // The path as sent (`..` segments resolved).
    let path = response.url().path().to_owned();
    *seen.entry(status).or_default() += 1;
    let content_type = header(response.headers(), "content-type");
    // An event stream may never end: only its head is looked at.
    let body = if content_type.starts_with("text/event-stream") {
        String::new()
    } else {
        match tokio::time::timeout(Duration::from_secs(15), response.bytes()).await {
            Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
            Ok(Err(e)) => return Err(format!("{status}: reading the body failed: {e}")),
            Err(_) => return Err(format!("{status}: the body did not end in 15 s")),
        }
    };
    if status >= 500 {
        return Err(format!("{status} {content_type}: {body}"));
    }
    let api = path.starts_with("/api/") || path == "/metrics";
    if api && status >= 400 && case.method != Method::HEAD {
        problem_issue(status, &content_type, &body)?;
    }
    // A run that was started can be read back, whatever its input.
    if status == 201
        && let Ok(started) = parse(&body)
        && let Some(url) = started["url"].as_str()
    {
        for path in [url.to_owned(), format!("{url}/timeline.svg")] {
            let resp = Resp::of(flow.request(Method::GET, &path)).await;
            if resp.status != 200 {
                return Err(format!("GET {path} of a run just started: {resp:?}"));
            }
        }
    }
    Ok(())
}

#[test]
fn malformed_requests_never_break_the_server() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("a runtime: {e}"));
    let dirs = Dirs::with(&[
        ("quick.yaml", QUICK),
        ("echo.yaml", ECHO),
        ("failing.yaml", FAILING),
        ("broken.yaml", BROKEN),
    ]);
    let max_body = MAX_BODY.to_string();
    let mut flow = Flow::start_with(
        &dirs,
        Start {
            args: &["--max-body-bytes", &max_body],
            ..Start::default()
        },
    );
    // Real runs, finished, for the ids the cases use.
    let names: Vec<String> = ["quick", "echo", "failing", "broken", "nope"]
        .map(str::to_owned)
        .to_vec();
    let mut ids = vec!["01a2315f-fd76-70cd-ba53-0a3861b0b045".to_owned()];
    runtime.block_on(async {
        for workflow in ["quick", "failing", "echo"] {
            let report = flow
                .run_to_end(workflow, &json!({ "input": { "items": [1, 2] } }))
                .await;
            ids.push(report["run_id"].as_str().unwrap_or_default().to_owned());
        }
    });

    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    });
    let seen = std::cell::RefCell::new(BTreeMap::new());
    let result = runner.run(&case(names, ids), |case| {
        runtime
            .block_on(check(&flow, &case, &mut seen.borrow_mut()))
            .map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let seen = seen.into_inner();
    eprintln!("statuses of the malformed requests: {seen:?}");
    assert!(seen.keys().any(|s| (200..300).contains(s)), "{seen:?}");
    // The rarer answers (409, 413, 422) are checked by the API tests; here
    // only the common ones must show up.
    for status in [400, 404, 405] {
        assert!(seen.contains_key(&status), "no {status} among {seen:?}");
    }

    runtime.block_on(async {
        raw_requests(&flow).await;
        let health = flow.get("/healthz").await;
        assert_eq!(health.status, 200, "{health:?}");
        let report = flow.run_to_end("quick", &json!({})).await;
        assert_eq!(report["status"], "succeeded", "{report}");
    });
    assert!(flow.alive(), "the server died: {}", flow.stderr());
    assert!(!flow.stderr().contains("panicked"), "{}", flow.stderr());
    flow.kill();
}

/// Requests no HTTP client would send, over a plain socket: the answer (if
/// any) is not a 5xx.
async fn raw_requests(flow: &Flow) {
    let addr = flow.base.trim_start_matches("http://").to_owned();
    let requests: Vec<Vec<u8>> = vec![
        b"GET /api/v1/runs/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET /api/v1/runs?limit=\xff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        b"POST /api/v1/workflows/quick/runs HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n{\"in".to_vec(),
        b"POST /api/v1/workflows/quick/runs HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\nConnection: close\r\n\r\n{}".to_vec(),
        b"POST /api/v1/workflows/quick/runs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n".to_vec(),
        b"GET /api/v1/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xff\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET /api/v1/runs/x/events HTTP/1.1\r\nHost: x\r\nLast-Event-ID: \xc3\x28\r\nConnection: close\r\n\r\n".to_vec(),
        b"BREW /api/v1/runs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET /api/v1/workflows HTTP/9.9\r\n\r\n".to_vec(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
        b"GET /api/v1/workflows HTTP/1.1\r\nHost: x\r\n".to_vec(),
        [b"GET /api/v1/workflows HTTP/1.1\r\nHost: x\r\nX-Long: ".to_vec(), vec![b'a'; 100_000], b"\r\n\r\n".to_vec()].concat(),
    ];
    for request in requests {
        let shown = String::from_utf8_lossy(&request[..request.len().min(60)]).into_owned();
        let Ok(mut socket) = tokio::net::TcpStream::connect(&addr).await else {
            panic!("cannot connect to {addr}");
        };
        let _ = socket.write_all(&request).await;
        let _ = socket.shutdown().await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut answer)).await;
        let text = String::from_utf8_lossy(&answer);
        let status = text
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse::<u16>().ok());
        if let Some(status) = status {
            assert!(status < 500, "{shown:?} → {text}");
        }
    }
}
