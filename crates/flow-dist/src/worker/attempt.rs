//! Running one claimed task: its attempt under the run's context, its outcome.

use std::panic::AssertUnwindSafe;

use flow_core::{NodeCall, NodeError};
use futures::FutureExt;
use serde_json::Value;

use super::*;

/// Runs one task and writes its outcome; returns the task's id.
pub(super) async fn execute(shared: Arc<Shared>, task: Claimed) -> String {
    let known = shared
        .runs
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&task.run_id)
        .cloned();
    let (result, secrets) = match known {
        None => (
            Err(NodeError::new(format!(
                "worker {}: run {} could not be read from the journal",
                shared.id, task.run_id
            ))),
            Vec::new(),
        ),
        Some(known) => {
            let (context, secrets) = {
                let known = known.lock().unwrap_or_else(PoisonError::into_inner);
                (known.context.context().clone(), known.secrets.clone())
            };
            (attempt(&shared, &task, context, &secrets).await, secrets)
        }
    };
    let outcome = crate::queue::encode(&result, &secrets);
    let (ack, written) = tokio::sync::oneshot::channel();
    if shared.outcomes.send((task.id.clone(), outcome, ack)).is_ok() {
        let _ = written.await;
    }
    task.id
}

async fn attempt(
    shared: &Shared,
    task: &Claimed,
    context: flow_core::Context,
    secrets: &Secrets,
) -> Result<Value, NodeError> {
    let Some(kind) = shared.engine.registry().get(&task.kind) else {
        return Err(NodeError::permanent(format!(
            "worker {}: no node kind `{}` here",
            shared.id, task.kind
        )));
    };
    let config: Value = serde_json::from_str(&task.config)
        .map_err(|e| NodeError::permanent(format!("the task's config cannot be read: {e}")))?;
    let mut call = NodeCall::new(
        Arc::from(task.node.as_str()),
        Arc::new(secrets::unmask(&config, secrets)),
        context,
    );
    call.attempt = task.attempt;
    call.item = task.item;
    let work = AssertUnwindSafe(kind.run(call)).catch_unwind();
    let outcome = match task.timeout {
        // The coordinator gives up at the timeout and cancels; this is in case
        // its cancellation does not come.
        Some(limit) => match tokio::time::timeout(limit + Duration::from_secs(1), work).await {
            Ok(outcome) => outcome,
            Err(_) => return Err(NodeError::new(format!("timed out after {} ms", limit.as_millis()))),
        },
        None => work.await,
    };
    match outcome {
        Ok(result) => result,
        Err(panic) => Err(NodeError::permanent(format!(
            "panicked: {}",
            flow_core::panic_message(&*panic)
        ))),
    }
}
