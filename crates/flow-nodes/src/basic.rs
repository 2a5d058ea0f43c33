//! The kinds that need no service: `noop`, `delay`, `transform`, `fail`.

use std::time::Duration;

use flow_core::{AttemptTime, ConfigProblem, NodeCall, NodeError, NodeKind};
use serde_json::{Value, json};

use crate::config::unknown_fields;

/// `noop`: does nothing; output `null`. For joins, starts and benchmarks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Noop;

#[async_trait::async_trait]
impl NodeKind for Noop {
    /// Only computes (or sleeps): nothing outside the run to guard.
    fn effects(&self) -> bool {
        false
    }

    fn estimate(&self, _config: &Value) -> AttemptTime {
        AttemptTime::Succeeds(0.0)
    }

    async fn run(&self, _call: NodeCall) -> Result<Value, NodeError> {
        Ok(Value::Null)
    }
}

/// `delay`: waits `config.ms` milliseconds; output `{"slept_ms": ms}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Delay;

impl Delay {
    /// The wait a (rendered) config asks for.
    pub fn duration(config: &Value) -> Result<Duration, String> {
        match config.get("ms") {
            Some(Value::Number(n)) => match n.as_u64() {
                Some(ms) => Ok(Duration::from_millis(ms)),
                None => Err(format!(
                    "config.ms must be a whole number of milliseconds >= 0, not {n}"
                )),
            },
            Some(other) => Err(format!("config.ms must be a number, not {other}")),
            None => Err("config.ms is required".to_owned()),
        }
    }
}

#[async_trait::async_trait]
impl NodeKind for Delay {
    /// Only computes (or sleeps): nothing outside the run to guard.
    fn effects(&self) -> bool {
        false
    }

    fn check(&self, config: &Value) -> Vec<ConfigProblem> {
        let mut problems = unknown_fields(config, &["ms"]);
        match config.get("ms") {
            None => problems.push(ConfigProblem::new("ms", "is required")),
            Some(Value::String(s)) if s.contains("{{") => {}
            Some(Value::Number(n)) if n.as_u64().is_some() => {}
            Some(other) => problems.push(ConfigProblem::new(
                "ms",
                format!("must be a whole number of milliseconds >= 0, not {other}"),
            )),
        }
        problems
    }

    /// The wait itself when `ms` is written as a number; a template is known
    /// only at run time.
    fn estimate(&self, config: &Value) -> AttemptTime {
        match Delay::duration(config) {
            Ok(wait) => AttemptTime::Succeeds(wait.as_millis() as f64),
            Err(_) => AttemptTime::Unknown,
        }
    }

    async fn run(&self, call: NodeCall) -> Result<Value, NodeError> {
        let wait = Delay::duration(&call.config).map_err(NodeError::permanent)?;
        if wait.is_zero() {
            // The timer rounds up to its next 1 ms tick; a zero delay only yields once.
            tokio::task::yield_now().await;
        } else {
            crate::timer::sleep(wait).await;
        }
        Ok(json!({ "slept_ms": wait.as_millis() as u64 }))
    }
}

/// `transform`: output = `config.output` with every template rendered. Used to
/// merge branch results and reshape data.
#[derive(Debug, Clone, Copy, Default)]
pub struct Transform;

#[async_trait::async_trait]
impl NodeKind for Transform {
    /// Only computes (or sleeps): nothing outside the run to guard.
    fn effects(&self) -> bool {
        false
    }

    fn check(&self, config: &Value) -> Vec<ConfigProblem> {
        let mut problems = unknown_fields(config, &["output"]);
        if config.get("output").is_none() {
            problems.push(ConfigProblem::new("output", "is required"));
        }
        problems
    }

    fn estimate(&self, _config: &Value) -> AttemptTime {
        AttemptTime::Succeeds(0.0)
    }

    async fn run(&self, call: NodeCall) -> Result<Value, NodeError> {
        Ok(call.config.get("output").cloned().unwrap_or(Value::Null))
    }
}

/// `fail`: always fails with `config.message`, like a Fail state. For error paths
/// and tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fail;

#[async_trait::async_trait]
impl NodeKind for Fail {
    /// Only computes (or sleeps): nothing outside the run to guard.
    fn effects(&self) -> bool {
        false
    }

    fn check(&self, config: &Value) -> Vec<ConfigProblem> {
        let mut problems = unknown_fields(config, &["message"]);
        if let Some(m) = config.get("message")
            && !m.is_string()
        {
            problems.push(ConfigProblem::new("message", "must be a string"));
        }
        problems
    }

    fn estimate(&self, _config: &Value) -> AttemptTime {
        AttemptTime::Fails(0.0)
    }

    async fn run(&self, call: NodeCall) -> Result<Value, NodeError> {
        let message = call
            .config
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("failed by a `fail` node");
        Err(NodeError::new(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_from_the_config_as_written() {
        let check = |kind: &dyn NodeKind, config: Value, expected: AttemptTime| {
            assert_eq!(kind.estimate(&config), expected, "{config}");
        };
        check(&Noop, Value::Null, AttemptTime::Succeeds(0.0));
        check(
            &Transform,
            json!({ "output": "{{ input }}" }),
            AttemptTime::Succeeds(0.0),
        );
        check(&Fail, json!({ "message": "no" }), AttemptTime::Fails(0.0));
        check(&Delay, json!({ "ms": 250 }), AttemptTime::Succeeds(250.0));
        check(&Delay, json!({ "ms": 0 }), AttemptTime::Succeeds(0.0));
        check(&Delay, json!({ "ms": "{{ input.ms }}" }), AttemptTime::Unknown);
        check(&Delay, json!({ "ms": "250" }), AttemptTime::Unknown);
        check(&Delay, json!({ "ms": 2.5 }), AttemptTime::Unknown);
        check(&Delay, json!({ "ms": -1 }), AttemptTime::Unknown);
        check(&Delay, json!({}), AttemptTime::Unknown);
        check(&Delay, json!("250"), AttemptTime::Unknown);
    }
}
