//! `FLOW_TOKEN`: every API request and every page needs it, as
//! `Authorization: Bearer <token>` or (pages) the session cookie the login
//! form sets. Tokens are compared in constant time; the cookie holds a random
//! session id, never the token; failed logins are limited per client address.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use subtle::ConstantTimeEq;

use crate::app::App;
use crate::problem::Problem;

/// The session cookie's name.
pub const COOKIE: &str = "flow_session";
/// How long a session of the login form lasts.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Failed logins a client address may make in [`ATTEMPT_WINDOW`].
pub const MAX_ATTEMPTS: usize = 10;
const ATTEMPT_WINDOW: Duration = Duration::from_secs(60);
/// Sessions kept at most; past this, the oldest half is dropped.
const MAX_SESSIONS: usize = 10_000;

/// The sessions the login form opened, by their random id.
#[derive(Debug, Default)]
pub struct Sessions(Mutex<HashMap<String, Instant>>);

impl Sessions {
    /// A new session: its id (244 random bits).
    pub fn open(&self) -> String {
        let id = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let mut sessions = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        sessions.retain(|_, opened| now.duration_since(*opened) < SESSION_TTL);
        if sessions.len() >= MAX_SESSIONS {
            let mut by_age: Vec<Instant> = sessions.values().copied().collect();
            by_age.sort();
            let cut = by_age[by_age.len() / 2];
            sessions.retain(|_, opened| *opened > cut);
        }
        sessions.insert(id.clone(), now);
        id
    }

    fn valid(&self, id: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .is_some_and(|opened| opened.elapsed() < SESSION_TTL)
    }
}

/// Failed logins by client address, in the last [`ATTEMPT_WINDOW`].
#[derive(Debug, Default)]
pub struct Attempts(Mutex<HashMap<IpAddr, VecDeque<Instant>>>);

impl Attempts {
    /// Whether `client` may try a login now.
    pub fn allowed(&self, client: IpAddr) -> bool {
        let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        all.retain(|_, failures| {
            while failures
                .front()
                .is_some_and(|t| now.duration_since(*t) >= ATTEMPT_WINDOW)
            {
                failures.pop_front();
            }
            !failures.is_empty()
        });
        all.get(&client).is_none_or(|failures| failures.len() < MAX_ATTEMPTS)
    }

    /// `client` gave a wrong token.
    pub fn failed(&self, client: IpAddr) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(client)
            .or_default()
            .push_back(Instant::now());
    }
}

/// Whether `given` is the token, in time that does not depend on where they differ.
pub fn matches(token: &str, given: &str) -> bool {
    token.as_bytes().ct_eq(given.as_bytes()).into()
}

/// The bearer token a request carries.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
}

/// The session id a request's cookie carries.
fn session(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

pub fn allowed(app: &App, headers: &HeaderMap) -> bool {
    match &app.token {
        None => true,
        Some(token) => match bearer(headers) {
            Some(given) => matches(token, given),
            None => session(headers).is_some_and(|id| app.sessions.valid(id)),
        },
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
