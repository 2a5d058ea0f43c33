//! Errors as RFC 9457 problem details (`application/problem+json`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer: `{"type", "title", "status", "detail"}`.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The HTTP status.
    pub status: StatusCode,
    /// A short summary of the kind of problem.
    pub title: &'static str,
    /// What went wrong with this request, naming the field or resource.
    pub detail: String,
    /// Seconds to wait before trying again (`Retry-After`), when it helps.
    pub retry_after: Option<u32>,
}

impl Problem {
    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            title,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// The same problem, telling the client when to try again.
    pub fn retry_after(mut self, seconds: u32) -> Problem {
        self.retry_after = Some(seconds);
        self
    }

    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "Bad request", detail)
    }

    pub fn unprocessable(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid request", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "Not found", detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::CONFLICT, "Conflict", detail)
    }

    pub fn unauthorized() -> Problem {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "this server needs a token: send `Authorization: Bearer <FLOW_TOKEN>`",
        )
    }

    pub fn internal(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        let mut response = (self.status, body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<flow_engine::journal::Error> for Problem {
    fn from(e: flow_engine::journal::Error) -> Problem {
        match e {
            // What the run holds cannot be stored: trying again will not help.
            flow_engine::journal::Error::Refused { .. } => Problem::unprocessable(e.to_string()),
            _ => Problem::unavailable(e.to_string()),
        }
    }
}

/// The runtime's errors by variant, never by message.
impl From<flow_runtime::Error> for Problem {
    fn from(e: flow_runtime::Error) -> Problem {
        use flow_engine::ResumeError;
        use flow_runtime::Error;
        match e {
            // What a client can act on: not the journal's URL, nor a holder's pid
            // and host (those stay in the server's log).
            Error::Resume(ResumeError::NotFound { run_id, .. }) => Problem::not_found(format!("no run `{run_id}`")),
            Error::Resume(ResumeError::Held { run_id, holder }) => {
                if let Some((pid, host)) = holder {
                    tracing::info!(run_id = %run_id, pid, host = %host, "a run asked for is held by a live process");
                }
                Problem::conflict(format!(
                    "run `{run_id}` is held by another process, which is still running it"
                ))
            }
            Error::RunNotFound(_) | Error::WorkflowNotFound { .. } => Problem::not_found(e.to_string()),
            Error::WorkflowInvalid { .. } => Problem::conflict(e.to_string()),
            Error::KeyReused { .. } | Error::SignalRefused { .. } => Problem::unprocessable(e.to_string()),
            Error::RunEnded { .. } => Problem::conflict(e.to_string()),
            Error::NotUnderWay { .. } | Error::StillRunning(_) | Error::Resume(_) => Problem::conflict(e.to_string()),
            Error::Stopping => Problem::unavailable("the server is stopping: it takes no new runs"),
            Error::BadInput(message) => Problem::unprocessable(message),
            Error::Journal(e) => Problem::from(e),
            Error::Unusable(message) => Problem::internal(message),
            other => Problem::unavailable(other.to_string()),
        }
    }
}
