//! `FLOW_TOKEN`: every API request and every page needs it, as
//! `Authorization: Bearer <token>` or (pages) the cookie the login form sets.
//! Tokens are compared in constant time.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use subtle::ConstantTimeEq;

use crate::app::App;
use crate::problem::Problem;

pub const COOKIE: &str = "flow_token";

/// Whether `given` is the token, in time that does not depend on where they differ.
pub fn matches(token: &str, given: &str) -> bool {
    token.as_bytes().ct_eq(given.as_bytes()).into()
}

/// The token a request carries: its bearer token, else its cookie.
fn presented(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some(token) = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer "))
    {
        return Some(token.trim().to_owned());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

pub fn allowed(app: &App, headers: &HeaderMap) -> bool {
    match &app.token {
        None => true,
        Some(token) => presented(headers).is_some_and(|given| matches(token, &given)),
    }
}

/// API and metrics: a 401 problem without the token.
pub async fn api(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if allowed(&app, request.headers()) {
        next.run(request).await
    } else {
        Problem::unauthorized().into_response()
    }
}

/// Pages: to the login form without the token.
pub async fn page(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if allowed(&app, request.headers()) {
        next.run(request).await
    } else {
        let mut response = Redirect::to("/login").into_response();
        *response.status_mut() = StatusCode::SEE_OTHER;
        response
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_match_only_whole() {
        assert!(super::matches("s3cret", "s3cret"));
        assert!(!super::matches("s3cret", "s3cre"));
        assert!(!super::matches("s3cret", "s3cret!"));
        assert!(!super::matches("s3cret", ""));
    }
}
