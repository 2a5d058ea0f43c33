//! `validate`: checks a value against a JSON Schema (draft 2020-12) and a list of
//! rules, reporting every violation at once.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex};

use flow_core::{ConfigProblem, Context, Expr, Format, Limits, NodeCall, NodeError, NodeKind, Registry, Workflow};
use jsonschema::Validator;
use serde_json::{Value, json};

use crate::config::{ConfigReader, ReadMode, config_error, field, is_template};
use crate::message::type_name;

/// At most this many violations are listed in an error; the rest are counted.
pub const MAX_LISTED_VIOLATIONS: usize = 1000;
/// Compiled schemas kept for reuse across runs.
const SCHEMA_CACHE: usize = 64;

/// The config of a `validate` node.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidateConfig {
    /// `value`: the JSON checked (usually a template such as `"{{ nodes.users.output.body }}"`).
    pub value: Value,
    /// `schema`: a JSON Schema, draft 2020-12.
    pub schema: Option<Value>,
    /// `rules`: expressions that must all be true.
    pub rules: Vec<Rule>,
}

impl ValidateConfig {
    /// A config checking `value` against nothing yet.
    pub fn new(value: Value) -> ValidateConfig {
        ValidateConfig {
            value,
            schema: None,
            rules: Vec::new(),
        }
    }

    /// Reads a rendered config; the error names every field that is wrong.
    pub fn from_value(config: &Value) -> Result<ValidateConfig, NodeError> {
        parse(config, ReadMode::Run).map_err(config_error)
    }

    /// The problems of a config as written: a broken schema and a rule that does
    /// not compile are found here, before anything runs.
    pub fn problems(config: &Value) -> Vec<ConfigProblem> {
        parse(config, ReadMode::Check).err().unwrap_or_default()
    }
}

/// One entry of `rules`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `expr`: a minijinja expression (no `{{ }}`) over the run's context plus `value`.
    pub expr: String,
    /// `message`: what a violation says (default: the expression that was false).
    pub message: Option<String>,
}

impl Rule {
    /// A rule with the default message.
    pub fn new(expr: impl Into<String>) -> Rule {
        Rule {
            expr: expr.into(),
            message: None,
        }
    }

    /// The same rule with `message`.
    pub fn with_message(mut self, message: impl Into<String>) -> Rule {
        self.message = Some(message.into());
        self
    }
}

/// One way the value is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Where in the value, as a JSON pointer (`/users/0/email`); empty for the whole value.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.pointer.is_empty() {
            "(root)"
        } else {
            &self.pointer
        };
        write!(f, "{at}: {}", self.message)
    }
}

fn parse(config: &Value, mode: ReadMode) -> Result<ValidateConfig, Vec<ConfigProblem>> {
    let mut r = ConfigReader::new(mode);
    let mut out = ValidateConfig::new(Value::Null);
    let Some(map) = r.object(config, "", &["value", "schema", "rules"]) else {
        return r.finish(Some(out));
    };
    match map.get("value") {
        Some(value) => out.value = value.clone(),
        None => r.problem("value", "is required"),
    }
    if let Some(schema) = field(map, "schema").filter(|s| !r.deferred(s)) {
        match compile_schema(schema) {
            Ok(_) => out.schema = Some(schema.clone()),
            Err(message) => r.problem("schema", message),
        }
    }
    if let Some(rules) = field(map, "rules").filter(|v| !r.deferred(v)) {
        out.rules = read_rules(&mut r, rules);
    }
    if field(map, "schema").is_none() && field(map, "rules").is_none() {
        r.problem("", "nothing to check: give `schema`, `rules` or both");
    }
    r.finish(Some(out))
}

fn read_rules(r: &mut ConfigReader, rules: &Value) -> Vec<Rule> {
    let Value::Array(items) = rules else {
        r.problem(
            "rules",
            format!("must be a list of {{ expr, message }}, not {}", type_name(rules)),
        );
        return Vec::new();
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let place = format!("rules[{i}]");
        let Some(map) = r.object(item, &place, &["expr", "message"]) else {
            continue;
        };
        let expr = r.required(map, &place, "expr");
        let expr_place = format!("{place}.expr");
        let Some(expr) = r.string(expr, &expr_place) else {
            continue;
        };
        if is_template(&Value::String(expr.clone())) {
            r.problem(&expr_place, "is an expression: write it without `{{ }}`");
            continue;
        }
        if let Err(problem) = compile_rule(&expr) {
            r.problem(&expr_place, problem);
            continue;
        }
        let message = r.string(field(map, "message"), &format!("{place}.message"));
        out.push(Rule { expr, message });
    }
    out
}

fn compile_rule(source: &str) -> Result<Expr, String> {
    let expr = Expr::compile(source).map_err(|e| format!("invalid expression: {e}"))?;
    let references = expr.references();
    if let Some(name) = references.other.iter().find(|name| *name != "value") {
        return Err(format!(
            "unknown variable `{name}`: a rule sees `value`, `input`, `nodes` and `env`"
        ));
    }
    Ok(expr)
}

pub(crate) fn compile_schema(schema: &Value) -> Result<Validator, String> {
    if !(schema.is_object() || schema.is_boolean()) {
        return Err(format!(
            "must be a JSON Schema (a map or a boolean), not {}",
            type_name(schema)
        ));
    }
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| {
            let at = e.instance_path().as_str();
            if at.is_empty() {
                format!("invalid JSON Schema: {e}")
            } else {
                format!("invalid JSON Schema at {at}: {e}")
            }
        })
}

/// The `validate` node kind. Compiled schemas are kept, so a workflow run many
/// times compiles its schema once.
pub struct Validate {
    schemas: Mutex<HashMap<String, Arc<Validator>>>,
}

impl fmt::Debug for Validate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validate").finish_non_exhaustive()
    }
}

impl Default for Validate {
    fn default() -> Self {
        Validate::new()
    }
}

impl Validate {
    /// The kind.
    pub fn new() -> Validate {
        Validate {
            schemas: Mutex::new(HashMap::new()),
        }
    }

    /// Every violation of `config.value`: the schema's first, then the rules', in
    /// order. An empty list means valid. `context` is what rules see besides
    /// `value`; without one (outside a run) `input` is null and `nodes` and `env`
    /// are empty. Fails only on a broken schema or rule.
    pub fn violations(&self, config: &ValidateConfig, context: Option<&Context>) -> Result<Vec<Violation>, NodeError> {
        let mut out = Vec::new();
        if let Some(schema) = &config.schema {
            let validator = self.validator(schema)?;
            out.extend(validator.iter_errors(&config.value).map(|e| Violation {
                pointer: e.instance_path().as_str().to_owned(),
                message: e.to_string(),
            }));
        }
        if config.rules.is_empty() {
            return Ok(out);
        }
        let standalone;
        let context = match context {
            Some(context) => context,
            None => {
                standalone = standalone_context()
                    .ok_or_else(|| NodeError::permanent("rules: no context to evaluate them in"))?;
                &standalone
            }
        };
        for (i, rule) in config.rules.iter().enumerate() {
            let expr =
                compile_rule(&rule.expr).map_err(|e| NodeError::permanent(format!("config.rules[{i}].expr: {e}")))?;
            let message = match expr.is_true_with(context, &[("value", &config.value)]) {
                Ok(true) => continue,
                Ok(false) => rule
                    .message
                    .clone()
                    .unwrap_or_else(|| format!("rule `{}` is false", rule.expr)),
                Err(e) => format!("rule `{}` could not be evaluated: {e}", rule.expr),
            };
            out.push(Violation {
                pointer: String::new(),
                message,
            });
        }
        Ok(out)
    }

    /// Checks `config.value` without an engine: `Ok` when valid, else a permanent
    /// error listing every violation (see [`Validate::violations`]).
    pub fn run(&self, config: &ValidateConfig, context: Option<&Context>) -> Result<(), NodeError> {
        let violations = self.violations(config, context)?;
        if violations.is_empty() {
            return Ok(());
        }
        let mut text = match violations.len() {
            1 => "the value is invalid: 1 violation".to_owned(),
            n => format!("the value is invalid: {n} violations"),
        };
        for v in violations.iter().take(MAX_LISTED_VIOLATIONS) {
            text.push_str("\n- ");
            text.push_str(&v.to_string());
        }
        if violations.len() > MAX_LISTED_VIOLATIONS {
            text.push_str(&format!("\n- … and {} more", violations.len() - MAX_LISTED_VIOLATIONS));
        }
        Err(NodeError::permanent(text))
    }

    fn validator(&self, schema: &Value) -> Result<Arc<Validator>, NodeError> {
        let key = schema.to_string();
        let mut cache = self.schemas.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(validator) = cache.get(&key) {
            return Ok(validator.clone());
        }
        let validator =
            Arc::new(compile_schema(schema).map_err(|e| NodeError::permanent(format!("config.schema: {e}")))?);
        if cache.len() >= SCHEMA_CACHE {
            cache.clear();
        }
        cache.insert(key, validator.clone());
        Ok(validator)
    }
}

#[async_trait::async_trait]
impl NodeKind for Validate {
    /// Only computes (or sleeps): nothing outside the run to guard.
    fn effects(&self) -> bool {
        false
    }

    fn check(&self, config: &Value) -> Vec<ConfigProblem> {
        ValidateConfig::problems(config)
    }

    async fn run(&self, call: NodeCall) -> Result<Value, NodeError> {
        let config = ValidateConfig::from_value(&call.config)?;
        Validate::run(self, &config, Some(&call.context))?;
        Ok(json!({ "valid": true }))
    }
}

/// A context for rules evaluated outside a run: `input` null, no nodes, no secrets.
fn standalone_context() -> Option<Context> {
    static WORKFLOW: LazyLock<Option<Arc<Workflow>>> = LazyLock::new(|| {
        let mut registry = Registry::new();
        registry.register("noop", crate::Noop);
        let text = r#"{ "name": "validate", "nodes": [{ "id": "validate", "kind": "noop" }] }"#;
        Workflow::from_str(text, Format::Json, &registry, &Limits::default())
            .ok()
            .map(Arc::new)
    });
    let workflow = WORKFLOW.as_ref()?.clone();
    Some(Context::new(workflow, Value::Null, BTreeMap::new()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_violation_is_listed() {
        let config = ValidateConfig::from_value(&json!({
            "value": { "name": 3, "age": -1, "tags": "x" },
            "schema": {
                "type": "object",
                "required": ["email"],
                "properties": {
                    "name": { "type": "string" },
                    "age": { "minimum": 0 },
                    "tags": { "type": "array" }
                }
            },
            "rules": [
                { "expr": "value.age > 0", "message": "age must be positive" },
                { "expr": "value.name is string" }
            ]
        }))
        .unwrap();
        let violations = Validate::new().violations(&config, None).unwrap();
        let pointers: Vec<&str> = violations.iter().map(|v| v.pointer.as_str()).collect();
        for p in ["", "/name", "/age", "/tags"] {
            assert!(pointers.contains(&p), "{p} missing from {violations:?}");
        }
        assert_eq!(violations.len(), 6, "{violations:?}");
        let err = Validate::new().run(&config, None).unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.message().contains("age must be positive"), "{err}");
        assert!(err.message().contains("rule `value.name is string` is false"), "{err}");
    }

    #[test]
    fn broken_schema_and_rules_are_config_problems() {
        let problems = ValidateConfig::problems(&json!({
            "value": 1,
            "schema": { "type": "strin" },
            "rules": [{ "expr": "value >" }, { "expr": "valeu > 1" }, { "message": "x" }, { "expr": "{{ value }}" }]
        }));
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "schema",
                "rules[0].expr",
                "rules[1].expr",
                "rules[2].expr",
                "rules[3].expr"
            ],
            "{problems:?}"
        );
        assert!(
            ValidateConfig::problems(&json!({ "value": 1 }))[0]
                .message
                .contains("nothing to check")
        );
    }

    #[test]
    fn valid_values_pass() {
        let mut config = ValidateConfig::new(json!({ "n": 2 }));
        config.schema = Some(json!({ "type": "object" }));
        config.rules.push(Rule::new("value.n == 2"));
        assert_eq!(Validate::new().run(&config, None), Ok(()));
    }
}
