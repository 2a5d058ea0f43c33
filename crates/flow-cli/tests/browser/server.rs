//! The real `flow serve`, on a free port, on workflows written to a temporary folder.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::http;

/// A `flow serve` child process; dropping it kills it.
pub struct Server {
    child: Child,
    pub base: String,
    /// Everything it printed on stderr, for failure messages.
    log: Arc<Mutex<String>>,
    _dir: TempDir,
}

impl Server {
    /// `flow serve --listen 127.0.0.1:0` on `workflows` (file name, content).
    pub fn start(workflows: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let folder = dir.path().join("workflows");
        std::fs::create_dir(&folder).expect("the workflows folder");
        for (name, content) in workflows {
            std::fs::write(folder.join(name), content).expect("a workflow file");
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_flow"))
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--workflows")
            .arg(&folder)
            .arg("--journal")
            .arg(dir.path().join("runs.db"))
            .arg("--journal-sync")
            .arg("normal")
            .arg("--grace")
            .arg("0s")
            .env_remove("FLOW_TOKEN")
            .env_remove("FLOW_JOURNAL")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start flow serve: {e}"));
        let stderr = child.stderr.take().expect("its stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (found, address) = mpsc::channel();
        let lines = log.clone();
        // Reads stderr to its end (so the server never blocks on a full pipe).
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("flow serve: listening on http://") {
                    let _ = found.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                }
                if let Ok(mut log) = lines.lock() {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        let mut server = Server {
            child,
            base: String::new(),
            log,
            _dir: dir,
        };
        match address.recv_timeout(Duration::from_secs(30)) {
            Ok(address) => server.base = format!("http://{address}"),
            Err(_) => panic!("flow serve did not say where it listens:\n{}", server.log()),
        }
        server
    }

    pub fn log(&self) -> String {
        self.log.lock().map(|log| log.clone()).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path` of the API, as JSON; a failure on anything but a 200.
    pub async fn get(&self, path: &str) -> Value {
        let response = http::request("GET", &self.url(path), None)
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log()));
        assert_eq!(response.status, 200, "GET {path}: {}", response.body);
        response.json()
    }

    /// Starts a run of `workflow` through the API; gives its id.
    pub async fn start_run(&self, workflow: &str) -> String {
        let path = format!("/api/v1/workflows/{workflow}/runs");
        let response = http::request("POST", &self.url(&path), Some(&json!({"input": {}})))
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}\n{}", self.log()));
        assert_eq!(response.status, 201, "POST {path}: {}", response.body);
        match response.json()["run_id"].as_str() {
            Some(id) => id.to_owned(),
            None => panic!("POST {path}: no run_id in {}", response.body),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
