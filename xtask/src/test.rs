//! `cargo xtask test [ARGS...]`: the README's test command. It checks what the
//! tests need from the machine before running them, so a fresh clone meets a
//! clear message instead of a wall of failures:
//!
//! - PostgreSQL at `FLOW_TEST_PG_URL` (default
//!   `postgres://postgres@127.0.0.1:5432/test`): the durable-run, service and
//!   worker tests use it. Not reachable: a message with the command that starts
//!   it, and exit 1 (never a silent skip).
//! - `chromium` and `chromedriver` for the browser test of `flow serve`'s page:
//!   installed from Debian's packages when missing and this runs as root, else
//!   the exact command to run is printed.
//!
//! Then `cargo test --workspace --no-fail-fast ARGS...` (one missing piece never
//! hides the rest), and one summary line: tests passed, failed, ignored.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const BROWSER_PACKAGES: &str = "chromium chromium-driver";

pub fn run(args: &[String]) -> Result<(), String> {
    let started = Instant::now();
    let pg_url = std::env::var("FLOW_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned());
    check_postgres(&pg_url)?;
    ensure_browser()?;

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("xtask test: cargo test --workspace --no-fail-fast {}", args.join(" "));
    let mut child = Command::new(&cargo)
        .args(["test", "--workspace", "--no-fail-fast"])
        .args(args)
        .env("FLOW_TEST_PG_URL", &pg_url)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {cargo}: {e}"))?;
    let mut tally = Tally::default();
    if let Some(out) = child.stdout.take() {
        let stdout = std::io::stdout();
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            tally.read(&line);
            let mut lock = stdout.lock();
            let _ = writeln!(lock, "{line}");
        }
    }
    let status = child.wait().map_err(|e| format!("waiting for cargo test: {e}"))?;
    let secs = started.elapsed().as_secs();
    let summary = format!(
        "{} passed, {} failed, {} ignored in {} test binaries ({}m{:02}s)",
        tally.passed,
        tally.failed,
        tally.ignored,
        tally.binaries,
        secs / 60,
        secs % 60
    );
    if status.success() && tally.failed == 0 {
        println!("xtask test: ok: {summary}");
        Ok(())
    } else if tally.binaries == 0 {
        Err(format!("cargo test failed before any test ran ({status}); see above"))
    } else {
        // cargo names the failing targets just above ("error: N targets failed").
        Err(format!("FAILED: {summary}; the failing targets are listed above"))
    }
}

/// What `cargo test` printed, added up.
#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
    ignored: u64,
    binaries: u64,
}

impl Tally {
    fn read(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        self.binaries += 1;
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(what), Some(count)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(count) = count.parse::<u64>() else { continue };
            match what {
                "passed" => self.passed += count,
                "failed" => self.failed += count,
                "ignored" => self.ignored += count,
                _ => {}
            }
        }
    }
}

fn check_postgres(url: &str) -> Result<(), String> {
    let hint = format!(
        "the journal, service and worker tests need PostgreSQL at {url}.\n  \
         Start the machine's: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n  \
         or point FLOW_TEST_PG_URL at another (a database the tests may create schemas in)"
    );
    let (host, port) = host_port(url).ok_or_else(|| format!("FLOW_TEST_PG_URL `{url}` is not a postgres:// URL"))?;
    let addrs: Vec<_> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}\n  {hint}"))?
        .collect();
    let reachable = addrs
        .iter()
        .any(|a| TcpStream::connect_timeout(a, Duration::from_secs(5)).is_ok());
    if !reachable {
        return Err(format!("PostgreSQL is not reachable at {host}:{port}: {hint}"));
    }
    // With a client at hand, check that the database itself answers.
    if let Ok(out) = Command::new("psql").args([url, "-Atqc", "SELECT 1"]).output()
        && !out.status.success()
    {
        let said = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "PostgreSQL at {host}:{port} refused the tests: {}\n  {hint}",
            said.trim()
        ));
    }
    Ok(())
}

/// The host and port of a `postgres://user@host:port/db?...` URL.
fn host_port(url: &str) -> Option<(String, u16)> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))?;
    let authority = rest.split(['/', '?']).next()?;
    let hostport = authority.rsplit('@').next()?;
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, p.parse().ok()?),
        _ => (hostport, 5432),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((
        if host.is_empty() {
            "127.0.0.1".into()
        } else {
            host.into()
        },
        port,
    ))
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn ensure_browser() -> Result<(), String> {
    if on_path("chromium") && on_path("chromedriver") {
        return Ok(());
    }
    let command = format!("apt-get update && apt-get install -y {BROWSER_PACKAGES}");
    if !is_root() || !on_path("apt-get") {
        return Err(format!(
            "the browser test of flow serve's page needs chromium and chromedriver; install them \
             (Debian: `sudo {command}`), then run this again"
        ));
    }
    eprintln!("xtask test: installing {BROWSER_PACKAGES} (Debian packages) for the browser test");
    let log = std::env::temp_dir().join("flow-xtask-apt.log");
    let script = format!("{command} >{} 2>&1", log.display());
    let status = Command::new("sh")
        .args(["-c", &script])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("cannot run apt-get: {e}"))?;
    if !status.success() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "`{command}` failed ({status}); the browser test needs chromium and chromedriver:\n{}",
            tail.join("\n")
        ));
    }
    if !(on_path("chromium") && on_path("chromedriver")) {
        return Err(format!(
            "apt-get installed {BROWSER_PACKAGES}, yet chromium or chromedriver is not on PATH"
        ));
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_from_urls() {
        let hp = |u| host_port(u).map(|(h, p)| format!("{h}:{p}"));
        assert_eq!(
            hp("postgres://postgres@127.0.0.1:5432/test").as_deref(),
            Some("127.0.0.1:5432")
        );
        assert_eq!(
            hp("postgresql://u:pw@db.example/x?sslmode=off").as_deref(),
            Some("db.example:5432")
        );
        assert_eq!(hp("postgres://[::1]:6000/x").as_deref(), Some("::1:6000"));
        assert_eq!(hp("mysql://x"), None);
    }

    #[test]
    fn tally_adds_up_results() {
        let mut t = Tally::default();
        t.read("test result: ok. 12 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.5s");
        t.read("test api::x ... ok");
        t.read("test result: FAILED. 3 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1s");
        assert_eq!((t.passed, t.failed, t.ignored, t.binaries), (15, 1, 2, 2));
    }
}
