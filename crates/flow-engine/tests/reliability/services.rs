//! Faults of services: an `http` node against a server on 127.0.0.1 that this test
//! starts (a raw `TcpListener`, so every byte is under control). Whatever the
//! server does, the node ends in bounded time with a failure that says what went
//! wrong, and the other branches of the run are not affected.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use flow_engine::strategy::StrategyKind;
use flow_engine::{NodeStatus, Report, RunOptions, RunStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::support::{engine, error, node, run, statuses, strategy, workflow};

/// A server whose behaviour depends on the request's path. It counts requests per
/// path, and stops when dropped; every loop of it is bounded in time and bytes.
struct Misbehaving {
    port: u16,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    accept: JoinHandle<()>,
}

impl Drop for Misbehaving {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Misbehaving {
    async fn start() -> Misbehaving {
        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("bind: {e}"),
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let counter = hits.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    // No connection outlives 30 s, whatever it does.
                    let _ = tokio::time::timeout(Duration::from_secs(30), serve(stream, counter)).await;
                });
            }
        });
        Misbehaving { port, hits, accept }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn hits(&self, path: &str) -> usize {
        let hits = self.hits.lock().unwrap_or_else(PoisonError::into_inner);
        hits.get(path).copied().unwrap_or(0)
    }
}

/// Reads one request head; returns its path.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.ok().filter(|&n| n > 0)?;
        head.extend_from_slice(&buf[..n]);
        if head.len() > 64 * 1024 {
            return None;
        }
    }
    let text = String::from_utf8_lossy(&head);
    text.split_whitespace().nth(1).map(str::to_owned)
}

fn response(status: &str, headers: &[&str], body: &str) -> String {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.push_str(body);
    out
}

async fn serve(mut stream: TcpStream, hits: Arc<Mutex<HashMap<String, usize>>>) {
    let Some(path) = read_head(&mut stream).await else {
        return;
    };
    let hit = {
        let mut hits = hits.lock().unwrap_or_else(PoisonError::into_inner);
        let n = hits.entry(path.clone()).or_default();
        *n += 1;
        *n
    };
    let write = |text: String| text.into_bytes();
    let reply = match path.as_str() {
        "/ok" => write(response(
            "200 OK",
            &["Content-Type: application/json"],
            r#"{"ok":true}"#,
        )),
        "/no-headers" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            return;
        }
        "/reset-mid-body" => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n";
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&[b'x'; 1000]).await;
            let _ = stream.flush().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            // SO_LINGER 0: closing sends a RST, not a FIN.
            let _ = stream.set_zero_linger();
            return;
        }
        "/endless-body" => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "y".repeat(64 * 1024));
            // At most 1 GiB: the client must give up long before.
            for _ in 0..16 * 1024 {
                if stream.write_all(chunk.as_bytes()).await.is_err() {
                    return;
                }
            }
            return;
        }
        "/huge-length" => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10000000000\r\n\r\n";
            let _ = stream.write_all(head.as_bytes()).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
            return;
        }
        "/trickle" => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n";
            let _ = stream.write_all(head.as_bytes()).await;
            for _ in 0..1000 {
                if stream.write_all(b"z").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            return;
        }
        "/retry-after-1" if hit == 1 => write(response("503 Service Unavailable", &["Retry-After: 1"], "busy")),
        "/retry-after-1" => write(response(
            "200 OK",
            &["Content-Type: application/json"],
            r#"{"ok":true}"#,
        )),
        "/retry-after-30" => write(response("503 Service Unavailable", &["Retry-After: 30"], "busy")),
        "/redirect-loop" => write(response("302 Found", &["Location: /redirect-loop"], "")),
        "/invalid-json" => write(response("200 OK", &["Content-Type: application/json"], "{\"ok\": tru")),
        "/garbage" => b"SURPRISE\r\nthis is not HTTP at all\r\n\r\n".to_vec(),
        "/close" => return,
        _ => write(response("404 Not Found", &[], "no such path")),
    };
    let _ = stream.write_all(&reply).await;
    let _ = stream.flush().await;
}

/// Runs one `http` node against `path` next to a healthy branch, under
/// all-settled; returns the report and how long the run took.
async fn fault(server: &Misbehaving, path: &str, config: &str, node_fields: &str) -> (Report, Duration) {
    let (engine, _) = engine();
    let wf = workflow(
        &engine,
        &format!(
            "nodes:
  - {{ id: call, kind: http, config: {{ url: \"{}\"{config} }}{node_fields} }}
  - {{ id: healthy, kind: delay, config: {{ ms: 20 }} }}
  - {{ id: after-healthy, kind: noop }}
edges: [{{ from: healthy, to: after-healthy }}]",
            server.url(path)
        ),
    );
    let started = Instant::now();
    let report = run(
        &engine,
        &wf,
        RunOptions::new().strategy(strategy(StrategyKind::AllSettled)),
    )
    .await;
    let took = started.elapsed();
    assert!(
        report
            .node("healthy")
            .is_some_and(|n| n.status == NodeStatus::Succeeded)
            && report
                .node("after-healthy")
                .is_some_and(|n| n.status == NodeStatus::Succeeded),
        "{path}: the healthy branch suffered: {}",
        statuses(&report)
    );
    (report, took)
}

/// The `call` node failed with a message holding `fragment`, within `bound`.
async fn check(path: &str, config: &str, node_fields: &str, fragment: &str, bound: Duration) -> (Report, Duration) {
    let server = Misbehaving::start().await;
    let (report, took) = fault(&server, path, config, node_fields).await;
    assert_eq!(report.status, RunStatus::Failed, "{path}: {}", statuses(&report));
    assert_eq!(node(&report, "call").status, NodeStatus::Failed, "{path}");
    let message = error(&report, "call");
    assert!(message.contains(fragment), "{path}: `{message}` lacks `{fragment}`");
    assert!(took < bound, "{path}: took {took:?}, over {bound:?}");
    (report, took)
}

const SECONDS_5: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_that_never_come_hit_the_request_timeout() {
    let (_, took) = check(
        "/no-headers",
        ", timeout_ms: 200",
        "",
        "timed out after 200 ms (config.timeout_ms)",
        SECONDS_5,
    )
    .await;
    assert!(took >= Duration::from_millis(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_that_never_come_hit_the_node_timeout() {
    check(
        "/no-headers",
        "",
        ", timeout_ms: 200",
        "timed out after 200 ms (timeout_ms)",
        SECONDS_5,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_trickles_hits_the_request_timeout() {
    check("/trickle", ", timeout_ms: 300", "", "timed out after 300 ms", SECONDS_5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_reset_mid_body_fails_the_node() {
    check("/reset-mid-body", "", "", "reading the response failed", SECONDS_5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_without_an_answer_fails_the_node() {
    check("/close", "", "", "request failed", SECONDS_5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_is_not_http_fails_the_node() {
    check("/garbage", "", "", "request failed", SECONDS_5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_body_stops_at_the_cap() {
    let _turn = crate::support::memory_turn().await;
    let before = crate::support::rss_kib();
    check(
        "/endless-body",
        ", max_body_bytes: 1048576",
        "",
        "larger than config.max_body_bytes (1048576 bytes)",
        SECONDS_5,
    )
    .await;
    // The cap bounds memory too (generous: other tests share this process).
    let grown_mib = crate::support::rss_kib().saturating_sub(before) / 1024;
    assert!(grown_mib < 256, "memory grew by {grown_mib} MiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announced_huge_body_is_refused_before_reading() {
    check(
        "/huge-length",
        ", max_body_bytes: 1048576",
        "",
        "larger than config.max_body_bytes",
        Duration::from_secs(2),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_loop_gives_up_after_ten_redirects() {
    let server = Misbehaving::start().await;
    let (report, took) = fault(&server, "/redirect-loop", "", "").await;
    assert!(took < SECONDS_5, "took {took:?}");
    assert_eq!(node(&report, "call").status, NodeStatus::Failed);
    assert!(
        error(&report, "call").contains("redirect failed"),
        "{}",
        error(&report, "call")
    );
    assert_eq!(server.hits("/redirect-loop"), 11, "the first request and 10 redirects");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_fails_the_node() {
    check("/invalid-json", "", "", "the response body is not JSON", SECONDS_5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let server = Misbehaving::start().await;
    let (report, _) = fault(
        &server,
        "/retry-after-1",
        "",
        ", retry: { max_attempts: 3, backoff_ms: 10, max_backoff_ms: 5000 }",
    )
    .await;
    assert_eq!(report.status, RunStatus::Succeeded, "{}", statuses(&report));
    let call = node(&report, "call");
    assert_eq!(call.attempts, 2);
    assert_eq!(call.output["body"]["ok"], true);
    let first = &call.attempts_detail[0];
    assert!(first.error.as_deref().is_some_and(|e| e.contains("503")), "{first:?}");
    let wait = call.attempts_detail[1].started_ms - first.finished_ms;
    // Retry-After: 1 beats the 10 ms backoff.
    assert!((995.0..3000.0).contains(&wait), "waited {wait} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_capped_by_max_backoff() {
    let server = Misbehaving::start().await;
    let (report, took) = fault(
        &server,
        "/retry-after-30",
        "",
        ", retry: { max_attempts: 2, backoff_ms: 10, max_backoff_ms: 300 }",
    )
    .await;
    assert_eq!(report.status, RunStatus::Failed);
    let call = node(&report, "call");
    assert_eq!(call.attempts, 2);
    let wait = call.attempts_detail[1].started_ms - call.attempts_detail[0].finished_ms;
    // Retry-After: 30 asks for 30 s; the policy's cap is 300 ms.
    assert!((295.0..3000.0).contains(&wait), "waited {wait} ms");
    assert!(took < SECONDS_5, "took {took:?}");
    assert_eq!(server.hits("/retry-after-30"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_at_once_in_one_run() {
    let server = Misbehaving::start().await;
    let (engine, _) = engine();
    let paths = [
        ("no-headers", ", timeout_ms: 300"),
        ("trickle", ", timeout_ms: 300"),
        ("reset-mid-body", ""),
        ("close", ""),
        ("garbage", ""),
        ("endless-body", ", max_body_bytes: 65536"),
        ("redirect-loop", ""),
        ("invalid-json", ""),
    ];
    let mut body = String::from("nodes:\n  - { id: ok, kind: http, config: { url: \"");
    body.push_str(&server.url("/ok"));
    body.push_str("\" } }\n");
    for (path, extra) in paths {
        body.push_str(&format!(
            "  - {{ id: {path}, kind: http, config: {{ url: \"{}\"{extra} }} }}\n",
            server.url(&format!("/{path}"))
        ));
    }
    let wf = workflow(&engine, &body);
    let started = Instant::now();
    let report = run(
        &engine,
        &wf,
        RunOptions::new().strategy(strategy(StrategyKind::AllSettled)),
    )
    .await;
    assert!(started.elapsed() < SECONDS_5, "took {:?}", started.elapsed());
    assert_eq!(node(&report, "ok").status, NodeStatus::Succeeded);
    for (path, _) in paths {
        assert_eq!(node(&report, path).status, NodeStatus::Failed, "{path}");
    }
}
