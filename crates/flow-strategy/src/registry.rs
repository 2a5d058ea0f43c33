//! Strategies by name: what a workflow file's `strategy: { kind, ...options }`
//! picks. The four built-in kinds are registered like any other.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::{Strategy, StrategyConfig, StrategyKind};

/// The options of a `strategy:` block: every field but `kind`.
pub type Options = Map<String, Value>;

/// One problem in a `strategy:` block's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionProblem {
    /// The option's path inside the block (`gap_ms`, `per_second`), or empty
    /// for the block as a whole.
    pub option: String,
    /// What is wrong and what would be accepted, for a person.
    pub message: String,
}

impl OptionProblem {
    /// A problem with `option` (a path inside the `strategy:` block).
    pub fn new(option: impl Into<String>, message: impl Into<String>) -> Self {
        OptionProblem {
            option: option.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for OptionProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.option.is_empty() {
            write!(f, "strategy: {}", self.message)
        } else {
            write!(f, "strategy.{}: {}", self.option, self.message)
        }
    }
}

/// Builds a strategy of one kind from its options.
///
/// Called once when a workflow is validated (the strategy is then dropped: a
/// problem is a validation error with its place) and once at the start of
/// every run, so each run gets a fresh strategy (its own quota, say). It must
/// be quick and give the same answer for the same options. Any
/// `Fn(&Options) -> Result<Arc<dyn Strategy>, Vec<OptionProblem>>` is a
/// factory.
pub trait StrategyFactory: Send + Sync + 'static {
    /// The strategy these options describe, or every problem with them.
    fn build(&self, options: &Options) -> Result<Arc<dyn Strategy>, Vec<OptionProblem>>;
}

impl<F> StrategyFactory for F
where
    F: Fn(&Options) -> Result<Arc<dyn Strategy>, Vec<OptionProblem>> + Send + Sync + 'static,
{
    fn build(&self, options: &Options) -> Result<Arc<dyn Strategy>, Vec<OptionProblem>> {
        self(options)
    }
}

/// The strategy kinds a workflow file may name, by name.
///
/// ```
/// use std::sync::Arc;
/// use flow_strategy::{OptionProblem, Options, Parallel, Strategy, StrategyRegistry};
/// use serde_json::json;
///
/// let mut strategies = StrategyRegistry::builtin();
/// // `pairs`: two at a time; takes no options.
/// strategies.register("pairs", |options: &Options| -> Result<Arc<dyn Strategy>, Vec<OptionProblem>> {
///     if let Some(name) = options.keys().next() {
///         return Err(vec![OptionProblem::new(name.as_str(), "unknown option; `pairs` takes none")]);
///     }
///     Ok(Arc::new(Parallel::new().with_max_concurrency(2.try_into().unwrap())))
/// });
///
/// let options = json!({ "per_second": 5 }).as_object().cloned().unwrap_or_default();
/// assert_eq!(strategies.build("rate-limited", &options).map(|s| s.rate().is_some()), Ok(true));
/// let problems = strategies.build("parallel", &options).unwrap_err();
/// assert_eq!(problems[0].to_string(), "strategy.per_second: only applies to rate-limited");
/// assert!(strategies.build("pairs", &Options::new()).is_ok());
/// assert!(strategies.build("nope", &Options::new()).is_err());
/// ```
#[derive(Clone, Default)]
pub struct StrategyRegistry {
    factories: HashMap<String, Arc<dyn StrategyFactory>>,
}

impl StrategyRegistry {
    /// A registry with no kind at all.
    pub fn new() -> Self {
        StrategyRegistry::default()
    }

    /// A registry with the four built-in kinds: `sequential`, `parallel`,
    /// `all-settled` and `rate-limited`.
    pub fn builtin() -> Self {
        let mut registry = StrategyRegistry::new();
        for kind in StrategyKind::ALL {
            registry.register(kind.as_str(), Builtin(kind));
        }
        registry
    }

    /// Adds (or replaces) the kind called `name`.
    pub fn register(&mut self, name: impl Into<String>, factory: impl StrategyFactory) -> &mut Self {
        self.factories.insert(name.into(), Arc::new(factory));
        self
    }

    /// The factory of the kind called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn StrategyFactory>> {
        self.factories.get(name)
    }

    /// Builds a strategy of kind `name` from `options`.
    ///
    /// # Errors
    ///
    /// Every problem with the options, or one problem at `kind` when no kind
    /// is called `name`.
    pub fn build(&self, name: &str, options: &Options) -> Result<Arc<dyn Strategy>, Vec<OptionProblem>> {
        match self.factories.get(name) {
            Some(factory) => factory.build(options),
            None => Err(vec![OptionProblem::new(
                "kind",
                format!(
                    "unknown strategy kind `{name}`; known kinds: {}",
                    self.names().join(", ")
                ),
            )]),
        }
    }

    /// The names of every registered kind, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.factories.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

impl fmt::Debug for StrategyRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StrategyRegistry")
            .field("kinds", &self.names())
            .finish()
    }
}

/// A built-in kind: its options are those of [`StrategyConfig`].
struct Builtin(StrategyKind);

impl StrategyFactory for Builtin {
    fn build(&self, options: &Options) -> Result<Arc<dyn Strategy>, Vec<OptionProblem>> {
        let config = StrategyConfig::from_options(self.0, options)?;
        config.build().map_err(|e| {
            let option = e.field().trim_start_matches("strategy.").to_owned();
            let message = match &e {
                crate::Error::InvalidOption { reason, .. } => reason.to_string(),
                other => other.to_string(),
            };
            vec![OptionProblem { option, message }]
        })
    }
}

impl StrategyConfig {
    /// The config of a built-in `kind` from a `strategy:` block's options.
    ///
    /// # Errors
    ///
    /// Every option that is unknown or of the wrong type, and every value out
    /// of range for the kind.
    pub fn from_options(kind: StrategyKind, options: &Options) -> Result<StrategyConfig, Vec<OptionProblem>> {
        const KNOWN: [&str; 4] = ["max_concurrency", "per_second", "burst", "fail_fast"];
        let mut problems = Vec::new();
        let mut config = StrategyConfig::new(kind);
        for (name, value) in options {
            let mut wrong = |what: &str| {
                problems.push(OptionProblem::new(
                    name.as_str(),
                    format!("must be {what}, not {}", type_name(value)),
                ));
            };
            match name.as_str() {
                "max_concurrency" => match value.as_u64() {
                    Some(n) => config.max_concurrency = Some(usize::try_from(n).unwrap_or(usize::MAX)),
                    None => wrong("a whole number"),
                },
                "per_second" => match value.as_f64() {
                    Some(r) => config.per_second = Some(r),
                    None => wrong("a number"),
                },
                "burst" => match value.as_u64().map(u32::try_from) {
                    Some(Ok(n)) => config.burst = Some(n),
                    Some(Err(_)) => problems.push(OptionProblem::new("burst", "is too large")),
                    None => wrong("a whole number"),
                },
                "fail_fast" => match value.as_bool() {
                    Some(b) => config.fail_fast = Some(b),
                    None => wrong("true or false"),
                },
                other => {
                    let mut known = KNOWN.to_vec();
                    known.sort_unstable();
                    let hint = known
                        .iter()
                        .map(|k| (strsim::jaro_winkler(other, k), *k))
                        .filter(|(score, _)| *score > 0.8)
                        .max_by(|a, b| a.0.total_cmp(&b.0))
                        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
                        .unwrap_or_default();
                    problems.push(OptionProblem::new(
                        other,
                        format!(
                            "unknown option{hint}; the built-in strategies take {}",
                            known.join(", ")
                        ),
                    ));
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        problems.extend(
            config
                .problems()
                .into_iter()
                .map(|p| OptionProblem::new(p.field.trim_start_matches("strategy."), p.message)),
        );
        if problems.is_empty() { Ok(config) } else { Err(problems) }
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a fraction",
        Value::Number(n) if n.as_i64().is_some_and(|i| i < 0) => "a negative number",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
