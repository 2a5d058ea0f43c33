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
    let known = shared
        .runs
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(run_id)
        .cloned();
    let known = match known {
        Some(known) => known,
        None => {
            let loaded = Arc::new(Mutex::new(load_run(shared, run_id).await?));
            let mut runs = shared.runs.lock().unwrap_or_else(PoisonError::into_inner);
            if runs.len() >= CACHED_RUNS {
                runs.clear();
            }
            runs.insert(run_id.to_owned(), loaded.clone());
            loaded
        }
    };
    let after = known.lock().unwrap_or_else(PoisonError::into_inner).seq;
    let rows = shared
        .db
        .query(
            "SELECT seq, data FROM flow_records WHERE run_id = $1 AND seq > $2 AND kind = 'node_settled' ORDER BY seq",
            &[&run_id, &after],
        )
        .await
        .map_err(storage)?;
    let mut known = known.lock().unwrap_or_else(PoisonError::into_inner);
    for row in rows {
        let seq: i64 = row.get(0);
        let data: &str = row.get(1);
        if let Ok(Record::NodeSettled { node, report }) = serde_json::from_str::<Record>(data)
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

async fn load_run(shared: &Shared, run_id: &str) -> Result<KnownRun> {
    let row = shared
        .db
        .query_opt(
            "SELECT data FROM flow_records WHERE run_id = $1 AND seq = 1",
            &[&run_id],
        )
        .await
        .map_err(storage)?
        .ok_or_else(|| Error::Storage(format!("run {run_id} is not in the journal")))?;
    let data: &str = row.get(0);
    let Ok(Record::RunStarted { document, input, .. }) = serde_json::from_str::<Record>(data) else {
        return Err(Error::Storage(format!(
            "run {run_id}: its first record is not run_started"
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
