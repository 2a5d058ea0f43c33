//! SIGINT and SIGTERM during `flow run`: every running node stops (a sleep, an HTTP
//! request to a service that never answers, a retry waiting out its backoff), the
//! report is written with the right statuses, and the process exits at once.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::{command, read_json, spawn, tempdir, turn, wait_for, write};

/// A service on 127.0.0.1 that accepts connections, reads the requests and never
/// answers. It stops by itself when dropped, or after a minute at most.
struct Silent {
    port: u16,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Silent {
    fn start() -> Silent {
        let listener = match TcpListener::bind("127.0.0.1:0") {
            Ok(l) => l,
            Err(e) => panic!("bind: {e}"),
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        if let Err(e) = listener.set_nonblocking(true) {
            panic!("{e}");
        }
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, halt) = (accepted.clone(), stop.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut held: Vec<TcpStream> = Vec::new();
            while !halt.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(60) {
                if let Ok((mut stream, _)) = listener.accept() {
                    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
                    let mut buf = [0u8; 4096];
                    let _ = stream.read(&mut buf);
                    count.fetch_add(1, Ordering::SeqCst);
                    held.push(stream);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Silent { port, accepted, stop }
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Whether the process catches `signal` yet (Linux: `SigCgt` in /proc/PID/status),
/// so the signal is never sent before the handler is installed.
fn catches(pid: u32, signal: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (signal - 1)) != 0)
}

fn interrupt(name: &str, number: u32) {
    let _turn = turn();
    let service = Silent::start();
    let dir = tempdir();
    let file = write(
        dir.path(),
        "interrupted.yaml",
        format!(
            "name: interrupted
strategy: {{ kind: all-settled }}
nodes:
  - {{ id: quick, kind: noop }}
  - {{ id: sleeping, kind: delay, config: {{ ms: 60000 }} }}
  - {{ id: waiting-on-service, kind: http, config: {{ url: \"http://127.0.0.1:{}/never\", timeout_ms: 60000 }} }}
  - {{ id: backing-off, kind: fail, retry: {{ max_attempts: 5, backoff_ms: 60000, max_backoff_ms: 60000 }} }}
  - {{ id: after, kind: noop }}
edges: [{{ from: sleeping, to: after }}]
",
            service.port
        ),
    );
    let report = dir.path().join("report.json");
    let mut cmd = command();
    cmd.arg("run")
        .arg(&file)
        .arg("--quiet")
        .arg("--report")
        .arg(&report)
        .stdout(Stdio::null());
    let mut child = spawn(cmd);
    let pid = child.id();
    let ready = Instant::now();
    while !(catches(pid, number) && service.accepted.load(Ordering::SeqCst) > 0) {
        assert!(
            ready.elapsed() < Duration::from_secs(20),
            "flow never installed its SIG{name} handler or never reached the service"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The request is in flight; let the failing node reach its backoff too.
    std::thread::sleep(Duration::from_millis(100));
    let sent = Instant::now();
    let kill = std::process::Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status();
    assert!(kill.is_ok_and(|s| s.success()), "kill -{name} failed");
    let status = wait_for(&mut child, Duration::from_secs(20));
    let exited_after = sent.elapsed();
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    let Some(status) = status else {
        panic!("flow did not exit after SIG{name}:\n{stderr}");
    };
    eprintln!("SIG{name}: flow exited {exited_after:?} after the signal");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        exited_after < Duration::from_secs(1),
        "exited {exited_after:?} after SIG{name}, not at once"
    );
    let report = read_json(&report);
    assert_eq!(report["status"], "cancelled", "{report}");
    let nodes = &report["nodes"];
    assert_eq!(nodes["quick"]["status"], "succeeded", "{report}");
    for id in ["sleeping", "waiting-on-service", "backing-off"] {
        assert_eq!(nodes[id]["status"], "cancelled", "{id}: {report}");
        assert!(nodes[id]["finished_ms"].is_number(), "{id}: {report}");
    }
    assert_eq!(nodes["backing-off"]["attempts"], 1, "{report}");
    assert_eq!(nodes["after"]["status"], "cancelled", "{report}");
    assert!(nodes["after"]["started_ms"].is_null(), "{report}");
    // The nodes cancelled mid-attempt stopped together (`backing-off` ended its
    // attempt long before: it was cancelled while waiting to retry).
    let ends: Vec<f64> = ["sleeping", "waiting-on-service"]
        .iter()
        .filter_map(|id| nodes[*id]["finished_ms"].as_f64())
        .collect();
    let spread = ends.iter().copied().fold(f64::MIN, f64::max) - ends.iter().copied().fold(f64::MAX, f64::min);
    assert!(spread < 50.0, "the running nodes stopped {spread} ms apart: {report}");
}

#[test]
#[cfg(target_os = "linux")]
fn sigint_stops_every_running_node_and_writes_the_report() {
    interrupt("INT", 2);
}

#[test]
#[cfg(target_os = "linux")]
fn sigterm_stops_every_running_node_and_writes_the_report() {
    interrupt("TERM", 15);
}
