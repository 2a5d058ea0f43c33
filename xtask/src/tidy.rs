//! Tests that keep the layers honest (in the manner of rust-analyzer's tidy
//! tests): which flow crate may depend on which, read from `cargo metadata`,
//! and no command-line flag in the messages of the library crates (they reach
//! HTTP clients and embedders, who have no flags; the CLI adds its own words).

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use serde_json::Value;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// What `cargo ARGS` prints, run at the workspace's root.
    fn cargo(args: &[&str]) -> String {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let out = Command::new(cargo)
            .args(args)
            .current_dir(root())
            .output()
            .unwrap_or_else(|e| panic!("cargo {}: {e}", args[0]));
        assert!(
            out.status.success(),
            "cargo {}: {}",
            args[0],
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Each flow package and the flow packages it depends on for building
    /// (normal and build dependencies; tests may use more).
    fn flow_dependencies() -> Vec<(String, Vec<String>, Vec<String>)> {
        let out = cargo(&["metadata", "--format-version", "1", "--no-deps", "--offline"]);
        let meta: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("cargo metadata: {e}"));
        let packages = meta["packages"].as_array().cloned().unwrap_or_default();
        packages
            .iter()
            .map(|p| {
                let deps = p["dependencies"].as_array().cloned().unwrap_or_default();
                let flow = |dev: bool| -> Vec<String> {
                    deps.iter()
                        .filter(|d| d["name"].as_str().is_some_and(|n| n.starts_with("flow-")))
                        .filter(|d| (d["kind"].as_str() == Some("dev")) == dev)
                        .filter_map(|d| d["name"].as_str().map(str::to_owned))
                        .collect()
                };
                (
                    p["name"].as_str().unwrap_or_default().to_owned(),
                    flow(false),
                    flow(true),
                )
            })
            .collect()
    }

    #[test]
    fn the_crates_depend_downwards_only() {
        let packages = flow_dependencies();
        let deps_of = |name: &str| -> Vec<String> {
            packages
                .iter()
                .find(|(n, _, _)| n == name)
                .map(|(_, deps, _)| deps.clone())
                .unwrap_or_else(|| panic!("no package {name}"))
        };
        let forbid = |name: &str, forbidden: &[&str], why: &str| {
            let deps = deps_of(name);
            for f in forbidden {
                assert!(!deps.iter().any(|d| d == f), "{name} depends on {f}: {why}");
            }
        };
        let every = [
            "flow-core",
            "flow-strategy",
            "flow-nodes",
            "flow-journal",
            "flow-engine",
            "flow-runtime",
            "flow-view",
            "flow-serve",
            "flow-dist",
            "flow-demo",
            "flow-cli",
        ];
        assert!(
            deps_of("flow-core").is_empty(),
            "flow-core is the model: it depends on no flow crate"
        );
        assert!(
            deps_of("flow-strategy").is_empty(),
            "flow-strategy runs futures: it depends on no flow crate"
        );
        forbid(
            "flow-nodes",
            &["flow-engine", "flow-journal", "flow-serve", "flow-dist", "flow-cli"],
            "node kinds are below the engine",
        );
        forbid(
            "flow-journal",
            &["flow-engine", "flow-nodes", "flow-serve", "flow-dist", "flow-cli"],
            "the journal knows flow-core's records, never the engine",
        );
        forbid(
            "flow-engine",
            &["flow-serve", "flow-dist", "flow-cli", "flow-view", "flow-runtime"],
            "the engine never depends on the runtime, the service, the workers or the CLI",
        );
        forbid(
            "flow-runtime",
            &["flow-serve", "flow-dist", "flow-cli"],
            "the runtime sits under every front end, not above one",
        );
        forbid(
            "flow-view",
            &["flow-engine", "flow-journal"],
            "pictures are drawn from reports alone",
        );
        for (name, deps, dev) in &packages {
            assert!(
                !deps.iter().chain(dev).any(|d| d == "flow-cli"),
                "{name} depends on flow-cli: nothing sits above the CLI"
            );
        }
        for name in every {
            deps_of(name);
        }
    }

    /// An embedder of the engine that keeps no journal compiles no database:
    /// the backends are features (`sqlite`, `postgres`).
    #[test]
    fn the_engine_without_features_has_no_database_code() {
        let tree = |features: &[&str]| -> String {
            let mut args = vec![
                "tree",
                "--offline",
                "-p",
                "flow-engine",
                "-e",
                "normal",
                "--prefix",
                "none",
            ];
            args.extend_from_slice(features);
            cargo(&args)
        };
        let bare = tree(&["--no-default-features"]);
        for database in ["rusqlite", "libsqlite3-sys", "tokio-postgres"] {
            assert!(
                !bare.contains(database),
                "flow-engine without features pulls in {database}:\n{bare}"
            );
        }
        let both = tree(&["--features", "sqlite,postgres"]);
        assert!(both.contains("rusqlite") && both.contains("tokio-postgres"), "{both}");
    }

    /// Lines of the library crates' sources that put a `--flag` in a string.
    #[test]
    fn library_messages_name_no_command_line_flag() {
        let libraries = [
            "flow-core",
            "flow-strategy",
            "flow-nodes",
            "flow-journal",
            "flow-engine",
            "flow-dist",
            "flow-view",
        ];
        let mut found = Vec::new();
        for name in libraries {
            let src = root().join("crates").join(name).join("src");
            for file in rust_files(&src) {
                let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                for (i, line) in text.lines().enumerate() {
                    let code = line.trim_start();
                    if code.starts_with("//") {
                        continue;
                    }
                    if in_string_flag(code) {
                        found.push(format!("{}:{}: {}", file.display(), i + 1, line.trim()));
                    }
                }
            }
        }
        assert!(
            found.is_empty(),
            "library messages name the option or limit (`max_items`), not a CLI flag; the CLI adds its flag:\n{}",
            found.join("\n")
        );
    }

    /// Whether a `--word` appears inside a string literal of the line.
    fn in_string_flag(line: &str) -> bool {
        let mut in_string = false;
        let mut escaped = false;
        let chars: Vec<char> = line.chars().collect();
        for (i, &c) in chars.iter().enumerate() {
            if in_string {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    in_string = false;
                } else if c == '-'
                    && chars.get(i + 1) == Some(&'-')
                    && chars.get(i + 2).is_some_and(|c| c.is_ascii_lowercase())
                    && (i == 0 || !chars[i - 1].is_ascii_alphanumeric())
                {
                    return true;
                }
            } else if c == '"' {
                in_string = true;
            } else if c == '/' && chars.get(i + 1) == Some(&'/') {
                return false;
            }
        }
        false
    }

    fn rust_files(dir: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        let Ok(read) = std::fs::read_dir(dir) else { return files };
        for entry in read.flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.extend(rust_files(&path));
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
        files.sort();
        files
    }

    #[test]
    fn a_flag_is_found_only_inside_strings() {
        assert!(in_string_flag(r#"format!("over the limit (--max-items)")"#));
        assert!(!in_string_flag(r#"let x = a -- b; // "--max-items""#));
        assert!(!in_string_flag(r#"format!("a -- b")"#));
        assert!(!in_string_flag(r#"format!("x--y")"#));
    }
}
