//! The router: the API (token-checked, errors as problems), the pages, the
//! login form, the assets, `/healthz`, `/openapi.json` and `/metrics`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Form, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::api;
use crate::app::App;
use crate::auth;
use crate::page;
use crate::problem::Problem;

pub fn router(
    app: Arc<App>,
    max_body_bytes: usize,
    allowed_hosts: crate::guard::AllowedHosts,
    stall_timeout: std::time::Duration,
) -> Router {
    let api = Router::new()
        .route("/api/v1/workflows", get(api::workflows))
        .route("/api/v1/workflows/reload", post(api::reload))
        .route("/api/v1/workflows/{name}/runs", post(api::submit))
        .route("/api/v1/runs", get(api::runs))
        .route("/api/v1/runs/{id}", get(api::run))
        .route("/api/v1/runs/{id}/events", get(api::events))
        .route("/api/v1/runs/{id}/timeline.svg", get(api::timeline))
        .route("/api/v1/runs/{id}/cancel", post(api::cancel))
        .route("/api/v1/runs/{id}/retry", post(api::retry))
        .route("/api/v1/runs/{id}/signals/{name}", post(api::signal))
        .route("/api/{*rest}", axum::routing::any(api::unknown))
        // `{*rest}` matches no empty rest: `/api` and `/api/` are unknown API paths too.
        .route("/api", axum::routing::any(api::unknown))
        .route("/api/", axum::routing::any(api::unknown))
        .route("/metrics", get(api::metrics_text))
        .layer(middleware::from_fn_with_state(app.clone(), auth::api))
        .layer(middleware::from_fn(problems));
    let pages = Router::new()
        .route("/", get(runs_page))
        .route("/runs/{id}", get(run_page))
        .route("/workflows", get(workflows_page))
        .route("/workflows/{name}/runs", post(start_form))
        .route("/runs/{id}/signals/{name}", post(signal_form))
        .layer(middleware::from_fn_with_state(app.clone(), auth::page));
    Router::new()
        .merge(api)
        .merge(pages)
        .route("/login", get(login_form).post(login))
        .route("/assets/app.js", get(app_js))
        .route("/assets/style.css", get(style_css))
        .route("/healthz", get(api::healthz))
        .route("/openapi.json", get(api::openapi))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        // A body that stops coming fails its request (each part resets the clock).
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(stall_timeout))
        .layer(middleware::from_fn_with_state(allowed_hosts, crate::guard::guard))
        .with_state(app)
}

/// Every error the API gives is a problem: rejections of axum's extractors
/// (a bad path or query, a wrong method) come as text and are wrapped here.
async fn problems(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let detail = String::from_utf8_lossy(&body).trim().to_owned();
    let title = match status {
        StatusCode::METHOD_NOT_ALLOWED => "Method not allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "Body too large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "Unsupported media type",
        s if s.is_server_error() => "Internal error",
        _ => "Bad request",
    };
    let detail = if detail.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        detail
    };
    Problem::new(status, title, detail).into_response()
}

async fn not_found(request: Request) -> Response {
    let path = request.uri().path().to_owned();
    (StatusCode::NOT_FOUND, Html(page::not_found_page(&path))).into_response()
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    workflow: Option<String>,
    status: Option<String>,
    top_level: Option<String>,
}

async fn runs_page(
    State(app): State<Arc<App>>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or(PageQuery {
        workflow: None,
        status: None,
        top_level: None,
    });
    let top_level = query.top_level.as_deref() == Some("true");
    let list = api::ListQuery {
        workflow: query.workflow.clone(),
        status: query.status.clone(),
        limit: Some("50".into()),
        cursor: None,
        top_level: top_level.then(|| "true".to_owned()),
    };
    let runs = match api::list_runs(&app, &list).await {
        Ok(list) => list.runs,
        Err(problem) => return problem.into_response(),
    };
    let names: Vec<String> = app.runtime.source().entries().keys().cloned().collect();
    Html(page::runs_page(
        &runs,
        &names,
        query.workflow.as_deref().filter(|s| !s.is_empty()),
        query.status.as_deref().filter(|s| !s.is_empty()),
        top_level,
    ))
    .into_response()
}

async fn run_page(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    match app.report(&id).await {
        Ok((_, report, workflow)) => {
            let graph = match &workflow {
                Some(workflow) => {
                    let status = |id: &str| report.node(id).map(|n| n.status.as_str().to_owned());
                    flow_view::graph::svg(workflow, &status)
                }
                None => String::new(),
            };
            let live = matches!(report.status, flow_core::RunStatus::Running) || app.live(&id).is_some();
            Html(page::run_page(&report, &graph, live, &app.csrf)).into_response()
        }
        Err(problem) if problem.status == StatusCode::NOT_FOUND => {
            (StatusCode::NOT_FOUND, Html(page::not_found_page(&format!("run {id}")))).into_response()
        }
        Err(problem) => problem.into_response(),
    }
}

async fn workflows_page(State(app): State<Arc<App>>) -> Response {
    let list: Vec<serde_json::Value> = app
        .workflows()
        .iter()
        .filter_map(|w| serde_json::to_value(w).ok())
        .collect();
    Html(page::workflows_page(&list, &app.csrf)).into_response()
}

/// What the page's forms post: the start form's `input`, the signal form's
/// `payload` (JSON text; empty for none), and the page's `csrf` value.
#[derive(Debug, Deserialize)]
struct PageForm {
    #[serde(default)]
    input: String,
    #[serde(default)]
    payload: String,
    #[serde(default)]
    csrf: String,
}

/// How a page's form answers when it cannot go on: a page titled `title`
/// with a way back to the page the form was on.
struct FormAnswer<'a> {
    title: &'static str,
    back: (&'a str, &'a str),
    /// The page to open again for a fresh form ("the workflows page").
    page: &'static str,
}

impl FormAnswer<'_> {
    fn failed(&self, status: StatusCode, detail: &str) -> Response {
        (status, Html(page::error_page(self.title, detail, self.back))).into_response()
    }

    /// The form's fields, once it was sent as a form with the page's `csrf`
    /// value.
    fn checked(
        &self,
        app: &App,
        form: Result<Form<PageForm>, axum::extract::rejection::FormRejection>,
    ) -> Result<PageForm, Box<Response>> {
        let Ok(Form(form)) = form else {
            return Err(Box::new(self.failed(
                StatusCode::BAD_REQUEST,
                "The form was not sent as a form (application/x-www-form-urlencoded).",
            )));
        };
        if !auth::matches(&app.csrf, &form.csrf) {
            return Err(Box::new(self.failed(
                StatusCode::FORBIDDEN,
                &format!(
                    "The form is out of date or was not this server's: open {} again and resend it.",
                    self.page
                ),
            )));
        }
        Ok(form)
    }

    /// A field's JSON (`None` when it is empty), named `what` in the answer.
    fn json(&self, text: &str, what: &str) -> Result<Option<serde_json::Value>, Box<Response>> {
        match text.trim() {
            "" => Ok(None),
            text => serde_json::from_str(text).map(Some).map_err(|e| {
                Box::new(self.failed(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &format!("The {what} is not JSON: {e}"),
                ))
            }),
        }
    }

    /// The answer to a request the runtime refused.
    fn refused(&self, e: flow_runtime::Error) -> Response {
        let problem = Problem::from(e);
        self.failed(problem.status, &problem.detail)
    }
}

/// A run page's signal form, without JavaScript: `payload` (JSON; empty
/// sends null) and the page's `csrf` value; answers with the run's page, or
/// a page that says what was wrong.
async fn signal_form(
    State(app): State<Arc<App>>,
    Path((id, name)): Path<(String, String)>,
    form: Result<Form<PageForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let page_of_run = format!("/runs/{}", page::encode(&id));
    let answer = FormAnswer {
        title: "Not sent",
        back: (&page_of_run, "Back to the run"),
        page: "the run's page",
    };
    let payload = match answer
        .checked(&app, form)
        .and_then(|form| answer.json(&form.payload, "payload"))
    {
        Ok(payload) => payload.unwrap_or(serde_json::Value::Null),
        Err(response) => return *response,
    };
    match app.runtime.signal(&id, &name, &payload).await {
        Ok(_) => Redirect::to(&page_of_run).into_response(),
        Err(e) => answer.refused(e),
    }
}

/// The workflows page's start form, without JavaScript: `input` (JSON; empty
/// for the file's own) and the page's `csrf` value; answers with the run's
/// page, or a page that says what was wrong.
async fn start_form(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    form: Result<Form<PageForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let answer = FormAnswer {
        title: "Not started",
        back: ("/workflows", "Back to the workflows"),
        page: "the workflows page",
    };
    let input = match answer
        .checked(&app, form)
        .and_then(|form| answer.json(&form.input, "input"))
    {
        Ok(input) => input,
        Err(response) => return *response,
    };
    let started = async {
        let workflow = app.runtime.workflow(&name)?;
        app.runtime
            .submit(
                &workflow,
                flow_runtime::Submit {
                    input,
                    ..flow_runtime::Submit::default()
                },
            )
            .await
    }
    .await;
    match started {
        Ok(flow_runtime::Submitted::Started { run_id, .. } | flow_runtime::Submitted::Replayed { run_id }) => {
            Redirect::to(&format!("/runs/{}", page::encode(&run_id))).into_response()
        }
        Err(e) => answer.refused(e),
    }
}

async fn login_form() -> Response {
    Html(page::login_page(None)).into_response()
}

#[derive(Debug, Deserialize)]
struct Login {
    token: String,
}

/// The login form: the right token opens a session, whose random id an
/// HttpOnly cookie holds (never the token). A client address that gave a wrong
/// token too often in the last minute is refused for a while.
async fn login(
    State(app): State<Arc<App>>,
    client: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    form: Result<Form<Login>, axum::extract::rejection::FormRejection>,
) -> Response {
    let client = client.map_or(std::net::IpAddr::from([127, 0, 0, 1]), |c| c.0.0.ip());
    if !app.attempts.allowed(client) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "60")],
            Html(page::login_page(Some("Too many wrong tokens: wait a minute."))),
        )
            .into_response();
    }
    let Ok(Form(login)) = form else {
        return (
            StatusCode::BAD_REQUEST,
            Html(page::login_page(Some("Enter the token."))),
        )
            .into_response();
    };
    let Some(token) = &app.token else {
        return Redirect::to("/").into_response();
    };
    if !auth::matches(token, &login.token) {
        app.attempts.failed(client);
        return (
            StatusCode::UNAUTHORIZED,
            Html(page::login_page(Some("That is not the token."))),
        )
            .into_response();
    }
    let mut response = Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, "/")
        .body(Body::empty())
        .unwrap_or_default();
    let secure = if app.cookie_secure { "; Secure" } else { "" };
    let cookie = format!(
        "{}={}; Path=/; HttpOnly; SameSite=Strict{secure}",
        auth::COOKIE,
        app.sessions.open()
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn app_js() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], page::APP_JS).into_response()
}

async fn style_css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], page::STYLE_CSS).into_response()
}
