//! A run's context: what templates and expressions read.
//!
//! `input`, `nodes.<id>.output`, `nodes.<id>.status`, `nodes.<id>.error` and
//! `env.<NAME>` (declared secrets only). One context per run, shared by reference:
//! recording a node's result writes one slot, and reading `nodes.x` is an index
//! lookup, so no node's cost grows with the size of the workflow.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use minijinja::value::{Enumerator, Object, ObjectRepr};
use serde_json::Value;

use crate::report::NodeStatus;
use crate::workflow::Workflow;

/// A node's settled result, as templates see it.
#[derive(Debug)]
pub struct Settled {
    /// How the node ended.
    pub status: NodeStatus,
    /// Its output (`null` when it produced none).
    pub output: Value,
    /// Its error message, if it failed.
    pub error: Option<String>,
    view: OnceLock<minijinja::Value>,
}

impl Settled {
    /// A settled result.
    pub fn new(status: NodeStatus, output: Value, error: Option<String>) -> Self {
        Settled {
            status,
            output,
            error,
            view: OnceLock::new(),
        }
    }

    fn output_value(&self) -> minijinja::Value {
        self.view.get_or_init(|| to_view(&self.output)).clone()
    }
}

struct Inner {
    workflow: Arc<Workflow>,
    input: Value,
    /// Built on the first template that reads `input`: a run whose templates never
    /// do (or a large input read only by a `for_each` path) pays nothing for it.
    input_view: OnceLock<minijinja::Value>,
    env: minijinja::Value,
    secrets: BTreeMap<String, String>,
    slots: Box<[OnceLock<Settled>]>,
    run_id: Arc<str>,
}

/// The shared, growing context of one run. Cloning is cheap (one `Arc`).
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("workflow", &self.inner.workflow.name())
            .field("input", &self.inner.input)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A fresh context for one run of `workflow`, with nothing settled. `secrets`
    /// are the values that `env.NAME` reads; pass only the names the workflow
    /// declares. Only a [`ContextWriter`] records results.
    pub fn new(workflow: Arc<Workflow>, input: Value, secrets: BTreeMap<String, String>) -> Self {
        Context::for_run(workflow, input, secrets, Arc::from(""))
    }

    /// As [`Context::new`], for run `run_id` (which [`crate::NodeCall::run_id`]
    /// and its idempotency key read).
    pub fn for_run(workflow: Arc<Workflow>, input: Value, secrets: BTreeMap<String, String>, run_id: Arc<str>) -> Self {
        let slots = (0..workflow.nodes().len()).map(|_| OnceLock::new()).collect();
        Context {
            inner: Arc::new(Inner {
                workflow,
                input,
                input_view: OnceLock::new(),
                env: to_view(&secrets),
                secrets,
                slots,
                run_id,
            }),
        }
    }

    /// The run's id (empty for a context made outside a run).
    pub fn run_id(&self) -> &str {
        &self.inner.run_id
    }

    /// The workflow this context belongs to.
    pub fn workflow(&self) -> &Arc<Workflow> {
        &self.inner.workflow
    }

    /// The run's input.
    pub fn input(&self) -> &Value {
        &self.inner.input
    }

    /// Node `index`'s result, once it has settled.
    pub fn settled(&self, index: usize) -> Option<&Settled> {
        self.inner.slots.get(index).and_then(OnceLock::get)
    }

    /// A settled node's result, by id.
    pub fn settled_by_id(&self, id: &str) -> Option<&Settled> {
        self.inner.workflow.index_of(id).and_then(|i| self.settled(i))
    }

    /// The value of the declared secret `name` (`env.NAME` in templates), when
    /// the environment had it at the start of the run.
    pub fn secret(&self, name: &str) -> Option<&str> {
        self.inner.secrets.get(name).map(String::as_str)
    }

    /// The context as a template value.
    pub(crate) fn to_value(&self) -> minijinja::Value {
        minijinja::Value::from_object(Root {
            inner: self.inner.clone(),
            extra: Extra::None,
        })
    }

    /// The context with a `for_each` item bound under `name`, and `index`: no
    /// allocation but the root object (this runs once per item).
    pub(crate) fn to_value_item(&self, name: &Arc<str>, item: &Value, index: usize) -> minijinja::Value {
        minijinja::Value::from_object(Root {
            inner: self.inner.clone(),
            extra: Extra::Item {
                name: name.clone(),
                item: to_view(item),
                index,
            },
        })
    }

    pub(crate) fn to_value_with(&self, extra: &[(&str, &Value)]) -> minijinja::Value {
        minijinja::Value::from_object(Root {
            inner: self.inner.clone(),
            extra: Extra::Named(extra.iter().map(|(k, v)| ((*k).to_owned(), to_view(v))).collect()),
        })
    }
}

/// The one handle that records results in a run's [`Context`]: the engine's
/// driver holds it, and node kinds, which get the [`Context`], never see it.
#[derive(Debug)]
pub struct ContextWriter {
    context: Context,
}

impl ContextWriter {
    /// A fresh context for one run of `workflow` (see [`Context::new`]), and the
    /// right to record its results.
    pub fn new(workflow: Arc<Workflow>, input: Value, secrets: BTreeMap<String, String>) -> Self {
        ContextWriter {
            context: Context::new(workflow, input, secrets),
        }
    }

    /// As [`ContextWriter::new`], for run `run_id`.
    pub fn for_run(workflow: Arc<Workflow>, input: Value, secrets: BTreeMap<String, String>, run_id: Arc<str>) -> Self {
        ContextWriter {
            context: Context::for_run(workflow, input, secrets, run_id),
        }
    }

    /// The context, to read and to hand out (a cheap clone).
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// Records node `index`'s result. A node settles once: a second call is
    /// refused and returns `false`.
    pub fn record(&self, index: usize, settled: Settled) -> bool {
        match self.context.inner.slots.get(index) {
            Some(slot) => slot.set(settled).is_ok(),
            None => false,
        }
    }

    /// Takes every slot out, in node order, for the report. Moves the results out
    /// without copying; copies only when a clone of this context is still alive
    /// somewhere (a node that kept its call).
    pub fn into_settled(self) -> Box<dyn Iterator<Item = Option<Settled>>> {
        match Arc::try_unwrap(self.context.inner) {
            Ok(inner) => Box::new(inner.slots.into_vec().into_iter().map(OnceLock::into_inner)),
            Err(shared) => {
                let copied: Vec<Option<Settled>> = shared
                    .slots
                    .iter()
                    .map(|slot| {
                        slot.get()
                            .map(|s| Settled::new(s.status, s.output.clone(), s.error.clone()))
                    })
                    .collect();
                Box::new(copied.into_iter())
            }
        }
    }
}

struct Root {
    inner: Arc<Inner>,
    extra: Extra,
}

/// Names bound on top of the context.
enum Extra {
    None,
    Named(Vec<(String, minijinja::Value)>),
    Item {
        name: Arc<str>,
        item: minijinja::Value,
        index: usize,
    },
}

impl Extra {
    fn get(&self, key: &str) -> Option<minijinja::Value> {
        match self {
            Extra::None => None,
            Extra::Named(names) => names.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()),
            Extra::Item { name, item, .. } if **name == *key => Some(item.clone()),
            Extra::Item { index, .. } if key == "index" => Some(minijinja::Value::from(*index)),
            Extra::Item { .. } => None,
        }
    }

    fn names(&self) -> Vec<minijinja::Value> {
        match self {
            Extra::None => Vec::new(),
            Extra::Named(names) => names.iter().map(|(k, _)| minijinja::Value::from(k.as_str())).collect(),
            Extra::Item { name, .. } => vec![minijinja::Value::from(&**name), minijinja::Value::from("index")],
        }
    }
}

impl fmt::Debug for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<context>")
    }
}

impl Object for Root {
    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        let key = key.as_str()?;
        if let Some(v) = self.extra.get(key) {
            return Some(v);
        }
        match key {
            "input" => Some(self.inner.input_view.get_or_init(|| to_view(&self.inner.input)).clone()),
            "env" => Some(self.inner.env.clone()),
            "nodes" => Some(minijinja::Value::from_object(Nodes {
                inner: self.inner.clone(),
            })),
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut keys: Vec<minijinja::Value> = vec!["input".into(), "nodes".into(), "env".into()];
        keys.extend(self.extra.names());
        Enumerator::Values(keys)
    }
}

struct Nodes {
    inner: Arc<Inner>,
}

impl fmt::Debug for Nodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<nodes>")
    }
}

impl Object for Nodes {
    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        let index = self.inner.workflow.index_of(key.as_str()?)?;
        self.inner.slots[index].get()?;
        Some(minijinja::Value::from_object(NodeView {
            inner: self.inner.clone(),
            index,
        }))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let keys = self
            .inner
            .workflow
            .nodes()
            .iter()
            .enumerate()
            .filter(|(i, _)| self.inner.slots[*i].get().is_some())
            .map(|(_, n)| minijinja::Value::from(n.id()))
            .collect();
        Enumerator::Values(keys)
    }
}

struct NodeView {
    inner: Arc<Inner>,
    index: usize,
}

impl fmt::Debug for NodeView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<node>")
    }
}

impl Object for NodeView {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        let settled = self.inner.slots[self.index].get()?;
        match key.as_str()? {
            "output" => Some(settled.output_value()),
            "status" => Some(minijinja::Value::from(settled.status.as_str())),
            "error" => Some(match &settled.error {
                Some(e) => minijinja::Value::from(e.as_str()),
                None => minijinja::Value::from(()),
            }),
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&["output", "status", "error"])
    }
}

/// A JSON value as a template value.
pub(crate) fn to_view<T: serde::Serialize>(value: T) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(value))
}
