//! The kinds that wait: `wait` (for a time, or until an instant) and
//! `signal` (for a signal sent to the run). Both wait through the engine
//! ([`NodeCall::waits`]), which keeps the wait in the run's journal: a run
//! resumed after a restart waits until the same instant, and a signal is
//! taken once.

use std::time::Duration;

use flow_core::{AttemptTime, ConfigProblem, NodeCall, NodeError, NodeKind, Waiting};
use serde_json::{Value, json};

use crate::config::unknown_fields;

/// `wait`: `config: { for: "30s" }` or `config: { until: "<RFC 3339>" }`;
/// output `{"woke_at": "<RFC 3339>", "waited_ms": n}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wait;

/// A duration as the `wait` and `signal` kinds take it: a number and a unit
/// (`ms`, `s`, `m`, `h`, `d`), several added up (`1h 30m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration like 500ms, 30s, 2h or 7d ({e})"))
}

/// An instant in RFC 3339 (`2026-12-08T09:00:00Z`, `...+01:00`), in ms since
/// the Unix epoch.
pub fn parse_instant(text: &str) -> Result<i64, String> {
    text.trim()
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|e| format!("`{text}` is not an RFC 3339 instant like 2026-12-08T09:00:00Z ({e})"))
}

/// An instant in ms since the Unix epoch, in RFC 3339 (UTC, to the ms).
pub fn format_instant(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| format!("{t:.3}"))
        .unwrap_or_else(|_| ms.to_string())
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn text_field<'a>(config: &'a Value, field: &str) -> Result<Option<&'a str>, String> {
    match config.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!("config.{field} must be a string, not {other}")),
    }
}

/// Problems of a field that holds a duration (a template is known at run time).
fn check_duration(config: &Value, field: &str, problems: &mut Vec<ConfigProblem>) {
    match config.get(field) {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.contains("{{") => {}
        Some(Value::String(s)) => {
            if let Err(e) = parse_duration(s) {
                problems.push(ConfigProblem::new(field, e));
            }
        }
        Some(other) => problems.push(ConfigProblem::new(
            field,
            format!("must be a duration like \"30s\" or \"2h\", not {other}"),
        )),
    }
}

fn waits_of(call: &NodeCall) -> Result<&dyn flow_core::Waits, NodeError> {
    call.waits
        .as_deref()
        .ok_or_else(|| NodeError::permanent("this kind waits through the engine, which did not give it a way to"))
}

#[async_trait::async_trait]
impl NodeKind for Wait {
    fn check(&self, config: &Value) -> Vec<ConfigProblem> {
        let mut problems = unknown_fields(config, &["for", "until"]);
        let has = |f: &str| config.get(f).is_some_and(|v| !v.is_null());
        match (has("for"), has("until")) {
            (true, true) => problems.push(ConfigProblem::new("", "give `for` or `until`, not both")),
            (false, false) => problems.push(ConfigProblem::new(
                "",
                "needs `for` (a duration like \"30s\") or `until` (an RFC 3339 instant)",
            )),
            _ => {}
        }
        check_duration(config, "for", &mut problems);
        match config.get("until") {
            Some(Value::String(s)) if !s.contains("{{") => {
                if let Err(e) = parse_instant(s) {
                    problems.push(ConfigProblem::new("until", e));
                }
            }
            None | Some(Value::Null | Value::String(_)) => {}
            Some(other) => problems.push(ConfigProblem::new(
                "until",
                format!("must be an RFC 3339 instant, not {other}"),
            )),
        }
        problems
    }

    fn estimate(&self, config: &Value) -> AttemptTime {
        match config.get("for").and_then(Value::as_str).map(parse_duration) {
            Some(Ok(wait)) => AttemptTime::Succeeds(wait.as_millis() as f64),
            _ => AttemptTime::Unknown,
        }
    }

    fn waits(&self) -> bool {
        true
    }

    async fn run(&self, call: NodeCall) -> Result<Value, NodeError> {
        let config = &call.config;
        let until = match (
            text_field(config, "for").map_err(NodeError::permanent)?,
            text_field(config, "until").map_err(NodeError::permanent)?,
        ) {
            (Some(span), None) => {
                let span = parse_duration(span).map_err(|e| NodeError::permanent(format!("config.for: {e}")))?;
                now_ms().saturating_add(i64::try_from(span.as_millis()).unwrap_or(i64::MAX))
            }
            (None, Some(instant)) => {
                parse_instant(instant).map_err(|e| NodeError::permanent(format!("config.until: {e}")))?
            }
            _ => return Err(NodeError::permanent("config: give `for` or `until`")),
        };
        let waits = waits_of(&call)?;
        let waiting = waits.begin(Waiting::until(until)).await?;
        let until = waiting.until_ms.unwrap_or(until);
        waits.sleep_until(until).await;
        let woke = now_ms().max(until);
        Ok(json!({
            "woke_at": format_instant(woke),
            "waited_ms": (woke - waiting.since_ms).max(0),
        }))
    }
}

/// `signal`: `config: { name: "approval", timeout: "72h", schema: {...} }`;
/// waits for a signal of that name sent to the run; its payload is the
/// output. No signal within `timeout`: the attempt fails (retryable).
#[derive(Debug, Clone, Copy, Default)]
pub struct Signal;

/// Whether `payload` may be sent as a signal that a node with `schema` takes:
/// the schema's verdict, as a message naming what is wrong.
pub fn check_signal(schema: &Value, payload: &Value) -> Result<(), String> {
    let validator = crate::validate::compile_schema(schema)?;
    let problems: Vec<String> = validator
        .iter_errors(payload)
        .take(crate::MAX_LISTED_VIOLATIONS)
        .map(|e| {
            let at = e.instance_path().as_str();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{at}: {e}")
            }
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[async_trait::async_trait]
impl NodeKind for Signal {
    fn check(&self, config: &Value) -> Vec<ConfigProblem> {
        let mut problems = unknown_fields(config, &["name", "timeout", "schema"]);
        match config.get("name") {
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            Some(Value::String(_)) => problems.push(ConfigProblem::new("name", "must not be empty")),
            None => problems.push(ConfigProblem::new("name", "is required")),
            Some(other) => problems.push(ConfigProblem::new("name", format!("must be a string, not {other}"))),
        }
        check_duration(config, "timeout", &mut problems);
        if let Some(schema) = config.get("schema")
            && let Err(e) = crate::validate::compile_schema(schema)
        {
            problems.push(ConfigProblem::new("schema", e));
        }
        problems
    }

    fn waits(&self) -> bool {
        true
    }

    async fn run(&self, call: NodeCall) -> Result<Value, NodeError> {
        let config = &call.config;
        let name = match text_field(config, "name").map_err(NodeError::permanent)? {
            Some(name) if !name.trim().is_empty() => name.to_owned(),
            _ => return Err(NodeError::permanent("config.name is required")),
        };
        let timeout = text_field(config, "timeout")
            .map_err(NodeError::permanent)?
            .map(|t| parse_duration(t).map(|d| (t.trim().to_owned(), d)))
            .transpose()
            .map_err(|e| NodeError::permanent(format!("config.timeout: {e}")))?;
        let deadline = timeout
            .as_ref()
            .map(|(_, d)| now_ms().saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)));
        let waits = waits_of(&call)?;
        let waiting = waits.begin(Waiting::signal(name.clone(), deadline)).await?;
        let received = waits.next_signal(&name);
        match (waiting.timeout_at_ms, timeout) {
            (Some(at), Some((text, _))) => {
                tokio::select! {
                    payload = received => payload,
                    () = waits.sleep_until(at) => Err(NodeError::new(format!("no signal `{name}` within {text}"))),
                }
            }
            _ => received.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_instants() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(
            parse_duration("soon")
                .expect_err("not a duration")
                .contains("`soon` is not a duration")
        );
        assert_eq!(parse_instant("1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(parse_instant("1970-01-01T01:00:01+01:00"), Ok(1000));
        assert!(
            parse_instant("tomorrow")
                .expect_err("not an instant")
                .contains("RFC 3339")
        );
        assert_eq!(format_instant(1500), "1970-01-01T00:00:01.500Z");
    }

    #[test]
    fn configs_are_checked() {
        assert!(Wait.check(&json!({ "for": "30s" })).is_empty());
        assert!(Wait.check(&json!({ "until": "{{ input.at }}" })).is_empty());
        let both = Wait.check(&json!({ "for": "1s", "until": "1970-01-01T00:00:00Z" }));
        assert!(both[0].message.contains("not both"), "{both:?}");
        let bad = Wait.check(&json!({ "for": "fortnight" }));
        assert_eq!(bad[0].path, "for");
        assert!(
            Signal
                .check(&json!({ "name": "approval", "timeout": "72h", "schema": { "type": "object" } }))
                .is_empty()
        );
        let missing = Signal.check(&json!({}));
        assert_eq!(
            (missing[0].path.as_str(), missing[0].message.as_str()),
            ("name", "is required")
        );
        assert_eq!(Signal.check(&json!({ "name": "a", "schema": 3 }))[0].path, "schema");
    }

    #[test]
    fn payloads_are_checked_against_the_schema() {
        let schema =
            json!({ "type": "object", "required": ["approved"], "properties": { "approved": { "type": "boolean" } } });
        assert!(check_signal(&schema, &json!({ "approved": true })).is_ok());
        let refused = check_signal(&schema, &json!({ "approved": "yes" })).expect_err("refused");
        assert!(refused.contains("/approved"), "{refused}");
    }
}
