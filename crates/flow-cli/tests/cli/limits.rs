//! `limits:` through `flow run`: a local server records when each request arrives.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{flow, tempdir, write};

/// An HTTP server on 127.0.0.1 that answers `ok` and records each arrival time.
fn recording_server() -> (String, Arc<Mutex<Vec<Duration>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = listener.local_addr().expect("an address");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let t0 = Instant::now();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let record = record.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                record.lock().unwrap_or_else(|e| e.into_inner()).push(t0.elapsed());
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            });
        }
    });
    (format!("http://{addr}"), seen)
}

#[test]
fn a_limit_spaces_the_starts_of_one_run() {
    let (base, seen) = recording_server();
    let dir = tempdir();
    let mut yaml = "name: limited\nlimits:\n  api: { per_second: 10 }\nnodes:\n".to_owned();
    for i in 0..6 {
        yaml.push_str(&format!(
            "  - {{ id: n{i}, kind: http, limit: api, config: {{ url: \"{base}/n{i}\" }} }}\n"
        ));
    }
    let path = write(&dir, "limited.yaml", yaml);
    let out = flow(["run", &path.display().to_string(), "--report", "-"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let report = out.report();
    for i in 0..6 {
        let node = &report["nodes"][format!("n{i}")];
        assert!(node["limit_wait_ms"].is_f64(), "{node}");
    }
    let mut times = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    times.sort();
    assert_eq!(times.len(), 6);
    // 10 per second, no burst: each start at least ~100 ms after the one before.
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_millis(85), "gap {gap:?}: {times:?}");
    }
    let run_id = report["run_id"].as_str().unwrap_or_default();
    assert_eq!(run_id.len(), 36, "a UUID: {run_id}");
}

#[test]
fn a_bad_limit_is_a_usage_error_with_its_place() {
    let dir = tempdir();
    let path = write(
        &dir,
        "bad.yaml",
        "name: bad\nlimits:\n  api: { per_second: 0 }\nnodes:\n  - { id: a, kind: noop, limit: apj }\n",
    );
    let out = flow(["validate", &path.display().to_string()]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains("limits.api.per_second: must be a number above 0"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("nodes[0].limit: unknown limit `apj`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("did you mean `api`?"), "{}", out.stderr);
}
