//! The runs a worker knows: each one's workflow, compiled once from the
//! document it started with, and the nodes settled since.

use super::*;

/// Brings the runs of `claimed` up to date: their workflow (compiled once from
/// the document the run started with) and the nodes settled since. A task is
/// queued only after its upstream nodes' results are durable, so what it may
/// read is there now.
pub(super) async fn refresh(shared: &Shared, claimed: &[Claimed]) {
    let mut seen: Vec<&str> = Vec::new();
    for task in claimed {
        if seen.contains(&task.run_id.as_str()) {
            continue;
        }
        seen.push(&task.run_id);
        if let Err(e) = refresh_run(shared, &task.run_id).await {
            tracing::warn!(run_id = %task.run_id, error = %e, "reading the run from the journal failed");
        }
    }
}

async fn refresh_run(shared: &Shared, run_id: &str) -> Result<()> {
    let cached = shared
        .runs
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(run_id)
        .cloned();
    // One read either way: a run seen before catches up from its last record;
    // a new one reads them all, its workflow from the first.
    let (known, records) = match cached {
        Some(known) => {
            let after = known.lock().unwrap_or_else(PoisonError::into_inner).seq;
            let records = shared.journal.records_after(run_id, after).await.map_err(journal)?;
            (known, records)
        }
        None => {
            let mut records = shared
                .journal
                .records_after(run_id, 0)
                .await
                .map_err(journal)?
                .into_iter();
            let known = Arc::new(Mutex::new(new_run(shared, run_id, records.next())?));
            let mut runs = shared.runs.lock().unwrap_or_else(PoisonError::into_inner);
            if runs.len() >= CACHED_RUNS {
                runs.clear();
            }
            runs.insert(run_id.to_owned(), known.clone());
            (known, records.collect())
        }
    };
    let mut known = known.lock().unwrap_or_else(PoisonError::into_inner);
    for (seq, record) in records {
        if let Record::NodeSettled { node, report } = record
            && let Some(index) = known.workflow.index_of(&node)
        {
            known
                .context
                .record(index, Settled::new(report.status, report.output, report.error));
        }
        known.seq = known.seq.max(seq);
    }
    Ok(())
}

fn journal(e: flow_journal::Error) -> Error {
    Error::Storage(e.to_string())
}

/// A run the worker has not seen: its workflow compiled from its first record.
fn new_run(shared: &Shared, run_id: &str, first: Option<(u64, Record)>) -> Result<KnownRun> {
    let Some((_, Record::RunStarted { document, input, .. })) = first else {
        return Err(Error::Storage(format!(
            "run {run_id} is not in the journal, or its first record is not run_started"
        )));
    };
    let workflow = Arc::new(
        shared
            .engine
            .compile_stored(&document)
            .map_err(|e| Error::Storage(format!("run {run_id}: {e} (on this worker)")))?,
    );
    let secrets = secrets::of_env(workflow.secrets());
    let context = ContextWriter::for_run(
        workflow.clone(),
        input,
        secrets.iter().cloned().collect(),
        Arc::from(run_id),
    );
    Ok(KnownRun {
        workflow,
        context,
        secrets,
        seq: 1,
    })
}
