//! Cross-site protection, in front of every route:
//!
//! - **Host**: a request must name this server: an IP address (any port),
//!   `localhost` (or a `*.localhost` name), or a name given with
//!   `--allowed-host`. DNS rebinding points an attacker's name at 127.0.0.1;
//!   its requests carry that name and are refused, so a page of another site
//!   cannot read reports through the victim's browser. `/healthz` answers any
//!   host (orchestrators probe it by service name and it tells nothing).
//! - **Origin**: a state-changing request (not `GET`, `HEAD`, `OPTIONS`) that
//!   a browser sends from a page of another origin (another site, or another
//!   port of this host) is refused; requests without `Origin` (curl, scripts)
//!   pass.
//! - **Content-Type**: a state-changing API call with a body must send it as
//!   `application/json`: a cross-site `<form>` or a `no-cors` `fetch` can only
//!   send `text/plain`, form or multipart bodies.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::problem::Problem;

/// The names this server answers to besides IP addresses and `localhost`.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts(Arc<Vec<String>>);

impl AllowedHosts {
    /// `names` (host names, with or without a port), compared without case.
    pub fn new(names: &[String]) -> AllowedHosts {
        AllowedHosts(Arc::new(
            names.iter().map(|n| host_part(n).to_ascii_lowercase()).collect(),
        ))
    }

    fn allows(&self, host: &str) -> bool {
        let name = host_part(host);
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        let ends_with = |suffix: &str| {
            let (name, suffix) = (name.as_bytes(), suffix.as_bytes());
            name.len() >= suffix.len() && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
        };
        bare.parse::<std::net::IpAddr>().is_ok()
            || name.eq_ignore_ascii_case("localhost")
            || ends_with(".localhost")
            || self.0.iter().any(|allowed| allowed.eq_ignore_ascii_case(name))
    }
}

/// `name` of `name:port`, `[v6]` of `[v6]:port`.
fn host_part(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn refused(status: StatusCode, title: &'static str, detail: String) -> Response {
    Problem::new(status, title, detail).into_response()
}

/// The layer: see the module docs.
pub async fn guard(State(allowed): State<AllowedHosts>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let path = request.uri().path();
    let host = header_text(headers, header::HOST).unwrap_or_default();
    if path != "/healthz" && !host.is_empty() && !allowed.allows(host) {
        return refused(
            StatusCode::MISDIRECTED_REQUEST,
            "Unknown host",
            format!(
                "Host `{}` is not a name this server answers to (give it with --allowed-host)",
                host.escape_debug()
            ),
        );
    }
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes && let Some(origin) = header_text(headers, header::ORIGIN) {
        let own = origin
            .split_once("://")
            .map(|(_, rest)| rest.trim_end_matches('/'))
            .is_some_and(|rest| !host.is_empty() && rest.eq_ignore_ascii_case(host));
        if !own {
            return refused(
                StatusCode::FORBIDDEN,
                "Cross-origin request",
                format!("Origin `{}` is not this server's: refused", origin.escape_debug()),
            );
        }
    }
    if changes && path.starts_with("/api/") {
        let content_type = header_text(headers, header::CONTENT_TYPE);
        let has_body = header_text(headers, header::CONTENT_LENGTH).is_some_and(|n| n.trim() != "0")
            || headers.contains_key(header::TRANSFER_ENCODING);
        let json = content_type.is_some_and(|t| {
            let essence = t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
            essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
        });
        if (content_type.is_some() || has_body) && !json {
            return refused(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported media type",
                format!(
                    "Content-Type: the API takes a body as application/json, not `{}`",
                    content_type.unwrap_or("(none)").escape_debug()
                ),
            );
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_by_name_and_address() {
        let allowed = AllowedHosts::new(&["flow.example.com".to_owned(), "Ops:9000".to_owned()]);
        for ok in [
            "127.0.0.1:8080",
            "10.1.2.3",
            "[::1]:8080",
            "localhost:8080",
            "LOCALHOST",
            "app.localhost:1",
            "flow.example.com",
            "FLOW.example.com:443",
            "ops:8080",
        ] {
            assert!(allowed.allows(ok), "{ok}");
        }
        for refused in [
            "attacker.example",
            "attacker.example:8080",
            "localhost.attacker.example",
            "127.0.0.1.nip.io",
        ] {
            assert!(!allowed.allows(refused), "{refused}");
        }
    }
}
