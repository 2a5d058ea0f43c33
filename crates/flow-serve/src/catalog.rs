//! What the API and the page show of the runtime's workflows (a folder's
//! files, read by `flow_runtime::Folder`).

use flow_runtime::WorkflowSource;
use serde::Serialize;

/// What `GET /api/v1/workflows` lists of one file.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkflowInfo {
    /// The workflow's name (the file's `name:`; its file name when unreadable).
    pub name: String,
    /// The file, relative to the workflows folder.
    pub file: String,
    /// How many nodes the file lists (also when it is invalid; 0 when it
    /// cannot be read as YAML or JSON at all).
    pub nodes: usize,
    /// The file's own `input:` (what a run gets when its body has none);
    /// `null` when the file is invalid.
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    /// The strategy kind of its `strategy:` (default `parallel`).
    pub strategy: String,
    /// Whether it can be run.
    pub valid: bool,
    /// Every problem of an invalid file, each with its place.
    pub problems: Vec<String>,
}

/// Every workflow of `source`, in name order.
pub fn info(source: &dyn WorkflowSource) -> Vec<WorkflowInfo> {
    source
        .entries()
        .values()
        .map(|e| WorkflowInfo {
            name: e.name.clone(),
            file: e.origin.clone(),
            nodes: e.nodes,
            input: e
                .workflow
                .as_ref()
                .map_or(serde_json::Value::Null, |w| w.input().clone()),
            strategy: e
                .workflow
                .as_ref()
                .and_then(|w| w.strategy().map(|s| s.kind.clone()))
                .unwrap_or_else(|| "parallel".to_owned()),
            valid: e.workflow.is_some(),
            problems: e.problems.clone(),
        })
        .collect()
}
