//! Servers the tests start on 127.0.0.1 (free ports), and small helpers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use flow_engine::{Engine, NodeReport, Report, RunOptions};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Serves `router` on a free port of 127.0.0.1; returns `http://127.0.0.1:PORT`.
/// Handlers see the client's address through `ConnectInfo<SocketAddr>`.
pub async fn serve(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let app = router.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// Hits per path, counted by the handlers that share it.
#[derive(Clone, Default)]
pub struct Hits(Arc<Mutex<HashMap<String, usize>>>);

impl Hits {
    /// Counts one hit of `path` and returns the count so far.
    pub fn hit(&self, path: &str) -> usize {
        let mut map = self.0.lock().unwrap();
        let n = map.entry(path.to_owned()).or_default();
        *n += 1;
        *n
    }

    pub fn get(&self, path: &str) -> usize {
        self.0.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

/// Parses and runs a YAML workflow with a default engine.
pub async fn run_yaml(yaml: &str, input: Value) -> Report {
    let engine = Engine::new();
    let workflow = engine
        .parse_yaml(yaml)
        .unwrap_or_else(|e| panic!("invalid workflow: {e}\n{yaml}"));
    engine.run(&workflow, RunOptions::new().input(input)).await.unwrap()
}

/// The report entry of `id`.
pub fn node<'r>(report: &'r Report, id: &str) -> &'r NodeReport {
    report
        .node(id)
        .unwrap_or_else(|| panic!("no node `{id}` in {report:#?}"))
}

/// The error of a node that must have failed.
pub fn error_of(report: &Report, id: &str) -> String {
    let n = node(report, id);
    assert_eq!(n.status, flow_engine::NodeStatus::Failed, "{id}: {n:#?}");
    n.error.clone().unwrap_or_default()
}

/// Every problem of a workflow that must be invalid, as `place: message` lines.
pub fn problems(yaml: &str) -> Vec<String> {
    match Engine::new().parse_yaml(yaml) {
        Ok(_) => panic!("the workflow should be invalid:\n{yaml}"),
        Err(flow_engine::Error::Workflow(e)) => e
            .problems()
            .iter()
            .map(|p| format!("{}: {}", config_place(&p.place), p.message))
            .collect(),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// A problem's place with the kind's path read as a path: flow-core (at the time of
/// writing) joins a `ConfigProblem` path as one key, quoting a nested path
/// (`config["rules[0].expr"]`) and an empty one (`config[""]`). Either form reads
/// here as `config.rules[0].expr` and `config`.
fn config_place(place: &str) -> String {
    if let Some((head, rest)) = place.split_once(".config[\"")
        && let Some(inner) = rest.strip_suffix("\"]")
    {
        let inner = inner.replace("\\\"", "\"");
        return if inner.is_empty() {
            format!("{head}.config")
        } else {
            format!("{head}.config.{inner}")
        };
    }
    place.to_owned()
}

/// Runs the calling test again in a child process with `name=value` in its
/// environment, where the engine reads secrets from (setting a variable in this
/// multi-threaded process would need `unsafe`, which the workspace forbids).
/// Returns true in the child, which then runs the test's body; in the parent it
/// waits for the child, fails if the child failed, and returns false.
pub fn in_child_with_env(test: &str, name: &str, value: &str) -> bool {
    if std::env::var(name).as_deref() == Ok(value) {
        return true;
    }
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(name, value)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the child run of {test} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    false
}

/// One message an SMTP sink received.
#[derive(Debug, Clone, Default)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
    /// The decoded `AUTH PLAIN` credentials, `user\0password`, if the client logged in.
    pub auth: Option<String>,
}

/// A tiny SMTP server on a free port of 127.0.0.1, speaking just enough SMTP for a
/// client to deliver: greeting, EHLO/HELO (offering AUTH PLAIN), AUTH PLAIN, MAIL
/// FROM, RCPT TO, DATA, RSET, NOOP, QUIT. Returns the port and the mail received.
pub async fn smtp_sink() -> (u16, Arc<Mutex<Vec<Mail>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let inbox = Arc::new(Mutex::new(Vec::new()));
    let shared = inbox.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let inbox = shared.clone();
            tokio::spawn(async move {
                let _ = smtp_session(socket, inbox).await;
            });
        }
    });
    (port, inbox)
}

async fn smtp_session(socket: tokio::net::TcpStream, inbox: Arc<Mutex<Vec<Mail>>>) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink.test ESMTP ready\r\n").await?;
    let mut mail = Mail::default();
    let mut auth = None;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-sink.test\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("HELO") {
            b"250 sink.test\r\n"
        } else if upper.starts_with("AUTH PLAIN ") {
            auth = base64_decode(command[11..].trim())
                .map(|b| String::from_utf8_lossy(&b).trim_start_matches('\0').to_owned());
            b"235 2.7.0 Authentication successful\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            mail = Mail {
                from: address(&command),
                auth: auth.clone(),
                ..Mail::default()
            };
            b"250 2.1.0 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            mail.to.push(address(&command));
            b"250 2.1.5 OK\r\n"
        } else if upper == "DATA" {
            write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            mail.data = data;
            inbox.lock().unwrap().push(std::mem::take(&mut mail));
            b"250 2.0.0 queued\r\n"
        } else if upper == "RSET" || upper == "NOOP" {
            b"250 OK\r\n"
        } else if upper == "QUIT" {
            write.write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(());
        } else {
            b"502 5.5.2 command not recognised\r\n"
        };
        write.write_all(reply).await?;
    }
}

/// `a@b` from `MAIL FROM:<a@b> BODY=8BITMIME`.
fn address(command: &str) -> String {
    let start = command.find('<').map_or(0, |i| i + 1);
    let end = command[start..].find('>').map_or(command.len(), |i| start + i);
    command[start..end].to_owned()
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        buffer = (buffer << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}
