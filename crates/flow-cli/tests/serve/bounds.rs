//! Slow and greedy clients: idle connections and half-sent headers are
//! closed, one connection over the cap is a `503`, a stream whose client
//! stopped reading is dropped and frees its place.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::{Dirs, Flow, PATIENCE, Resp, Start, assert_problem};
use crate::workflows::QUICK;

/// `127.0.0.1:PORT` of a server.
fn address(flow: &Flow) -> std::net::SocketAddr {
    let text = flow.base.trim_start_matches("http://");
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Reads until the peer closes (or resets) the connection; what came, or
/// `None` when it stayed open for `within`.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut all = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(all),
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn idle_connections_close_and_one_over_the_cap_is_a_503() {
    let dirs = Dirs::with(&[("quick.yaml", QUICK)]);
    let flow = Flow::start_with(
        &dirs,
        Start {
            args: &["--max-connections", "8", "--header-timeout", "2s"],
            ..Start::default()
        },
    );
    let addr = address(&flow);
    // Eight connections take every place: seven say nothing, one begins its
    // headers and never ends them.
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(TcpStream::connect(addr).await.expect("connect"));
    }
    idle[0]
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .expect("half the headers");

    // One more is answered 503 (a problem) and closed.
    let mut extra = TcpStream::connect(addr).await.expect("connect");
    extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("a request");
    let answer = read_until_closed(&mut extra, PATIENCE)
        .await
        .expect("the connection over the cap is closed");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or_default();
    let head = head.to_ascii_lowercase();
    assert!(head.contains("retry-after: 1"), "{head}");
    assert_problem(503, "application/problem+json", body);
    assert!(body.contains("8 connections"), "{body}");

    // The idle ones and the half-sent headers are closed after the header
    // timeout (2 s; generous margins on a shared machine).
    let started = Instant::now();
    for stream in &mut idle {
        assert!(
            read_until_closed(stream, PATIENCE).await.is_some(),
            "an idle connection still open after {:?}",
            started.elapsed()
        );
    }
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "closed too soon: {:?}",
        started.elapsed()
    );

    // The places are free again.
    let health = flow.get("/healthz").await;
    assert_eq!(health.status, 200, "{health:?}");
}

#[tokio::test]
async fn a_stream_whose_client_stops_reading_is_dropped_and_frees_its_place() {
    let dirs = Dirs::with(&[("quick.yaml", QUICK)]);
    let flow = Flow::start_with(
        &dirs,
        Start {
            args: &[
                "--max-event-streams",
                "1",
                "--stall-timeout",
                "3s",
                "--max-body-bytes",
                "20000000",
            ],
            ..Start::default()
        },
    );
    // A run whose first record is larger than what the sockets' buffers hold
    // (4 MiB for the server's send buffer at most here).
    let big = "x".repeat(8_000_000);
    let started = flow
        .submit("quick", "", &json!({ "input": { "who": big, "naps": [] } }))
        .await;
    let id = started["run_id"].as_str().unwrap_or_default().to_owned();
    flow.wait_status(&id, "succeeded").await;
    // A small run, whose stream is cheap to ask for while watching the place.
    let small = flow
        .submit("quick", "", &json!({ "input": { "who": "x", "naps": [] } }))
        .await;
    let small = small["run_id"].as_str().unwrap_or_default().to_owned();
    flow.wait_status(&small, "succeeded").await;

    // A client asks for its events and reads nothing past the status line,
    // with a small receive buffer. (Asked again should another stream have
    // held the only place at that moment: it is the stalled one that must.)
    let deadline = Instant::now() + PATIENCE;
    let mut stalled = loop {
        let socket = TcpSocket::new_v4().expect("a socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let mut stream = socket.connect(address(&flow)).await.expect("connect");
        stream
            .write_all(format!("GET /api/v1/runs/{id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await
            .expect("a request");
        let mut status = [0u8; 12];
        stream.read_exact(&mut status).await.expect("a status line");
        if &status == b"HTTP/1.1 200" {
            break stream;
        }
        assert!(Instant::now() < deadline, "the stream never got the place: {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // It holds the only place: another stream is refused, with when to try
    // again (watched through the small run's stream: a GET that finds the
    // place free reads a few records, not 8 MB, and the stall timeout's 3 s
    // are not spent reading).
    let path = format!("/api/v1/runs/{id}/events");
    let deadline = Instant::now() + PATIENCE;
    let refused = loop {
        let resp = flow.get(&format!("/api/v1/runs/{small}/events")).await;
        if resp.status == 503 {
            break resp;
        }
        assert!(
            Instant::now() < deadline,
            "the stalled stream never held its place: {resp:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(refused.problem(503).contains("event streams"), "{refused:?}");
    assert_eq!(refused.header("retry-after"), "5");

    // After the stall timeout (3 s) the server drops it: the place is free,
    // and a reader that keeps up gets the whole stream.
    let deadline = Instant::now() + PATIENCE;
    let whole = loop {
        let resp = Resp::of(flow.request(reqwest::Method::GET, &path)).await;
        if resp.status == 200 {
            break resp;
        }
        assert!(
            Instant::now() < deadline,
            "the stalled stream was never dropped: {resp:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(whole.text.contains("event: run_finished"), "the whole stream");
    // The stalled client got less than that, then the connection's end.
    let got = read_until_closed(&mut stalled, PATIENCE)
        .await
        .expect("the stalled connection is closed");
    assert!(
        got.len() < whole.text.len(),
        "{} of {} bytes",
        got.len(),
        whole.text.len()
    );
}
