//! `/api/v1`: workflows, runs, their events, cancel and retry.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use flow_core::{Record, Report, StrategySpec};
use flow_engine::RunStatus;
use flow_engine::journal::{RunFilter, RunRow, now_ms};
use flow_runtime::Submitted;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::app::App;
use crate::problem::Problem;

type Shared = State<Arc<App>>;

/// Longest `?wait=` honoured, in seconds.
const MAX_WAIT_S: f64 = 300.0;
/// Most runs one list page holds.
const MAX_LIMIT: usize = 500;

/// `POST /api/v1/workflows/{name}/runs`: what to run.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Submit {
    /// The run's input (replaces the file's `input:`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: Option<Value>,
    /// A strategy for this run, as a file's `strategy:` section.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub strategy: Option<Value>,
}

/// A run that was started (or found by its idempotency key).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Started {
    pub run_id: String,
    /// `running`, or how it ended when `?wait=` saw it end.
    pub status: String,
    /// The run's resource in this API.
    pub url: String,
    /// The run's page.
    pub page: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SubmitQuery {
    /// Wait up to this many seconds for the run to end; the report is returned
    /// when it does.
    pub wait: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Only this workflow's runs.
    pub workflow: Option<String>,
    /// running, succeeded, failed, cancelled or interrupted.
    pub status: Option<String>,
    /// At most this many runs (default 50, at most 500).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// `true`: leave out child runs (those a `workflow` node started).
    pub top_level: Option<String>,
}

/// A page of runs, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunList {
    #[schema(value_type = Vec<Object>)]
    pub runs: Vec<Value>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

fn started(run_id: &str, status: &str) -> Started {
    Started {
        run_id: run_id.to_owned(),
        status: status.to_owned(),
        url: format!("/api/v1/runs/{run_id}"),
        page: format!("/runs/{run_id}"),
    }
}

/// A body of at most the server's size, as JSON; the rejections as problems.
pub fn json_body(body: Result<Bytes, BytesRejection>) -> Result<Option<Value>, Problem> {
    let bytes = body.map_err(|e| Problem::new(e.status(), "Bad request body", e.body_text()))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Problem::bad_request(format!("the body is not valid JSON: {e}")))
}

/// Every workflow of the folder, with the problems of invalid ones.
#[utoipa::path(get, path = "/api/v1/workflows", responses((status = 200, body = Vec<crate::catalog::WorkflowInfo>)))]
pub async fn workflows(State(app): Shared) -> Response {
    Json(app.workflows()).into_response()
}

/// Reads the workflows folder again (as SIGHUP does); runs under way keep
/// their version.
#[utoipa::path(post, path = "/api/v1/workflows/reload", responses((status = 200, body = Vec<crate::catalog::WorkflowInfo>)))]
pub async fn reload(State(app): Shared) -> Result<Response, Problem> {
    crate::reload(&app).map_err(Problem::internal)?;
    Ok(Json(app.workflows()).into_response())
}

/// Starts a run of workflow `name`. With `Idempotency-Key`, the same key
/// returns the same run.
#[utoipa::path(
    post,
    path = "/api/v1/workflows/{name}/runs",
    params(("name" = String, Path, description = "The workflow's name"), SubmitQuery),
    request_body = Submit,
    responses(
        (status = 201, body = Started, description = "Started (or, with `?wait=`, the report of a run that ended in time)"),
        (status = 400, description = "Not JSON"),
        (status = 404, description = "No such workflow"),
        (status = 409, description = "The workflow file is invalid, or the server is stopping"),
        (status = 422, description = "A body that is not `{input, strategy}`"),
    )
)]
pub async fn submit(
    State(app): Shared,
    Path(name): Path<String>,
    Query(query): Query<SubmitQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let wait = match query.wait.as_deref() {
        None | Some("") => None,
        Some(text) => match text.parse::<f64>() {
            Ok(s) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s.min(MAX_WAIT_S))),
            _ => {
                return Err(Problem::bad_request(format!(
                    "wait: `{text}` is not a number of seconds"
                )));
            }
        },
    };
    let workflow = app.runtime.workflow(&name)?;
    if app.stopping().is_cancelled() {
        return Err(Problem::unavailable("the server is stopping: it takes no new runs"));
    }
    let submit: Submit = match json_body(body)? {
        None => Submit::default(),
        Some(value @ Value::Object(_)) => {
            serde_json::from_value(value).map_err(|e| Problem::unprocessable(format!("body: {e}")))?
        }
        Some(other) => {
            return Err(Problem::unprocessable(format!(
                "the body must be a JSON object like {{\"input\": {{...}}}}, not {}",
                kind_of(&other)
            )));
        }
    };
    let strategy = match submit.strategy {
        None => None,
        Some(strategy) => Some(
            serde_json::from_value::<StrategySpec>(strategy)
                .map_err(|e| Problem::unprocessable(format!("strategy: {e}")))?,
        ),
    };
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(key) => {
            let key = key
                .to_str()
                .map_err(|_| Problem::bad_request("Idempotency-Key: not visible ASCII"))?;
            if key.is_empty() || key.len() > 255 {
                return Err(Problem::bad_request("Idempotency-Key: 1 to 255 characters"));
            }
            Some(key.to_owned())
        }
    };
    let submitted = app
        .runtime
        .submit(
            &workflow,
            flow_runtime::Submit {
                input: submit.input,
                strategy,
                idempotency_key,
            },
        )
        .await?;
    let (run_id, live) = match submitted {
        Submitted::Started { run_id, live } => (run_id, live),
        Submitted::Replayed { run_id: existing } => {
            // As the first answer was: with `?wait`, the report once the run
            // has ended (at once when it already has), else where it is.
            let mut body = serde_json::to_value(started(&existing, "running")).unwrap_or(Value::Null);
            let waited = match (wait, app.live(&existing)) {
                (Some(wait), Some(live)) => wait_for_end(&app, &live, wait).await,
                _ => None,
            };
            if let Some(report) = waited {
                body = report;
            } else if let Ok((row, report, _)) = app.report(&existing).await {
                let status = row.status_now(now_ms());
                body = match wait {
                    Some(_) if status.is_finished() => report_with_url(&report),
                    _ => serde_json::to_value(started(&existing, status.as_str())).unwrap_or(Value::Null),
                };
            }
            let mut response = (StatusCode::CREATED, Json(body)).into_response();
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            return Ok(response);
        }
    };
    let mut body = serde_json::to_value(started(&run_id, "running")).unwrap_or(Value::Null);
    if let Some(wait) = wait
        && let Some(report) = wait_for_end(&app, &live, wait).await
    {
        body = report;
    }
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/runs/{run_id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// The report of a live run once it ends within `wait`, with its URLs.
async fn wait_for_end(app: &App, live: &crate::app::Live, wait: Duration) -> Option<Value> {
    // A stopping server answers at once: a waiting request must not hold
    // it past its grace period.
    let report = live.wait(wait, app.stopping()).await?;
    Some(report_with_url(&report))
}

fn report_with_url(report: &Report) -> Value {
    let mut value = serde_json::to_value(report).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("url".into(), json!(format!("/api/v1/runs/{}", report.run_id)));
        map.insert("page".into(), json!(format!("/runs/{}", report.run_id)));
    }
    value
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A run's row as lists show it.
pub fn row_json(row: &RunRow, now: i64) -> Value {
    let duration = row
        .duration_ms
        .unwrap_or_else(|| (row.finished_at_ms.unwrap_or(now) - row.started_at_ms).max(0) as f64);
    json!({
        "run_id": row.run_id,
        "workflow": row.workflow,
        "status": row.status_now(now),
        "started_at": crate::rfc3339(row.started_at_ms),
        "finished_at": row.finished_at_ms.map(crate::rfc3339),
        "duration_ms": flow_engine::core::round_ms(duration),
        "nodes": row.counts.clone().unwrap_or(Value::Null),
        "url": format!("/api/v1/runs/{}", row.run_id),
        "page": format!("/runs/{}", row.run_id),
        "parent": row.parent,
    })
}

const STATUSES: [&str; 6] = ["running", "waiting", "succeeded", "failed", "cancelled", "interrupted"];

/// Runs newest first, by workflow and status, a page at a time.
pub async fn list_runs(app: &App, query: &ListQuery) -> Result<RunList, Problem> {
    let limit = match query.limit.as_deref() {
        None | Some("") => 50,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(Problem::bad_request(format!(
                    "limit: `{text}` is not a whole number from 1 to {MAX_LIMIT}"
                )));
            }
        },
    };
    let status = match query.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match s.parse::<RunStatus>() {
            Ok(status) => Some(status),
            Err(_) => {
                return Err(Problem::bad_request(format!(
                    "status: `{s}` is not one of {}",
                    STATUSES.join(", ")
                )));
            }
        },
    };
    let before = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(cursor) => Some(
            cursor
                .split_once('_')
                .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_owned())))
                .ok_or_else(|| Problem::bad_request(format!("cursor: `{cursor}` is not a cursor this server gave")))?,
        ),
    };
    let filter = RunFilter {
        workflow: query.workflow.clone().filter(|w| !w.is_empty()),
        status,
        limit: limit + 1,
        before,
        top_level: match query.top_level.as_deref() {
            None | Some("" | "false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(Problem::bad_request(format!(
                    "top_level: `{other}` is not `true` or `false`"
                )));
            }
        },
    };
    let mut rows: Vec<RunRow> = app.runtime.list(&filter).await?;
    let now = now_ms();
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|r| format!("{}_{}", r.started_at_ms, r.run_id))
    } else {
        None
    };
    Ok(RunList {
        runs: rows.iter().map(|r| row_json(r, now)).collect(),
        next_cursor,
    })
}

/// Runs, newest first.
#[utoipa::path(get, path = "/api/v1/runs", params(ListQuery), responses((status = 200, body = RunList), (status = 400)))]
pub async fn runs(State(app): Shared, Query(query): Query<ListQuery>) -> Result<Response, Problem> {
    Ok(Json(list_runs(&app, &query).await?).into_response())
}

/// A run's report (the shape of `flow run --report`); for a run under way,
/// nodes not settled yet are `pending` or `running`.
#[utoipa::path(get, path = "/api/v1/runs/{id}", params(("id" = String, Path)), responses((status = 200, body = Object), (status = 404)))]
pub async fn run(State(app): Shared, Path(id): Path<String>) -> Result<Response, Problem> {
    let (_, report, _) = app.report(&id).await?;
    Ok(Json(report).into_response())
}

/// The run as a Gantt chart (SVG).
#[utoipa::path(get, path = "/api/v1/runs/{id}/timeline.svg", params(("id" = String, Path)), responses((status = 200, content_type = "image/svg+xml"), (status = 404)))]
pub async fn timeline(State(app): Shared, Path(id): Path<String>) -> Result<Response, Problem> {
    let (_, report, _) = app.report(&id).await?;
    let svg = flow_view::timeline::render(&report);
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        svg,
    )
        .into_response())
}

/// Cancels a run this server is driving.
#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", params(("id" = String, Path)), responses((status = 202, body = Started), (status = 404), (status = 409)))]
pub async fn cancel(State(app): Shared, Path(id): Path<String>) -> Result<Response, Problem> {
    app.runtime.cancel(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(started(&id, "cancelling"))).into_response())
}

/// Runs a failed or cancelled run's failed nodes and items again (as `flow
/// resume --retry-failed`); continues an interrupted one.
#[utoipa::path(post, path = "/api/v1/runs/{id}/retry", params(("id" = String, Path)), responses((status = 202, body = Started), (status = 404), (status = 409)))]
pub async fn retry(State(app): Shared, Path(id): Path<String>) -> Result<Response, Problem> {
    app.runtime.retry(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(started(&id, "running"))).into_response())
}

/// A signal that was recorded for a run.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignalSent {
    pub run_id: String,
    /// The signal's name.
    pub signal: String,
    /// Its number among the run's signals (they are taken oldest first).
    pub id: u64,
}

/// Sends signal `name` to run `id`: the JSON body is its payload (an empty
/// body sends `null`). Kept until one of the run's `signal` nodes takes it.
#[utoipa::path(
    post,
    path = "/api/v1/runs/{id}/signals/{name}",
    params(("id" = String, Path), ("name" = String, Path, description = "The signal's name")),
    request_body = Object,
    responses(
        (status = 202, body = SignalSent, description = "Recorded"),
        (status = 404, description = "No such run"),
        (status = 409, description = "The run has ended"),
        (status = 422, description = "The payload does not match the waiting node's schema, or a bad name"),
    )
)]
pub async fn signal(
    State(app): Shared,
    Path((id, name)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let payload = json_body(body)?.unwrap_or(Value::Null);
    let number = app.runtime.signal(&id, &name, &payload).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(SignalSent {
            run_id: id,
            signal: name,
            id: number,
        }),
    )
        .into_response())
}

/// Every record of a run as a server-sent event (`id:` its sequence number,
/// `event:` its kind, `data:` its JSON): the history first, then live;
/// `Last-Event-ID` resumes after that id; the stream ends after the run's end.
#[utoipa::path(get, path = "/api/v1/runs/{id}/events", params(("id" = String, Path)), responses((status = 200, content_type = "text/event-stream"), (status = 404)))]
pub async fn events(State(app): Shared, Path(id): Path<String>, headers: HeaderMap) -> Result<Response, Problem> {
    let after = match headers.get("last-event-id") {
        None => 0,
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .ok_or_else(|| Problem::bad_request("Last-Event-ID: not a record number"))?,
    };
    // One permit per open stream, held until the stream is dropped.
    let Ok(permit) = app.streams.clone().try_acquire_owned() else {
        return Err(
            Problem::unavailable("too many event streams are open on this server; try again shortly").retry_after(5),
        );
    };
    let mut rx = app.runtime.subscribe(&id, after).await?;
    let stream = futures::stream::poll_fn(move |cx| {
        let _held = &permit;
        rx.poll_recv(cx)
            .map(|next| next.map(|(seq, record)| Ok::<Event, Infallible>(event(seq, &record))))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

fn event(seq: u64, record: &Record) -> Event {
    let data = serde_json::to_string(record).unwrap_or_else(|_| "{}".to_owned());
    Event::default().id(seq.to_string()).event(record.kind()).data(data)
}

/// `GET /healthz`: always open; `503` with the reason while the journal
/// cannot be written.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "ok"), (status = 503, description = "the journal cannot be written now (the reason)")))]
pub async fn healthz(State(app): Shared) -> Response {
    match app.writer().unavailable() {
        None => Json(json!({ "status": "ok", "runs_in_flight": app.in_flight() })).into_response(),
        // The journal cannot be written: runs wait, submits fail. Say so.
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "reason": reason, "runs_in_flight": app.in_flight() })),
        )
            .into_response(),
    }
}

/// Prometheus text: runs started and finished, in flight, attempt durations,
/// limit waits.
#[utoipa::path(get, path = "/metrics", responses((status = 200, content_type = "text/plain")))]
pub async fn metrics_text(State(app): Shared) -> Response {
    metrics::gauge!("flow_runs_in_flight").set(app.in_flight() as f64);
    // Parked runs are held by no process: the journal counts them.
    if let Ok(waiting) = app.journal().count(RunStatus::Waiting).await {
        metrics::gauge!("flow_runs_waiting").set(waiting as f64);
    }
    let text = app.metrics.as_ref().map(|m| m.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "flow serve",
        description = "Runs submitted over HTTP, watched live, kept in the journal."
    ),
    paths(
        workflows,
        reload,
        submit,
        runs,
        run,
        timeline,
        cancel,
        retry,
        signal,
        events,
        healthz,
        metrics_text
    ),
    components(schemas(Submit, Started, SignalSent, RunList, crate::catalog::WorkflowInfo))
)]
pub struct ApiDoc;

/// `GET /openapi.json`.
pub async fn openapi() -> Response {
    use utoipa::OpenApi;
    Json(ApiDoc::openapi()).into_response()
}

/// Unknown API paths.
pub async fn unknown() -> Problem {
    Problem::not_found("no such API path; see /openapi.json")
}
