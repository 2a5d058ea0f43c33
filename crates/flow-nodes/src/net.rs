//! What the `http` kind and `notify`'s webhooks share (feature `http`): checking a
//! URL and headers, and telling what went wrong with a request. A URL or a header
//! value is never quoted in a message: either may carry a secret.

use std::time::Duration;

use flow_core::{NodeError, join_path};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Response, Url};

use crate::http::MAX_REDIRECTS;
use crate::message::error_chain;

/// How much of an unexpected response's body its error quotes.
pub(crate) const QUOTED_BODY_BYTES: usize = 200;

/// `url` parsed, if it is an `http` or `https` URL; else what is wrong with it.
pub(crate) fn parse_url(url: &str) -> Result<Url, String> {
    match Url::parse(url) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Ok(u),
        Ok(u) => Err(format!("must be an http or https URL, not {}", u.scheme())),
        Err(e) => Err(format!("is not a valid URL: {e}")),
    }
}

/// `name` as a header name, or what is wrong with it.
pub(crate) fn header_name(name: &str) -> Result<HeaderName, &'static str> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| "is not a valid header name")
}

/// `value` as a header value, or what is wrong with it.
pub(crate) fn header_value(value: &str) -> Result<HeaderValue, &'static str> {
    HeaderValue::from_str(value).map_err(|_| "is not a valid header value (control characters?)")
}

/// The headers of a rendered config (`config.headers`), in order; a bad one is a
/// permanent error naming it.
pub(crate) fn request_headers(headers: &[(String, String)]) -> Result<HeaderMap, NodeError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let bad = |why: &str| NodeError::permanent(format!("{}: {why}", join_path("config.headers", name)));
        map.append(header_name(name).map_err(bad)?, header_value(value).map_err(bad)?);
    }
    Ok(map)
}

/// The `Idempotency-Key` header.
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// Adds `Idempotency-Key: key` to `headers`, unless they have one already (from a
/// config's `headers`, which wins: never two). A key that is not a valid header
/// value is a permanent error naming `place`, where the key came from.
pub(crate) fn add_idempotency_key(headers: &mut HeaderMap, key: &str, place: &str) -> Result<(), NodeError> {
    if headers.contains_key(IDEMPOTENCY_KEY) {
        return Ok(());
    }
    let value = header_value(key).map_err(|why| NodeError::permanent(format!("{place}: {why}")))?;
    headers.insert(IDEMPOTENCY_KEY, value);
    Ok(())
}

/// The error of a request that got no response (or lost it while reading).
pub(crate) fn transport_error(err: reqwest::Error, timeout: Duration) -> NodeError {
    // Without the URL: it may hold a secret, and the node's id already says which request.
    let err = err.without_url();
    if err.is_timeout() {
        NodeError::new(format!(
            "timed out after {} ms (config.timeout_ms)",
            timeout.as_millis()
        ))
    } else if err.is_redirect() {
        NodeError::new(format!(
            "redirect failed (follow_redirects follows at most {MAX_REDIRECTS}): {}",
            error_chain(&err)
        ))
    } else if err.is_builder() {
        NodeError::permanent(format!("the request could not be built: {}", error_chain(&err)))
    } else if err.is_connect() {
        NodeError::new(format!("could not connect: {}", error_chain(&err)))
    } else if err.is_body() || err.is_decode() {
        NodeError::new(format!("reading the response failed: {}", error_chain(&err)))
    } else {
        NodeError::new(format!("request failed: {}", error_chain(&err)))
    }
}

/// The first `max` bytes of the body as text, for an error; reading stops there.
pub(crate) async fn body_start(response: &mut Response, max: usize) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < max {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    prefix(&text, max).trim().to_owned()
}

/// At most `max` bytes of `text`, cut on a character boundary.
fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http() {
        assert!(parse_url("https://x.test/a").is_ok());
        assert_eq!(
            parse_url("ftp://x.test").unwrap_err(),
            "must be an http or https URL, not ftp"
        );
        assert!(parse_url("not a url").unwrap_err().starts_with("is not a valid URL: "));
    }

    #[test]
    fn bad_headers_are_named_not_quoted() {
        let ok = request_headers(&[("X-A".into(), "1".into()), ("x-a".into(), "2".into())]).unwrap();
        assert_eq!(ok.get_all("x-a").iter().count(), 2);
        let err = request_headers(&[("a b".into(), "v".into())]).unwrap_err();
        assert_eq!(err.message(), "config.headers[\"a b\"]: is not a valid header name");
        assert!(!err.is_retryable());
        let err = request_headers(&[("Authorization".into(), "secret\n".into())]).unwrap_err();
        assert_eq!(
            err.message(),
            "config.headers.Authorization: is not a valid header value (control characters?)"
        );
    }

    #[test]
    fn an_explicit_idempotency_key_wins() {
        let mut headers = request_headers(&[("IDEMPOTENCY-key".into(), "mine".into())]).unwrap();
        add_idempotency_key(&mut headers, "run:node", "here").unwrap();
        let sent: Vec<_> = headers.get_all("idempotency-key").iter().collect();
        assert_eq!(sent, ["mine"]);

        let mut headers = HeaderMap::new();
        add_idempotency_key(&mut headers, "run:node", "here").unwrap();
        assert_eq!(headers["Idempotency-Key"], "run:node");
        let err = add_idempotency_key(&mut HeaderMap::new(), "a\nb", "config.idempotency_key").unwrap_err();
        assert!(
            err.message()
                .starts_with("config.idempotency_key: is not a valid header value")
        );
        assert!(!err.is_retryable());
    }

    #[test]
    fn prefix_cuts_on_char_boundary() {
        assert_eq!(prefix("héllo", 2), "h");
        assert_eq!(prefix("abc", 10), "abc");
    }
}
