//! Ctrl-C (SIGINT) and SIGTERM during `flow run`: the run is cancelled, running
//! nodes stop at once, the report is still written, and the exit code is 1.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{command, read_json, tempdir, write};

const LONG: &str = "name: long
nodes:
  - { id: quick, kind: noop }
  - { id: long, kind: delay, config: { ms: 20000 } }
  - { id: after, kind: noop }
edges: [{ from: long, to: after }]
";

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

fn wait_with_deadline(child: &mut Child, deadline: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn interrupt(signal: (&str, u32)) {
    let dir = tempdir();
    let path = write(&dir, "long.yaml", LONG);
    let report = dir.path().join("report.json");
    let mut child = match command()
        .args([
            "run".as_ref(),
            path.as_os_str(),
            "--report".as_ref(),
            report.as_os_str(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("cannot run flow: {e}"),
    };
    let pid = child.id();
    let ready = Instant::now();
    while !catches(pid, signal.1) {
        assert!(
            ready.elapsed() < Duration::from_secs(10),
            "flow never installed its {} handler",
            signal.0
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Let the run reach its long node.
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    let kill = std::process::Command::new("kill")
        .args([&format!("-{}", signal.0), &pid.to_string()])
        .status();
    assert!(kill.is_ok_and(|s| s.success()), "kill -{} failed", signal.0);
    let status = wait_with_deadline(&mut child, Duration::from_secs(10));
    let elapsed = sent.elapsed();
    let stderr = child
        .stderr
        .take()
        .map(|mut s| {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut s, &mut text);
            text
        })
        .unwrap_or_default();
    let Some(status) = status else {
        panic!("flow did not exit after SIG{}:\n{stderr}", signal.0);
    };
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        elapsed < Duration::from_secs(5),
        "exited {elapsed:?} after the signal, not at once"
    );
    let report = read_json(&report);
    assert_eq!(report["status"], "cancelled", "{report}");
    assert_eq!(report["nodes"]["quick"]["status"], "succeeded");
    assert_eq!(report["nodes"]["long"]["status"], "cancelled");
    assert!(
        report["nodes"]["long"]["finished_ms"]
            .as_f64()
            .is_some_and(|f| f < 15_000.0)
    );
    assert_eq!(report["nodes"]["after"]["status"], "cancelled");
    assert_eq!(report["nodes"]["after"]["started_ms"], serde_json::Value::Null);
    assert!(stderr.contains("cancelling the run"), "{stderr}");
}

#[test]
#[cfg(target_os = "linux")]
fn sigint_cancels_the_run_and_writes_the_report() {
    interrupt(("INT", 2));
}

#[test]
#[cfg(target_os = "linux")]
fn sigterm_cancels_the_run_and_writes_the_report() {
    interrupt(("TERM", 15));
}
