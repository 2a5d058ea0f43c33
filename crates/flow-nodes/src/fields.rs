//! Reading a node's config field by field. One reader serves `check` (the config as
//! written, where a template string may stand for a value of any type) and `run`
//! (the config rendered), so validation and execution accept the same configs.

use flow_core::{ConfigProblem, NodeError};
use serde_json::{Map, Value};

use crate::basic::unknown_fields;

/// Whether the config is read as written (templates unrendered) or rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// At validation: a template string is accepted wherever a value is.
    Check,
    /// At run time: every value must have its final type.
    Run,
}

/// Whether `value` is a string that the engine renders (it holds template syntax).
pub(crate) fn is_template(value: &Value) -> bool {
    matches!(value, Value::String(s) if s.contains("{{") || s.contains("{%"))
}

/// `path.key`, or `path["odd key"]` for keys that are not plain words.
pub(crate) fn join(path: &str, key: &str) -> String {
    let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{key:?}]"),
    }
}

/// The error of a run whose rendered config has problems: permanent, since no
/// retry changes the config. Every problem is named by its field.
pub(crate) fn config_error(problems: Vec<ConfigProblem>) -> NodeError {
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

/// Collects the problems of one config while its fields are read.
#[derive(Debug)]
pub(crate) struct Reader {
    mode: Mode,
    problems: Vec<ConfigProblem>,
}

impl Reader {
    pub(crate) fn new(mode: Mode) -> Reader {
        Reader {
            mode,
            problems: Vec::new(),
        }
    }

    pub(crate) fn mode(&self) -> Mode {
        self.mode
    }

    /// Records a problem at `path`.
    pub(crate) fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(ConfigProblem::new(path, message));
    }

    /// Whether `value` is a template that only run time can judge.
    pub(crate) fn deferred(&self, value: &Value) -> bool {
        self.mode == Mode::Check && is_template(value)
    }

    /// The config (or a nested part at `path`) as an object; records a problem for
    /// every key not in `known`. A missing config (`null`) reads as an empty object.
    pub(crate) fn object<'a>(
        &mut self,
        path: &str,
        value: &'a Value,
        known: &[&str],
    ) -> Option<&'a Map<String, Value>> {
        static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);
        for mut p in unknown_fields(value, known) {
            p.path = if p.path.is_empty() {
                path.to_owned()
            } else {
                join(path, &p.path)
            };
            self.problems.push(p);
        }
        match value {
            Value::Object(map) => Some(map),
            Value::Null => Some(&EMPTY),
            _ => None,
        }
    }

    /// A field that must be present (a template counts as present).
    pub(crate) fn required<'a>(&mut self, map: &'a Map<String, Value>, path: &str, key: &str) -> Option<&'a Value> {
        let value = field(map, key);
        if value.is_none() {
            self.problem(join(path, key), "is required");
        }
        value
    }

    /// A string; numbers and booleans are taken as their text. `None` when absent,
    /// deferred or wrong (the last recorded).
    pub(crate) fn string(&mut self, value: Option<&Value>, path: &str) -> Option<String> {
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

    /// A whole number in `min..=max`; a string of digits (a rendered secret, say) counts.
    pub(crate) fn integer(&mut self, value: Option<&Value>, path: &str, min: u64, max: u64) -> Option<u64> {
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
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.problem(
                    path,
                    format!("must be a whole number from {min} to {max}, not {}", short(value)),
                );
                None
            }
        }
    }

    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    /// `true` or `false` (also as the strings "true" and "false").
    pub(crate) fn boolean(&mut self, value: Option<&Value>, path: &str) -> Option<bool> {
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

    /// One of `choices` (a string).
    pub(crate) fn choice<'c>(&mut self, value: Option<&Value>, path: &str, choices: &[&'c str]) -> Option<&'c str> {
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

    /// A map of names to text values (headers, query parameters). Arrays of values
    /// are allowed when `lists` is true (repeated query parameters).
    pub(crate) fn text_map(&mut self, value: Option<&Value>, path: &str, lists: bool) -> Vec<(String, String)> {
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
            let place = join(path, key);
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

    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    /// The problems found, in the order found.
    pub(crate) fn into_problems(self) -> Vec<ConfigProblem> {
        self.problems
    }

    /// `value` if no problem was found, else every problem.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, Vec<ConfigProblem>> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(self.problems)
        }
    }
}

/// A field of an object config; `null` reads as absent.
pub(crate) fn field<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).filter(|v| !v.is_null())
}

/// The JSON type of a value, for messages.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// A value for a message, cut short.
pub(crate) fn short(value: &Value) -> String {
    let text = value.to_string();
    let mut cut: String = text.chars().take(60).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

#[cfg_attr(not(any(feature = "http", feature = "email")), allow(dead_code))]
/// An error and its sources, one after the other.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg_attr(not(feature = "http"), allow(dead_code))]
/// At most `max` bytes of `text`, cut on a character boundary.
pub(crate) fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn join_quotes_odd_keys() {
        assert_eq!(join("", "url"), "url");
        assert_eq!(join("headers", "X-Api-Key"), "headers.X-Api-Key");
        assert_eq!(join("headers", "a b"), "headers[\"a b\"]");
    }

    #[test]
    fn templates_are_deferred_only_in_check() {
        let mut check = Reader::new(Mode::Check);
        assert_eq!(check.integer(Some(&json!("{{ input.n }}")), "n", 1, 10), None);
        assert!(check.into_problems().is_empty());
        let mut run = Reader::new(Mode::Run);
        assert_eq!(run.integer(Some(&json!("{{ input.n }}")), "n", 1, 10), None);
        assert_eq!(run.into_problems()[0].path, "n");
    }

    #[test]
    fn integers_accept_digit_strings() {
        let mut r = Reader::new(Mode::Run);
        assert_eq!(r.integer(Some(&json!("25")), "port", 1, 65535), Some(25));
        assert_eq!(r.integer(Some(&json!(0)), "port", 1, 65535), None);
        assert_eq!(r.into_problems().len(), 1);
    }

    #[test]
    fn prefix_cuts_on_char_boundary() {
        assert_eq!(prefix("héllo", 2), "h");
        assert_eq!(prefix("abc", 10), "abc");
    }
}
