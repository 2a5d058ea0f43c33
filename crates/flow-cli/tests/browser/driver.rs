//! Headless Chromium driven through chromedriver (Debian's `chromium` and
//! `chromium-driver`, which `.ci/run` installs), and waiting on what it shows.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::http;

/// How long anything the page should show may take to appear (a shared,
/// loaded machine: generous).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// `name` in the PATH (or where Debian puts it), or a failure that says what to install.
fn program(name: &str, debian: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .chain([Path::new("/usr/bin").join(name)])
        .find(|path| path.is_file());
    match found {
        Some(path) => path,
        None => panic!(
            "the browser test needs `{name}` (Debian package `{debian}`), which is not installed: \
             `apt-get install -y chromium chromium-driver` (.ci/run does it when it is missing)"
        ),
    }
}

/// chromedriver on a free port of 127.0.0.1, in a process group of its own:
/// dropping it kills chromedriver and every Chromium it started.
pub struct Driver {
    child: Child,
    pub url: String,
    // Removed after the processes that use it are gone (fields drop after `drop`).
    profile: TempDir,
}

impl Driver {
    pub async fn start() -> Driver {
        let chromedriver = program("chromedriver", "chromium-driver");
        // Checked here, so a missing browser is said plainly rather than as a
        // "session not created" from chromedriver.
        program("chromium", "chromium");
        let port = free_port();
        let mut command = Command::new(&chromedriver);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let profile = tempfile::tempdir().expect("a temporary folder");
        let mut driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profile,
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(response) = http::request("GET", &format!("{}/status", driver.url), None).await
                && response.json()["value"]["ready"] == json!(true)
            {
                break;
            }
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!("chromedriver exited at start ({status})");
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer on {} within {PATIENCE:?}",
                driver.url
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        driver
    }

    /// A new browser session: headless Chromium, 1280×900, a fresh profile.
    pub async fn browser(&self) -> Client {
        let chromium = program("chromium", "chromium");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    "--hide-scrollbars",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", self.profile.path().display()),
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("an object")
        };
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        match tokio::time::timeout(Duration::from_secs(60), builder.connect(&self.url)).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => panic!("chromedriver could not start Chromium: {e}"),
            Err(_) => panic!("chromedriver did not start Chromium within 60 s"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver and the browser processes it started.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// A page open in the browser, with the helpers the test waits with.
pub struct Page<'a> {
    pub client: &'a Client,
}

impl Page<'_> {
    /// A script's value (`return …`), or a failure naming it.
    pub async fn eval(&self, script: &str) -> Value {
        match self.client.execute(script, Vec::new()).await {
            Ok(value) => value,
            Err(e) => panic!("script failed: {e}\n{script}"),
        }
    }

    /// An element's attribute (None: no such element or attribute).
    pub async fn attr(&self, selector: &str, name: &str) -> Option<String> {
        let script = format!(
            "var e = document.querySelector({}); return e ? e.getAttribute({}) : null;",
            json!(selector),
            json!(name)
        );
        self.eval(&script).await.as_str().map(str::to_owned)
    }

    /// An element's visible text (None: no such element).
    pub async fn text(&self, selector: &str) -> Option<String> {
        let script = format!(
            "var e = document.querySelector({}); return e ? e.textContent.trim() : null;",
            json!(selector)
        );
        self.eval(&script).await.as_str().map(str::to_owned)
    }

    /// Polls `check` (every 100 ms, up to [`PATIENCE`]) until it gives a value;
    /// a failure says what was awaited and what the page showed then.
    pub async fn until<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(value) = check().await {
                return value;
            }
            if Instant::now() >= deadline {
                panic!(
                    "waited {PATIENCE:?} for {what}; the page shows:\n{}",
                    self.describe().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the attribute `name` of `selector` is `value`.
    pub async fn until_attr(&self, selector: &str, name: &str, value: &str) {
        self.until(&format!("{selector} [{name}=\"{value}\"]"), || async {
            (self.attr(selector, name).await.as_deref() == Some(value)).then_some(())
        })
        .await;
    }

    /// The URL, the page's kind and the start of its text: for failure messages.
    pub async fn describe(&self) -> String {
        let script = "return location.href + ' (body data-page=' + (document.body && document.body.dataset.page) + \
                      ')\\n' + (document.body ? document.body.innerText.slice(0, 3000) : '');";
        match self.client.execute(script, Vec::new()).await {
            Ok(Value::String(text)) => text,
            Ok(other) => other.to_string(),
            Err(e) => format!("(cannot read the page: {e})"),
        }
    }

    /// Waits until the page of kind `page` (body `data-page`) is loaded at a path
    /// starting with `path`; gives the path.
    pub async fn until_page(&self, page: &str, path: &str) -> String {
        self.until(&format!("the {page} page at {path}…"), || async {
            let script = "return document.readyState === 'complete' && document.body ? \
                          [location.pathname, document.body.dataset.page || ''] : null;";
            let value = self.eval(script).await;
            let (at, kind) = (value[0].as_str()?, value[1].as_str()?);
            (kind == page && at.starts_with(path)).then(|| at.to_owned())
        })
        .await
    }

    /// Marks the window: the mark survives everything but a reload or a navigation.
    pub async fn mark(&self) {
        self.eval("window.__flowMark = 1; return null;").await;
    }

    /// Whether the mark set by [`Page::mark`] is still there.
    pub async fn marked(&self) -> bool {
        self.eval("return window.__flowMark === 1;").await == json!(true)
    }

    pub async fn click(&self, selector: &str) {
        let element = match self.client.find(Locator::Css(selector)).await {
            Ok(element) => element,
            Err(e) => panic!("no {selector} ({e}); the page shows:\n{}", self.describe().await),
        };
        if let Err(e) = element.click().await {
            panic!("cannot click {selector}: {e}");
        }
    }
}
