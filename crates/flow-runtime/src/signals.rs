//! Signals sent to runs: checked (the run exists and goes on; the payload
//! fits the schema of the `signal` nodes that take the name), written to the
//! journal, where the run's owner takes them, and the bell rung for a run
//! this process drives.

use serde_json::Value;

use crate::{Error, Result, Runs, Runtime};

/// The longest signal name.
const MAX_NAME: usize = 200;

impl Runs {
    /// Sends signal `name` with `payload` to run `run_id`: it is kept in the
    /// journal until one of the run's `signal` nodes takes it (signals of one
    /// name are taken oldest first, each by one node). Returns its number.
    ///
    /// # Errors
    ///
    /// [`Error::RunNotFound`]; [`Error::RunEnded`] for a run that finished;
    /// [`Error::BadInput`] for a name that is empty, too long or holds control
    /// characters; [`Error::SignalRefused`] when the payload does not match
    /// the `schema` of a `signal` node that takes this name.
    pub async fn signal(&self, run_id: &str, name: &str, payload: &Value) -> Result<u64> {
        if name.trim().is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control) {
            return Err(Error::BadInput(format!(
                "signal name `{}`: 1 to {MAX_NAME} characters, no control characters",
                name.escape_debug()
            )));
        }
        let row = self
            .journal()
            .row(run_id)
            .await?
            .ok_or_else(|| Error::RunNotFound(run_id.to_owned()))?;
        if row.status.is_finished() {
            return Err(Error::RunEnded {
                run_id: run_id.to_owned(),
                status: row.status,
            });
        }
        if let Some(flow_engine::core::Record::RunStarted { document, .. }) =
            self.journal().first_record(run_id).await?
        {
            for (node, schema) in schemas(&document, name) {
                flow_nodes::check_signal(schema, payload).map_err(|reason| Error::SignalRefused {
                    name: name.to_owned(),
                    node: node.to_owned(),
                    reason,
                })?;
            }
        }
        Ok(self.journal().send_signal(run_id, name, payload).await?)
    }
}

/// The `schema` of each `signal` node of a workflow document whose `name`
/// is `name` as written (a templated name is known only when its node
/// waits), with the node's id.
fn schemas<'a>(document: &'a Value, name: &str) -> Vec<(&'a str, &'a Value)> {
    let Some(nodes) = document.get("nodes").and_then(Value::as_array) else {
        return Vec::new();
    };
    nodes
        .iter()
        .filter(|node| node.get("kind").and_then(Value::as_str) == Some("signal"))
        .filter_map(|node| {
            let config = node.get("config")?;
            (config.get("name")?.as_str()? == name).then_some(())?;
            Some((node.get("id")?.as_str()?, config.get("schema")?))
        })
        .collect()
}

impl Runtime {
    /// As [`Runs::signal`]; a run this process drives looks at once.
    ///
    /// # Errors
    ///
    /// As [`Runs::signal`].
    pub async fn signal(&self, run_id: &str, name: &str, payload: &Value) -> Result<u64> {
        let id = self.runs().signal(run_id, name, payload).await?;
        match self.live(run_id) {
            Some(live) => live.signals.ring(),
            // Parked, perhaps: the journal made it due; wake it now.
            None => self.due.notify_one(),
        }
        Ok(id)
    }
}
