//! The README's and docs' commands, run as written: every `flow` command (or
//! `cargo run -p flow-cli -- ...`) of a fenced `sh` block or an inline code span
//! that names a file of `examples/`, and the README's `flow serve` example with
//! its `curl`. A doc that changes its commands changes what runs here; a
//! command that stops working fails here, not in a new user's terminal.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};

use crate::support::{Dirs, Flow, command};

#[path = "../../../flow-nodes/examples/services.rs"]
#[allow(dead_code)]
mod services;

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The documents whose commands are checked: the README, examples/README.md and
/// every page of docs/.
fn documents() -> Vec<PathBuf> {
    let root = repo();
    let mut docs = vec![root.join("README.md"), root.join("examples/README.md")];
    let read = std::fs::read_dir(root.join("docs")).unwrap_or_else(|e| panic!("docs/: {e}"));
    let mut pages: Vec<PathBuf> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    docs.extend(pages);
    docs
}

/// One command as a doc writes it.
#[derive(Debug, Clone)]
struct DocCommand {
    /// `README.md:42`.
    place: String,
    /// The text as written.
    text: String,
    /// The arguments after `flow`.
    args: Vec<String>,
}

/// Every command of `documents()` that runs `flow` on a file of examples/.
fn commands() -> Vec<DocCommand> {
    let root = repo();
    let mut found = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
        let name = doc.strip_prefix(&root).unwrap_or(&doc).display().to_string();
        let mut fence: Option<bool> = None; // Some(is_shell) inside a fence
        for (i, line) in text.lines().enumerate() {
            let place = format!("{name}:{}", i + 1);
            if let Some(rest) = line.trim_start().strip_prefix("```") {
                fence = match fence {
                    Some(_) => None,
                    None => Some(matches!(rest.trim(), "sh" | "bash" | "shell" | "console")),
                };
                continue;
            }
            let candidates: Vec<&str> = match fence {
                Some(true) => vec![line],
                Some(false) => Vec::new(),
                // Inline code spans: the odd pieces between backticks.
                None => line.split('`').skip(1).step_by(2).collect(),
            };
            for candidate in candidates {
                if let Some(command) = parse(candidate, &place, &root) {
                    found.push(command);
                }
            }
        }
    }
    found
}

/// A command line as a `DocCommand`, when it runs `flow` on an example file.
fn parse(line: &str, place: &str, root: &Path) -> Option<DocCommand> {
    let text = strip_comment(line.trim().trim_start_matches("$ ")).trim().to_owned();
    let words = shell_words(&text)?;
    let args: Vec<String> = match words.first().map(String::as_str) {
        Some("flow") => words[1..].to_vec(),
        Some("cargo") if words.get(1).map(String::as_str) == Some("run") => {
            let dash = words.iter().position(|w| w == "--")?;
            let package = words.iter().position(|w| w == "-p" || w == "--package")?;
            if words.get(package + 1).map(String::as_str) != Some("flow-cli") {
                return None;
            }
            words[dash + 1..].to_vec()
        }
        _ => return None,
    };
    let names_example = args.iter().any(|a| {
        a.strip_prefix("examples/")
            .is_some_and(|file| !file.is_empty() && root.join("examples").join(file).is_file())
    });
    names_example.then(|| DocCommand {
        place: place.to_owned(),
        text,
        args,
    })
}

/// The line without a trailing `# comment` (outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if prev.is_whitespace() => return &line[..i],
            _ => {}
        }
        prev = c;
    }
    line
}

/// Splits a command line as a POSIX shell would (quotes, backslashes); `None`
/// when it has a pipe, a redirection, a variable or an unclosed quote: not a
/// plain command.
fn shell_words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => word.push(chars.next()?),
                        '$' => return None,
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.push(chars.next()?);
            }
            '|' | '>' | '<' | ';' | '$' | '&' | '(' | ')' => return None,
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

/// The exit code a doc promises: examples/README.md says `all-settled.yaml`
/// ends with exit 1 (a node fails on purpose); every other command succeeds.
fn expected_exit(command: &DocCommand) -> i32 {
    let fails_on_purpose = command.args.iter().any(|a| a == "examples/all-settled.yaml");
    i32::from(fails_on_purpose && command.args.first().map(String::as_str) == Some("run"))
}

#[test]
fn the_parser_reads_doc_commands_as_a_shell_would() {
    let root = repo();
    let c = parse(
        "cargo run --release -p flow-cli -- run examples/diamond.yaml --input '{\"user\": \"x y\"}'  # a comment",
        "t",
        &root,
    )
    .expect("a command");
    assert_eq!(
        c.args,
        ["run", "examples/diamond.yaml", "--input", "{\"user\": \"x y\"}"]
    );
    assert!(parse("flow run examples/<file>", "t", &root).is_none());
    assert!(parse("flow run order.yaml", "t", &root).is_none());
    assert!(parse("flow serve --workflows examples/ &", "t", &root).is_none());
    assert!(parse("cargo run -p flow-nodes --example services", "t", &root).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_doc_command_on_an_example_runs_as_written() {
    // The example services (`cargo run -p flow-nodes --example services`), on a
    // free port: the aggregate example is pointed at them by its `base_url`.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("a free port: {e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    tokio::spawn(async move { axum::serve(listener, services::app()).await });

    let commands = commands();
    let shown: Vec<String> = commands.iter().map(|c| format!("{}: {}", c.place, c.text)).collect();
    // The README and examples/README.md hold at least these; fewer means the
    // extraction broke, not that the docs are fine.
    for must in [
        "examples/parallel-fanout.yaml",
        "examples/for-each.yaml",
        "examples/all-settled.yaml",
    ] {
        assert!(
            commands.iter().any(|c| c.args.iter().any(|a| a == must)),
            "no doc command runs {must}; found:\n{}",
            shown.join("\n")
        );
    }
    eprintln!("{} doc commands:\n{}", commands.len(), shown.join("\n"));
    assert!(
        commands.len() >= 5,
        "only {} doc commands found:\n{}",
        commands.len(),
        shown.join("\n")
    );

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary folder: {e}"));
    std::os::unix::fs::symlink(repo().join("examples"), dir.path().join("examples"))
        .unwrap_or_else(|e| panic!("examples link: {e}"));
    // Commands run from the repository's root; some write pictures into docs/
    // (not the real one: a folder of the same name here).
    std::fs::create_dir(dir.path().join("docs")).unwrap_or_else(|e| panic!("docs folder: {e}"));
    for c in &commands {
        let mut args = c.args.clone();
        if args.iter().any(|a| a == "examples/aggregate-three-services.yaml") && !args.iter().any(|a| a == "--input") {
            // "With the services on another port, pass it in `base_url`."
            args.push("--input".into());
            args.push(json!({ "base_url": format!("http://127.0.0.1:{port}"), "user_id": 42 }).to_string());
        }
        let mut cmd = command();
        cmd.args(&args).current_dir(dir.path());
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("cannot run flow: {e}"));
        let code = out.status.code();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            code,
            Some(expected_exit(c)),
            "{}: `{}` ended with {:?}\n--- stderr:\n{stderr}",
            c.place,
            c.text,
            out.status
        );
        assert!(!stderr.contains("panicked"), "{}: {stderr}", c.place);
    }
}

/// The README's `flow serve` block: the server on the examples folder, the
/// `curl` as written (its path and body), and the answer it shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_serve_example_starts_a_run_that_succeeds() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap_or_else(|e| panic!("README.md: {e}"));
    let block = readme
        .split("```sh")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("flow serve --workflows examples/"))
        .unwrap_or_else(|| panic!("README.md has no `flow serve --workflows examples/` block"));
    let curl = block
        .lines()
        .find(|l| l.trim_start().starts_with("curl "))
        .unwrap_or_else(|| panic!("README.md's serve block has no curl:\n{block}"));
    let words = shell_words(strip_comment(curl)).unwrap_or_else(|| panic!("cannot read `{curl}`"));
    let url = words
        .iter()
        .find(|w| w.starts_with("localhost:8080/"))
        .unwrap_or_else(|| panic!("`{curl}` names no localhost:8080 URL"));
    let path = &url["localhost:8080".len()..];
    let body = words
        .iter()
        .position(|w| w == "--json")
        .and_then(|i| words.get(i + 1))
        .unwrap_or_else(|| panic!("`{curl}` sends no --json body (the API takes application/json)"));
    let body: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("`{curl}`: its body is not JSON: {e}"));
    let answer_keys: Vec<&str> = block
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("# {"))
        .map(|shown| {
            shown
                .split('"')
                .skip(1)
                .step_by(2)
                .filter(|k| ["run_id", "status", "url", "page"].contains(k))
                .collect()
        })
        .unwrap_or_default();

    let dirs = Dirs::new();
    for entry in std::fs::read_dir(repo().join("examples")).unwrap_or_else(|e| panic!("examples/: {e}")) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "json") {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            dirs.add(
                &path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                &text,
            );
        }
    }
    let flow = Flow::start(&dirs);
    let resp = flow.post(path, &body).await;
    assert_eq!(resp.status, 201, "README's `{curl}`: {resp:?}");
    let started = resp.json();
    for key in &answer_keys {
        assert!(
            started.get(*key).is_some(),
            "README shows `{key}`, the answer lacks it: {started}"
        );
    }
    assert_eq!(
        answer_keys.len(),
        4,
        "README's answer line shows run_id, status, url and page"
    );
    let run_id = started["run_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no run_id: {started}"));
    let report = flow.wait_report(run_id, "end", |r| r["status"] != "running").await;
    assert_eq!(report["status"], "succeeded", "the README's run: {report}");
}
