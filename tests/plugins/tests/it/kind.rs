//! A node kind built from `flow_engine::kind::*` alone.

use std::time::Duration;

use flow_engine::core::Plan;
use flow_engine::kind::*;
use flow_engine::{Engine, NodeStatus, RunOptions, RunStatus};

use crate::{in_child_with_env, places, problems};

/// `stamp`: what an attempt can read of its run. Config: `from` (a node id),
/// `secret` (a declared secret's name), `delay_ms` (0 to 10000, default 0).
struct Stamp;

struct StampConfig {
    from: String,
    secret: String,
    delay_ms: u64,
}

fn read(reader: &mut ConfigReader, config: &Value) -> Option<StampConfig> {
    let map = reader.object(config, "", &["from", "secret", "delay_ms"])?;
    let from = reader.required(map, "", "from");
    let from = reader.string(from, "from");
    let secret = reader.required(map, "", "secret");
    let secret = reader.string(secret, "secret");
    let delay_ms = reader.integer(reader.optional(map, "delay_ms"), "delay_ms", 0..=10_000);
    Some(StampConfig {
        from: from?,
        secret: secret?,
        delay_ms: delay_ms.unwrap_or(0),
    })
}

#[async_trait]
impl NodeKind for Stamp {
    fn check(&self, config: &Value) -> Vec<ConfigProblem> {
        let mut reader = ConfigReader::new(ReadMode::Check);
        read(&mut reader, config);
        reader.into_problems()
    }

    fn estimate(&self, config: &Value) -> AttemptTime {
        let known = config.get("delay_ms").is_none_or(|ms| !is_template(ms));
        let mut reader = ConfigReader::new(ReadMode::Check);
        match read(&mut reader, config) {
            Some(config) if known => AttemptTime::Succeeds(config.delay_ms as f64),
            _ => AttemptTime::Unknown,
        }
    }

    async fn run(&self, call: NodeCall) -> Result<Value, NodeError> {
        let mut reader = ConfigReader::new(ReadMode::Run);
        let config = read(&mut reader, &call.config);
        let config = reader.finish(config).map_err(config_error)?;
        tokio::time::sleep(Duration::from_millis(config.delay_ms)).await;
        let context = &call.context;
        let upstream = context
            .settled_by_id(&config.from)
            .ok_or_else(|| NodeError::permanent(format!("config.from: `{}` has not settled", config.from)))?;
        let secret = context
            .secret(&config.secret)
            .ok_or_else(|| NodeError::permanent(format!("config.secret: `{}` is not declared", config.secret)))?;
        Ok(json!({
            "who": context.input()["who"],
            "from_status": upstream.status.as_str(),
            "from_output": upstream.output,
            "secret_chars": secret.len(),
            "attempt": call.attempt,
        }))
    }
}

fn engine() -> Engine {
    Engine::builder().register("stamp", Stamp).build()
}

#[test]
fn check_problems_are_validation_errors_at_their_place() {
    let yaml = r#"
name: t
nodes:
  - { id: s, kind: stamp, config: { from: [a], secrt: X, delay_ms: -1 } }
"#;
    let found = problems(engine().parse_yaml(yaml));
    let at: Vec<&str> = found.iter().map(|(place, _)| place.as_str()).collect();
    assert_eq!(
        at,
        [
            "nodes[0].config.secrt",
            "nodes[0].config.from",
            "nodes[0].config.secret",
            "nodes[0].config.delay_ms",
        ],
        "{found:?}"
    );
    assert!(found[0].1.contains("did you mean `secret`"), "{}", found[0].1);
    assert!(found[2].1.starts_with("is required"), "{}", found[2].1);

    // A template is judged at run time, not at validation.
    let templated =
        "name: t\nnodes:\n  - { id: s, kind: stamp, config: { from: a, secret: X, delay_ms: \"{{ input.ms }}\" } }\n";
    assert!(engine().parse_yaml(templated).is_ok());
    // The config as a whole.
    assert_eq!(
        places(engine().parse_yaml("name: t\nnodes:\n  - { id: s, kind: stamp, config: [1] }\n")),
        ["nodes[0].config"]
    );
}

#[tokio::test]
async fn a_rendered_config_is_read_the_same_way_and_fails_for_good() {
    let yaml = r#"
name: t
nodes:
  - { id: a, kind: noop }
  - id: s
    kind: stamp
    config: { from: a, secret: TOKEN, delay_ms: "{{ input.ms }}" }
    retry: { max_attempts: 3, backoff_ms: 1 }
edges:
  - { from: a, to: s }
"#;
    let engine = engine();
    let wf = engine.parse_yaml(yaml).unwrap();
    let report = engine
        .run(&wf, RunOptions::new().input(json!({ "ms": "soon" })))
        .await
        .unwrap();
    let s = report.node("s").unwrap();
    assert_eq!(s.status, NodeStatus::Failed);
    assert_eq!(s.attempts, 1, "a config error is permanent");
    assert_eq!(
        s.error.as_deref(),
        Some(r#"config.delay_ms: must be a whole number from 0 to 10000, not "soon""#)
    );
}

const SECRET_VAR: &str = "FLOW_PLUGIN_TESTS_SECRET_5K2";
const SECRET: &str = "plug-in-secret-5k2";

#[tokio::test]
async fn run_reads_the_input_another_nodes_output_and_a_declared_secret() {
    if !in_child_with_env(
        "kind::run_reads_the_input_another_nodes_output_and_a_declared_secret",
        SECRET_VAR,
        SECRET,
    ) {
        return;
    }
    let yaml = format!(
        r#"
name: t
strategy: {{ kind: all-settled }}
secrets: [{SECRET_VAR}]
nodes:
  - {{ id: up, kind: transform, config: {{ output: {{ n: 42, who: "{{{{ input.who }}}}" }} }} }}
  - {{ id: s, kind: stamp, config: {{ from: up, secret: {SECRET_VAR}, delay_ms: 5 }} }}
  - {{ id: undeclared, kind: stamp, config: {{ from: up, secret: PATH }} }}
edges:
  - {{ from: up, to: s }}
  - {{ from: up, to: undeclared }}
"#
    );
    let engine = engine();
    let wf = engine.parse_yaml(&yaml).unwrap();
    let report = engine
        .run(&wf, RunOptions::new().input(json!({ "who": "ada" })))
        .await
        .unwrap();
    let s = report.node("s").unwrap();
    assert_eq!(s.status, NodeStatus::Succeeded, "{:?}", s.error);
    assert_eq!(
        s.output,
        json!({
            "who": "ada",
            "from_status": "succeeded",
            "from_output": { "n": 42, "who": "ada" },
            "secret_chars": SECRET.len(),
            "attempt": 1,
        })
    );
    // Only declared secrets reach a kind, whatever the environment holds.
    let undeclared = report.node("undeclared").unwrap();
    assert_eq!(undeclared.status, NodeStatus::Failed);
    assert_eq!(
        undeclared.error.as_deref(),
        Some("config.secret: `PATH` is not declared")
    );
    assert_eq!(report.status, RunStatus::Failed);
}

#[test]
fn the_plan_uses_the_kinds_estimate() {
    let yaml = r#"
name: t
nodes:
  - { id: a, kind: stamp, config: { from: x, secret: Y, delay_ms: 30 } }
  - { id: b, kind: stamp, config: { from: a, secret: Y, delay_ms: 20 } }
  - { id: c, kind: stamp, config: { from: a, secret: Y, delay_ms: "{{ input.ms }}" } }
edges:
  - { from: a, to: b }
  - { from: a, to: c }
"#;
    let wf = engine().parse_yaml(yaml).unwrap();
    // What `flow explain` does: each node's kind estimates one attempt.
    let plan = Plan::new(&wf, |i, node| node.kind().estimate(&wf.spec().nodes[i].config));
    assert_eq!(plan.critical_ms(), 50.0);
    assert_eq!(plan.unknown().collect::<Vec<_>>(), [2]);
}
