//! Reading a node's config, for the built-in kinds and for yours.
//!
//! A kind sees its config twice: in [`NodeKind::check`], as written in the
//! workflow, where any string may still be a `{{ }}` template whose value only the
//! run knows; and in [`NodeKind::run`], rendered. Reading it both times with one
//! function, through a [`ConfigReader`], makes validation and execution accept the
//! same configs:
//!
//! - in [`ReadMode::Check`] a template is accepted wherever a value is, and every
//!   problem is collected with its path inside `config` (`times`, `headers.Accept`),
//!   ready to return from `check`;
//! - in [`ReadMode::Run`] every value must have its final type, and
//!   [`config_error`] turns the problems into one permanent [`NodeError`] whose
//!   message names each field (`config.times: …`).
//!
//! ```
//! use async_trait::async_trait;
//! use flow_core::{ConfigProblem, NodeCall, NodeError, NodeKind};
//! use flow_nodes::config::{ConfigReader, ReadMode, config_error};
//! use serde_json::{Value, json};
//!
//! /// `greet`: greets `config.name`, `config.times` times (1 to 10, default 1).
//! struct Greet;
//!
//! struct GreetConfig {
//!     name: String,
//!     times: u64,
//! }
//!
//! /// The one reading of the config, at check and at run time. It returns `None`
//! /// only after recording a problem.
//! fn read(reader: &mut ConfigReader, config: &Value) -> Option<GreetConfig> {
//!     let map = reader.object(config, "", &["name", "times"])?;
//!     let name = reader.required(map, "", "name");
//!     let name = reader.string(name, "name");
//!     let times = reader.integer(reader.optional(map, "times"), "times", 1..=10);
//!     Some(GreetConfig { name: name?, times: times.unwrap_or(1) })
//! }
//!
//! #[async_trait]
//! impl NodeKind for Greet {
//!     fn check(&self, config: &Value) -> Vec<ConfigProblem> {
//!         let mut reader = ConfigReader::new(ReadMode::Check);
//!         read(&mut reader, config);
//!         reader.into_problems()
//!     }
//!
//!     async fn run(&self, call: NodeCall) -> Result<Value, NodeError> {
//!         let mut reader = ConfigReader::new(ReadMode::Run);
//!         let config = read(&mut reader, &call.config);
//!         let config = reader.finish(config).map_err(config_error)?;
//!         Ok(json!({ "greeting": format!("hello, {}", config.name), "times": config.times }))
//!     }
//! }
//!
//! // At validation, a template stands for a value of any type...
//! assert!(Greet.check(&json!({ "name": "{{ input.who }}", "times": "{{ input.n }}" })).is_empty());
//! // ...and every problem is named by its path inside `config`.
//! let problems = Greet.check(&json!({ "nmae": "Ada", "times": 11 }));
//! let found: Vec<(&str, &str)> = problems.iter().map(|p| (p.path.as_str(), p.message.as_str())).collect();
//! assert_eq!(found, [
//!     ("nmae", "unknown field (did you mean `name`?); expected one of: name, times"),
//!     ("name", "is required"),
//!     ("times", "must be a whole number from 1 to 10, not 11"),
//! ]);
//!
//! // At run time, the rendered config must have its final types: the same reading
//! // fails the attempt for good, naming the field.
//! let mut reader = ConfigReader::new(ReadMode::Run);
//! let config = read(&mut reader, &json!({ "name": "Ada", "times": "many" }));
//! let error = reader.finish(config).map_err(config_error).err().unwrap();
//! assert_eq!(error.message(), r#"config.times: must be a whole number from 1 to 10, not "many""#);
//! assert!(!error.is_retryable());
//! ```
//!
//! [`NodeKind::check`]: flow_core::NodeKind::check
//! [`NodeKind::run`]: flow_core::NodeKind::run

use std::ops::RangeInclusive;
use std::sync::LazyLock;

use flow_core::{ConfigProblem, NodeError, join_path};
use serde_json::{Map, Value};

use crate::message::{short, type_name};

/// When a config is read: as written (templates unrendered) or rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// At validation ([`NodeKind::check`](flow_core::NodeKind::check)): a template
    /// string is accepted wherever a value is.
    Check,
    /// At run time ([`NodeKind::run`](flow_core::NodeKind::run)): every value must
    /// have its final type.
    Run,
}

/// Whether `value` is a string that the engine renders (it holds template syntax,
/// `{{ }}` or `{% %}`).
pub fn is_template(value: &Value) -> bool {
    matches!(value, Value::String(s) if s.contains("{{") || s.contains("{%"))
}

/// The error of a run whose rendered config has problems: permanent, since no
/// retry changes the config. Every problem is named by its field
/// (`config.url: is not a valid URL: …; config.timeout_ms: …`).
pub fn config_error(problems: Vec<ConfigProblem>) -> NodeError {
    let text: Vec<String> = problems
        .iter()
        .map(|p| {
            if p.path.is_empty() {
                format!("config: {}", p.message)
            } else {
                format!("config.{}: {}", p.path, p.message)
            }
        })
        .collect();
    NodeError::permanent(text.join("; "))
}

/// Problems for every key of an object config that is not in `known` (with a
/// "did you mean"), or for a config that is not an object at all. A missing
/// config (`null`) has none.
pub fn unknown_fields(config: &Value, known: &[&str]) -> Vec<ConfigProblem> {
    match config {
        Value::Null => Vec::new(),
        Value::Object(map) => map
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .map(|k| {
                let hint = flow_core::did_you_mean(k, known.iter().copied())
                    .map(|c| format!(" (did you mean `{c}`?)"))
                    .unwrap_or_default();
                ConfigProblem::new(
                    k.clone(),
                    format!("unknown field{hint}; expected one of: {}", known.join(", ")),
                )
            })
            .collect(),
        other => vec![ConfigProblem::new("", format!("must be an object, not {other}"))],
    }
}

/// Reads one config field by field, collecting its problems.
///
/// Each reading method takes the value found (`None` when the field is absent)
/// and the field's path inside `config`, for messages. It returns the value with
/// its final type, or `None` when the value is absent, is a template that only
/// run time can judge ([`ReadMode::Check`]), or is wrong, in which case a problem
/// was recorded.
#[derive(Debug)]
pub struct ConfigReader {
    mode: ReadMode,
    problems: Vec<ConfigProblem>,
}

impl ConfigReader {
    /// A reader with no problem yet.
    pub fn new(mode: ReadMode) -> ConfigReader {
        ConfigReader {
            mode,
            problems: Vec::new(),
        }
    }

    /// When this reader reads.
    pub fn mode(&self) -> ReadMode {
        self.mode
    }

    /// Records a problem at `path` (inside `config`; empty for the config itself).
    pub fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(ConfigProblem::new(path, message));
    }

    /// Whether `value` is a template that only run time can judge: always `false`
    /// in [`ReadMode::Run`], where every template has been rendered.
    pub fn deferred(&self, value: &Value) -> bool {
        self.mode == ReadMode::Check && is_template(value)
    }

    /// The config (or a nested map at `path`) as an object; records a problem for
    /// every key not in `known`, and one for a value that is not an object. A
    /// missing config (`null`) reads as an empty object.
    pub fn object<'a>(&mut self, value: &'a Value, path: &str, known: &[&str]) -> Option<&'a Map<String, Value>> {
        static EMPTY: LazyLock<Map<String, Value>> = LazyLock::new(Map::new);
        for mut p in unknown_fields(value, known) {
            p.path = if p.path.is_empty() {
                path.to_owned()
            } else {
                join_path(path, &p.path)
            };
            self.problems.push(p);
        }
        match value {
            Value::Object(map) => Some(map),
            Value::Null => Some(&EMPTY),
            _ => None,
        }
    }

    /// The field `key` of `map` (the object at `path`), recording a problem when
    /// it is absent or `null`. A template counts as present.
    pub fn required<'a>(&mut self, map: &'a Map<String, Value>, path: &str, key: &str) -> Option<&'a Value> {
        let value = field(map, key);
        if value.is_none() {
            self.problem(join_path(path, key), "is required");
        }
        value
    }

    /// The field `key` of `map`, if present; `null` reads as absent.
    pub fn optional<'a>(&self, map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
        field(map, key)
    }

    /// A string; numbers and booleans are taken as their text. A template is
    /// returned as written in [`ReadMode::Check`].
    pub fn string(&mut self, value: Option<&Value>, path: &str) -> Option<String> {
        match value? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => {
                self.problem(path, format!("must be a string, not {}", type_name(other)));
                None
            }
        }
    }

    /// A whole number in `range`; a string of digits (a rendered secret, say) counts.
    pub fn integer(&mut self, value: Option<&Value>, path: &str, range: RangeInclusive<u64>) -> Option<u64> {
        let value = value?;
        if self.deferred(value) {
            return None;
        }
        let n = match value {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if range.contains(&n) => Some(n),
            _ => {
                self.problem(
                    path,
                    format!(
                        "must be a whole number from {} to {}, not {}",
                        range.start(),
                        range.end(),
                        short(value)
                    ),
                );
                None
            }
        }
    }

    /// `true` or `false` (also as the strings "true" and "false").
    pub fn boolean(&mut self, value: Option<&Value>, path: &str) -> Option<bool> {
        let value = value?;
        if self.deferred(value) {
            return None;
        }
        match value {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s == "true" => Some(true),
            Value::String(s) if s == "false" => Some(false),
            other => {
                self.problem(path, format!("must be true or false, not {}", short(other)));
                None
            }
        }
    }

    /// One of `choices`, matched ignoring ASCII case; the choice as listed.
    pub fn choice<'c>(&mut self, value: Option<&Value>, path: &str, choices: &[&'c str]) -> Option<&'c str> {
        let value = value?;
        if self.deferred(value) {
            return None;
        }
        let found = value
            .as_str()
            .and_then(|s| choices.iter().find(|c| c.eq_ignore_ascii_case(s)));
        if found.is_none() {
            self.problem(
                path,
                format!("must be one of {}, not {}", choices.join(", "), short(value)),
            );
        }
        found.copied()
    }

    /// A map of names to text values (headers, say), in order; numbers and
    /// booleans are taken as their text.
    pub fn text_map(&mut self, value: Option<&Value>, path: &str) -> Vec<(String, String)> {
        self.text_entries(value, path, false)
    }

    /// [`ConfigReader::text_map`] where a name may also have a list of values,
    /// each giving one pair (repeated query parameters, say).
    pub fn text_multimap(&mut self, value: Option<&Value>, path: &str) -> Vec<(String, String)> {
        self.text_entries(value, path, true)
    }

    fn text_entries(&mut self, value: Option<&Value>, path: &str, lists: bool) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let Some(value) = value else { return out };
        if self.deferred(value) {
            return out;
        }
        let Value::Object(map) = value else {
            self.problem(
                path,
                format!("must be a map of names to values, not {}", type_name(value)),
            );
            return out;
        };
        for (key, item) in map {
            let place = join_path(path, key);
            match item {
                Value::Array(items) if lists => {
                    for (i, item) in items.iter().enumerate() {
                        if let Some(text) = self.scalar_text(item, &format!("{place}[{i}]")) {
                            out.push((key.clone(), text));
                        }
                    }
                }
                item => {
                    if let Some(text) = self.scalar_text(item, &place) {
                        out.push((key.clone(), text));
                    }
                }
            }
        }
        out
    }

    fn scalar_text(&mut self, value: &Value, path: &str) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => {
                self.problem(
                    path,
                    format!("must be a string, number or boolean, not {}", type_name(other)),
                );
                None
            }
        }
    }

    /// The problems found, in the order found: what `check` returns.
    pub fn into_problems(self) -> Vec<ConfigProblem> {
        self.problems
    }

    /// The value read if no problem was found, else every problem (for `run`,
    /// through [`config_error`]). A `None` read with no problem recorded is
    /// refused all the same, as an unreadable config.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, Vec<ConfigProblem>> {
        match value {
            Some(value) if self.problems.is_empty() => Ok(value),
            None if self.problems.is_empty() => Err(vec![ConfigProblem::new("", "could not be read")]),
            _ => Err(self.problems),
        }
    }
}

/// A field of an object config; `null` reads as absent.
pub(crate) fn field<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).filter(|v| !v.is_null())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn templates_are_deferred_only_in_check() {
        let mut check = ConfigReader::new(ReadMode::Check);
        assert_eq!(check.integer(Some(&json!("{{ input.n }}")), "n", 1..=10), None);
        assert!(check.into_problems().is_empty());
        let mut run = ConfigReader::new(ReadMode::Run);
        assert_eq!(run.integer(Some(&json!("{{ input.n }}")), "n", 1..=10), None);
        assert_eq!(run.into_problems()[0].path, "n");
    }

    #[test]
    fn integers_accept_digit_strings() {
        let mut r = ConfigReader::new(ReadMode::Run);
        assert_eq!(r.integer(Some(&json!("25")), "port", 1..=65535), Some(25));
        assert_eq!(r.integer(Some(&json!(0)), "port", 1..=65535), None);
        assert_eq!(r.into_problems().len(), 1);
    }

    #[test]
    fn nested_objects_name_their_paths() {
        let mut r = ConfigReader::new(ReadMode::Run);
        let config = json!({ "auth": { "user": "u", "pasword": "p", "a b": 1 } });
        let map = r.object(&config, "", &["auth"]).unwrap();
        let auth = r.object(&map["auth"], "auth", &["user", "password"]).unwrap();
        assert_eq!(r.required(auth, "auth", "password"), None);
        let paths: Vec<String> = r.into_problems().into_iter().map(|p| p.path).collect();
        assert_eq!(paths, ["auth.pasword", "auth[\"a b\"]", "auth.password"]);
    }

    #[test]
    fn unknown_fields_suggest_the_closest() {
        let problems = unknown_fields(&json!({ "mesage": "x" }), &["message", "ms"]);
        assert_eq!(
            problems[0].message,
            "unknown field (did you mean `message`?); expected one of: message, ms"
        );
        assert!(unknown_fields(&json!(null), &["ms"]).is_empty());
        assert_eq!(
            unknown_fields(&json!([1]), &["ms"])[0].message,
            "must be an object, not [1]"
        );
    }

    #[test]
    fn multimaps_repeat_names() {
        let mut r = ConfigReader::new(ReadMode::Run);
        let pairs = r.text_multimap(Some(&json!({ "tag": ["a", 2], "on": true })), "query");
        assert_eq!(
            pairs,
            [
                ("tag".into(), "a".into()),
                ("tag".into(), "2".into()),
                ("on".into(), "true".into())
            ]
        );
        assert!(r.text_map(Some(&json!({ "tag": ["a"] })), "headers").is_empty());
        assert_eq!(r.into_problems()[0].path, "headers.tag");
    }

    #[test]
    fn finish_refuses_a_silent_none() {
        let r = ConfigReader::new(ReadMode::Run);
        assert_eq!(r.finish::<u8>(None).unwrap_err()[0].message, "could not be read");
        let mut r = ConfigReader::new(ReadMode::Run);
        r.problem("x", "bad");
        assert_eq!(config_error(r.finish(Some(1)).unwrap_err()).message(), "config.x: bad");
    }
}
