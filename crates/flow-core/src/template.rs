//! Templates and expressions (minijinja), compiled once at validation.
//!
//! Every string inside a node's `config` is a template. A string that is exactly one
//! `{{ expr }}` is compiled as an expression so it keeps the value's JSON type; any
//! other string with template syntax renders to a string; a string without template
//! syntax is a literal and costs nothing at run time. Edge `when:` conditions are
//! expressions.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, LazyLock};

use minijinja::{Environment, Expression, UndefinedBehavior};
use serde_json::Value;

use crate::context::Context;
use crate::error::join_path;

/// An error compiling or evaluating a template or expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    place: Option<String>,
    message: String,
}

impl TemplateError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        TemplateError {
            place: None,
            message: message.into(),
        }
    }

    /// The message, for a person (without the place).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where in the document the failing template is written
    /// (`nodes[0].config.url`), when the error comes from rendering one.
    pub fn place(&self) -> Option<&str> {
        self.place.as_deref()
    }

    fn at(mut self, place: &str) -> Self {
        if self.place.is_none() {
            self.place = Some(place.to_owned());
        }
        self
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(place) = &self.place {
            write!(f, "{place}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for TemplateError {}

impl From<minijinja::Error> for TemplateError {
    fn from(err: minijinja::Error) -> Self {
        let mut message = err.kind().to_string();
        if err.kind() == minijinja::ErrorKind::OutOfFuel {
            message.push_str(&format!(
                " (a template may take about {TEMPLATE_FUEL} steps and create about {} MiB)",
                TEMPLATE_FUEL * 64 / (1024 * 1024)
            ));
        }
        if let Some(detail) = err.detail() {
            message.push_str(": ");
            message.push_str(detail);
        }
        if let Some(line) = err.line()
            && line > 1
        {
            message.push_str(&format!(" (template line {line})"));
        }
        TemplateError { place: None, message }
    }
}

/// The work one render (or one expression) may do: about this many steps, or
/// 64 bytes of created data each (minijinja's fuel). Real templates use a small
/// fraction of it; a template that loops for hours or doubles a string until
/// memory runs out fails its node instead.
const TEMPLATE_FUEL: u64 = 2_000_000;

fn configure(env: &mut Environment<'_>) {
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Hostile templates must not loop forever or recurse without bound.
    env.set_recursion_limit(100);
    env.set_fuel(Some(TEMPLATE_FUEL));
}

static EXPRESSIONS: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    configure(&mut env);
    env
});

fn is_global(name: &str) -> bool {
    EXPRESSIONS.globals().any(|(global, _)| global == name)
}

/// A compiled minijinja expression, such as an edge's `when:`.
pub struct Expr {
    source: String,
    compiled: Expression<'static, 'static>,
}

impl Expr {
    /// Compiles `source`; a syntax error names what is wrong.
    pub fn compile(source: &str) -> Result<Expr, TemplateError> {
        let compiled = EXPRESSIONS.compile_expression_owned(source.to_owned())?;
        Ok(Expr {
            source: source.to_owned(),
            compiled,
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates against a run's context.
    pub fn eval(&self, context: &Context) -> Result<Value, TemplateError> {
        let value = self.compiled.eval(context.to_value())?;
        to_json(&value)
    }

    /// Evaluates against a run's context plus extra top-level names (they shadow the context's).
    pub fn eval_with(&self, context: &Context, extra: &[(&str, &Value)]) -> Result<Value, TemplateError> {
        let value = self.compiled.eval(context.to_value_with(extra))?;
        to_json(&value)
    }

    /// Evaluates as a condition: the truthiness rules of Jinja.
    pub fn is_true(&self, context: &Context) -> Result<bool, TemplateError> {
        Ok(self.compiled.eval(context.to_value())?.is_true())
    }

    /// Evaluates as a condition with extra top-level names.
    pub fn is_true_with(&self, context: &Context, extra: &[(&str, &Value)]) -> Result<bool, TemplateError> {
        Ok(self.compiled.eval(context.to_value_with(extra))?.is_true())
    }

    /// The variables the expression reads, such as `nodes.users.output`.
    pub fn references(&self) -> References {
        let mut refs = References::from_names(self.compiled.undeclared_variables(true));
        refs.add_bracketed(&self.source);
        refs
    }
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expr").field(&self.source).finish()
    }
}

fn to_json(value: &minijinja::Value) -> Result<Value, TemplateError> {
    if value.is_undefined() {
        return Ok(Value::Null);
    }
    serde_json::to_value(value).map_err(|e| TemplateError::new(format!("value is not JSON: {e}")))
}

/// What a template or expression reads from the context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// Node ids read through `nodes.<id>`.
    pub nodes: BTreeSet<String>,
    /// Secret names read through `env.<NAME>`.
    pub env: BTreeSet<String>,
    /// Whether the whole `env` is read (`env | items`).
    pub whole_env: bool,
    /// Top-level names other than `input`, `nodes` and `env`.
    pub other: BTreeSet<String>,
}

impl References {
    fn from_names(names: impl IntoIterator<Item = String>) -> References {
        let mut refs = References::default();
        for name in names {
            refs.add(&name);
        }
        refs
    }

    fn add(&mut self, name: &str) {
        let mut parts = name.split('.');
        let top = parts.next().unwrap_or_default();
        let second = parts.next();
        match (top, second) {
            ("input", _) | ("nodes", None) => {}
            ("nodes", Some(id)) => {
                self.nodes.insert(id.to_owned());
            }
            ("env", Some(key)) => {
                self.env.insert(key.to_owned());
            }
            ("env", None) => self.whole_env = true,
            (other, _) if !is_global(other) => {
                self.other.insert(other.to_owned());
            }
            _ => {}
        }
    }

    /// minijinja reports `nodes['my-id']` as a read of `nodes` alone, yet it is the
    /// only way to read an id with a `-`: find such reads in the source.
    fn add_bracketed(&mut self, source: &str) {
        for (at, _) in source.match_indices("nodes[") {
            let before = source[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
                continue;
            }
            let rest = source[at + "nodes[".len()..].trim_start();
            let Some(quote) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') else {
                continue;
            };
            let rest = &rest[1..];
            if let Some(end) = rest.find(quote)
                && rest[end + 1..].trim_start().starts_with(']')
            {
                self.nodes.insert(rest[..end].to_owned());
            }
        }
    }

    fn merge(&mut self, other: References) {
        self.nodes.extend(other.nodes);
        self.env.extend(other.env);
        self.whole_env |= other.whole_env;
        self.other.extend(other.other);
    }
}

/// The string templates of one workflow (those that are not a single expression).
#[derive(Clone)]
pub(crate) struct TemplateSet {
    env: Arc<Environment<'static>>,
}

impl Default for TemplateSet {
    fn default() -> Self {
        let mut env = Environment::new();
        configure(&mut env);
        TemplateSet { env: Arc::new(env) }
    }
}

impl fmt::Debug for TemplateSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemplateSet").finish_non_exhaustive()
    }
}

/// Builds a [`TemplateSet`] while a workflow is compiled.
pub(crate) struct TemplateSetBuilder {
    env: Environment<'static>,
}

impl TemplateSetBuilder {
    pub(crate) fn new() -> Self {
        let mut env = Environment::new();
        configure(&mut env);
        TemplateSetBuilder { env }
    }

    pub(crate) fn finish(self) -> TemplateSet {
        TemplateSet {
            env: Arc::new(self.env),
        }
    }

    /// Compiles a JSON value whose strings are templates. `path` names the value's
    /// place in the document and each string's template (errors say where).
    pub(crate) fn compile_value(
        &mut self,
        value: &Value,
        path: &str,
    ) -> Result<ValueTemplate, Vec<(String, TemplateError)>> {
        let mut errors = Vec::new();
        let mut refs = References::default();
        let part = self.compile_part(value, path, &mut errors, &mut refs);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(match part {
            Part::Literal(_) => ValueTemplate {
                literal: Arc::new(value.clone()),
                part: None,
                references: refs,
            },
            part => ValueTemplate {
                literal: Arc::new(Value::Null),
                part: Some(part),
                references: refs,
            },
        })
    }

    fn compile_part(
        &mut self,
        value: &Value,
        path: &str,
        errors: &mut Vec<(String, TemplateError)>,
        refs: &mut References,
    ) -> Part {
        match value {
            Value::String(s) => match classify(s) {
                Shape::Literal => Part::Literal(value.clone()),
                Shape::Expression(inner) => match Expr::compile(inner) {
                    Ok(expr) => {
                        refs.merge(expr.references());
                        Part::Expr(expr, path.to_owned())
                    }
                    Err(_) => self.compile_text(s, path, errors, refs),
                },
                Shape::Text => self.compile_text(s, path, errors, refs),
            },
            Value::Array(items) => {
                let parts: Vec<Part> = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.compile_part(item, &format!("{path}[{i}]"), errors, refs))
                    .collect();
                if parts.iter().all(|p| matches!(p, Part::Literal(_))) {
                    Part::Literal(value.clone())
                } else {
                    Part::Array(parts)
                }
            }
            Value::Object(map) => {
                let parts: Vec<(String, Part)> = map
                    .iter()
                    .map(|(k, v)| (k.clone(), self.compile_part(v, &join_path(path, k), errors, refs)))
                    .collect();
                if parts.iter().all(|(_, p)| matches!(p, Part::Literal(_))) {
                    Part::Literal(value.clone())
                } else {
                    Part::Object(parts)
                }
            }
            other => Part::Literal(other.clone()),
        }
    }

    fn compile_text(
        &mut self,
        source: &str,
        path: &str,
        errors: &mut Vec<(String, TemplateError)>,
        refs: &mut References,
    ) -> Part {
        match self.env.add_template_owned(path.to_owned(), source.to_owned()) {
            Ok(()) => {
                if let Ok(t) = self.env.get_template(path) {
                    refs.merge(References::from_names(t.undeclared_variables(true)));
                }
                refs.add_bracketed(source);
                Part::Text(path.to_owned())
            }
            Err(e) => {
                errors.push((path.to_owned(), e.into()));
                Part::Literal(Value::Null)
            }
        }
    }
}

enum Shape<'a> {
    Literal,
    Expression(&'a str),
    Text,
}

fn classify(s: &str) -> Shape<'_> {
    if !(s.contains("{{") || s.contains("{%") || s.contains("{#")) {
        return Shape::Literal;
    }
    if let Some(inner) = s.strip_prefix("{{").and_then(|r| r.strip_suffix("}}")) {
        let inner = inner.strip_prefix('-').unwrap_or(inner);
        let inner = inner.strip_suffix('-').unwrap_or(inner);
        if !(inner.contains("{{") || inner.contains("}}") || inner.contains("{%") || inner.contains("{#")) {
            return Shape::Expression(inner);
        }
    }
    Shape::Text
}

enum Part {
    Literal(Value),
    /// A whole-value expression, and its place in the document.
    Expr(Expr, String),
    Text(String),
    Array(Vec<Part>),
    Object(Vec<(String, Part)>),
}

/// A JSON value whose strings are compiled templates: a node's `config`.
pub struct ValueTemplate {
    literal: Arc<Value>,
    part: Option<Part>,
    references: References,
}

impl ValueTemplate {
    /// A value with no templates in it.
    pub fn literal(value: Value) -> ValueTemplate {
        ValueTemplate {
            literal: Arc::new(value),
            part: None,
            references: References::default(),
        }
    }

    /// Whether the value has no template at all (rendering it is free).
    pub fn is_literal(&self) -> bool {
        self.part.is_none()
    }

    /// What the templates read from the context.
    pub fn references(&self) -> &References {
        &self.references
    }

    /// Renders every template against a run's context (of the workflow this
    /// template belongs to).
    pub fn render(&self, context: &Context) -> Result<Arc<Value>, TemplateError> {
        match &self.part {
            None => Ok(self.literal.clone()),
            Some(part) => {
                let root = context.to_value();
                render_part(part, context.workflow().templates(), &root).map(Arc::new)
            }
        }
    }

    /// As [`render`](Self::render), with a `for_each` item bound under `name`
    /// and its position as `index`.
    pub fn render_item(
        &self,
        context: &Context,
        name: &Arc<str>,
        item: &Value,
        index: usize,
    ) -> Result<Arc<Value>, TemplateError> {
        match &self.part {
            None => Ok(self.literal.clone()),
            Some(part) => {
                let root = context.to_value_item(name, item, index);
                render_part(part, context.workflow().templates(), &root).map(Arc::new)
            }
        }
    }

    /// As [`render`](Self::render), with `extra` names bound on top of the
    /// context (a `for_each` item and its `index`).
    pub fn render_with(&self, context: &Context, extra: &[(&str, &Value)]) -> Result<Arc<Value>, TemplateError> {
        match &self.part {
            None => Ok(self.literal.clone()),
            Some(part) => {
                let root = context.to_value_with(extra);
                render_part(part, context.workflow().templates(), &root).map(Arc::new)
            }
        }
    }
}

impl fmt::Debug for ValueTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValueTemplate")
            .field("literal", &self.part.is_none())
            .field("references", &self.references)
            .finish()
    }
}

fn render_part(part: &Part, set: &TemplateSet, root: &minijinja::Value) -> Result<Value, TemplateError> {
    Ok(match part {
        Part::Literal(v) => v.clone(),
        Part::Expr(e, place) => {
            let value = e
                .compiled
                .eval(root.clone())
                .map_err(|err| undefined(err, e.source.trim(), root).at(place))?;
            // Strict like a text template: a missing field must not become `null`.
            if value.is_undefined() {
                return Err(TemplateError::new(format!("`{}` is not defined", e.source.trim())).at(place));
            }
            to_json(&value).map_err(|err| err.at(place))?
        }
        Part::Text(name) => {
            let template = set
                .env
                .get_template(name)
                .map_err(|err| TemplateError::from(err).at(name))?;
            let text = template.render(root.clone()).map_err(|err| {
                let source = template.source();
                let names = template.undeclared_variables(true);
                undefined_in_text(err, source, names, root).at(name)
            })?;
            Value::String(text)
        }
        Part::Array(items) => Value::Array(
            items
                .iter()
                .map(|p| render_part(p, set, root))
                .collect::<Result<_, _>>()?,
        ),
        Part::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, p)| Ok((k.clone(), render_part(p, set, root)?)))
                .collect::<Result<_, TemplateError>>()?,
        ),
    })
}

/// An error of an expression: an undefined value names what is undefined.
fn undefined(err: minijinja::Error, source: &str, root: &minijinja::Value) -> TemplateError {
    if err.kind() != minijinja::ErrorKind::UndefinedError {
        return err.into();
    }
    let names = EXPRESSIONS
        .compile_expression(source)
        .map(|e| e.undeclared_variables(true))
        .unwrap_or_default();
    match first_undefined(names, root) {
        Some(name) => TemplateError::new(format!("`{name}` is not defined")),
        None => TemplateError::new(format!("`{source}` is not defined")),
    }
}

/// An error of a text template: an undefined value names the variable, found
/// where minijinja says the failing expression is, else among the variables
/// the template reads.
fn undefined_in_text(
    err: minijinja::Error,
    source: &str,
    names: std::collections::HashSet<String>,
    root: &minijinja::Value,
) -> TemplateError {
    if err.kind() != minijinja::ErrorKind::UndefinedError {
        return err.into();
    }
    let at = err
        .range()
        .and_then(|r| widen(source, r))
        .map(|s| s.trim().trim_start_matches("{{").trim_end_matches("}}").trim())
        .filter(|s| !s.is_empty() && !s.contains(['{', '}', '%']));
    if let Some(expr) = at {
        // The span may cover a whole expression (`input.a ~ input.b`): name
        // the variable in it that is undefined, when there is one.
        let inner = EXPRESSIONS
            .compile_expression(expr)
            .map(|e| e.undeclared_variables(true))
            .unwrap_or_default();
        let name = first_undefined(inner, root).unwrap_or_else(|| expr.to_owned());
        return TemplateError::new(format!("`{name}` is not defined"));
    }
    match first_undefined(names, root) {
        Some(name) => TemplateError::new(format!("`{name}` is not defined")),
        None => err.into(),
    }
}

/// The span minijinja gives for a failed attribute read may cover only its
/// tail (`.later.output`): widen it over the dotted name it belongs to.
fn widen(source: &str, range: std::ops::Range<usize>) -> Option<&str> {
    let part = |c: char| c.is_alphanumeric() || c == '_' || c == '.';
    source.get(range.clone())?;
    let start = source[..range.start]
        .char_indices()
        .rev()
        .take_while(|(_, c)| part(*c))
        .last()
        .map_or(range.start, |(i, _)| i);
    let end = source[range.end..]
        .char_indices()
        .find(|(_, c)| !part(*c))
        .map_or(source.len(), |(i, _)| range.end + i);
    source.get(start..end)
}

/// Of dotted names (`input.user.id`), the shortest prefix of the first one
/// (in sorted order) that is undefined in `root`: `input.user` when `input`
/// has no `user`. Names whose first part `root` lacks are passed over.
fn first_undefined(names: impl IntoIterator<Item = String>, root: &minijinja::Value) -> Option<String> {
    let mut names: Vec<String> = names.into_iter().collect();
    names.sort_unstable();
    names.into_iter().find_map(|name| {
        let mut value = root.clone();
        let mut end = 0;
        for (i, part) in name.split('.').enumerate() {
            end += part.len() + usize::from(i > 0);
            value = value.get_attr(part).ok()?;
            if value.is_undefined() {
                // A top-level name the context lacks is a template's own
                // variable (a loop's): not ours to judge.
                return (i > 0).then(|| name[..end].to_owned());
            }
        }
        None
    })
}
