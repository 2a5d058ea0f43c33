//! `http`: one HTTP request per attempt, through a client shared by every node of
//! the engine (feature `http`).

use std::fmt;
use std::time::{Duration, Instant};

use flow_core::{ConfigProblem, NodeCall, NodeError, NodeKind, Registry, join_path};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Client, Method, Response, StatusCode, redirect};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::{ConfigReader, ReadMode, config_error, field};
use crate::message::{error_chain, short};
use crate::net::{
    QUOTED_BODY_BYTES, add_idempotency_key, body_start, header_name, header_value, parse_url, request_headers,
    transport_error,
};
use crate::{Notify, call_key};

/// Redirects followed at most, when `follow_redirects` is on.
pub const MAX_REDIRECTS: usize = 10;
/// The default `max_body_bytes`: 10 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;
/// The default `timeout_ms`: 30 seconds for the whole request, body included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

const FIELDS: &[&str] = &[
    "method",
    "url",
    "headers",
    "query",
    "body",
    "timeout_ms",
    "expect_status",
    "follow_redirects",
    "response",
    "max_body_bytes",
    "idempotency_key",
];
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The config of an `http` node. Build one in code (start from
/// [`HttpConfig::get`]) or read one from JSON with [`HttpConfig::from_value`].
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    /// `method`: GET (default), HEAD, POST, PUT, PATCH, DELETE or OPTIONS.
    pub method: Method,
    /// `url`: an `http` or `https` URL.
    pub url: String,
    /// `headers`: sent in this order.
    pub headers: Vec<(String, String)>,
    /// `query`: appended to the URL's query string, in this order.
    pub query: Vec<(String, String)>,
    /// `body`: a string is sent as text, any other JSON value as JSON.
    pub body: Option<Value>,
    /// `timeout_ms`: the whole request, from connecting to the end of the body.
    pub timeout: Duration,
    /// `expect_status`: the statuses that succeed; empty means any 2xx.
    pub expect_status: Vec<StatusPattern>,
    /// `follow_redirects`: follow up to [`MAX_REDIRECTS`] redirects (default true).
    pub follow_redirects: bool,
    /// `response`: how the body is read.
    pub response: ResponseMode,
    /// `max_body_bytes`: a longer response body is an error.
    pub max_body_bytes: u64,
    /// `idempotency_key`: which `Idempotency-Key` header the request carries.
    pub idempotency_key: IdempotencyKey,
}

impl HttpConfig {
    /// A GET of `url` with every other field at its default.
    pub fn get(url: impl Into<String>) -> HttpConfig {
        HttpConfig {
            method: Method::GET,
            url: url.into(),
            headers: Vec::new(),
            query: Vec::new(),
            body: None,
            timeout: DEFAULT_TIMEOUT,
            expect_status: Vec::new(),
            follow_redirects: true,
            response: ResponseMode::Auto,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            idempotency_key: IdempotencyKey::Default,
        }
    }

    /// Reads a rendered config; the error names every field that is wrong.
    pub fn from_value(config: &Value) -> Result<HttpConfig, NodeError> {
        parse(config, ReadMode::Run).map_err(config_error)
    }

    /// The problems of a config as written (templates are not judged).
    pub fn problems(config: &Value) -> Vec<ConfigProblem> {
        parse(config, ReadMode::Check).err().unwrap_or_default()
    }

    /// Whether `status` is one this config expects.
    pub fn expects(&self, status: u16) -> bool {
        if self.expect_status.is_empty() {
            (200..300).contains(&status)
        } else {
            self.expect_status.iter().any(|p| p.matches(status))
        }
    }

    fn expected_text(&self) -> String {
        if self.expect_status.is_empty() {
            "2xx".to_owned()
        } else {
            let all: Vec<String> = self.expect_status.iter().map(ToString::to_string).collect();
            all.join(", ")
        }
    }
}

/// One entry of `expect_status`: a code such as `404`, or a class such as `"3xx"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusPattern {
    /// Exactly this status.
    Code(u16),
    /// Any status of this hundred: `Class(3)` is `3xx`.
    Class(u8),
}

impl StatusPattern {
    /// Whether `status` matches.
    pub fn matches(self, status: u16) -> bool {
        match self {
            StatusPattern::Code(code) => code == status,
            StatusPattern::Class(class) => status / 100 == u16::from(class),
        }
    }

    fn parse(value: &Value) -> Option<StatusPattern> {
        match value {
            Value::Number(n) => n
                .as_u64()
                .filter(|c| (100..=599).contains(c))
                .and_then(|c| u16::try_from(c).ok())
                .map(StatusPattern::Code),
            Value::String(s) => {
                let s = s.trim();
                let bytes = s.as_bytes();
                if bytes.len() == 3 && bytes[1..].eq_ignore_ascii_case(b"xx") && (b'1'..=b'5').contains(&bytes[0]) {
                    return Some(StatusPattern::Class(bytes[0] - b'0'));
                }
                StatusPattern::parse(&Value::from(s.parse::<u64>().ok()?))
            }
            _ => None,
        }
    }
}

impl fmt::Display for StatusPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusPattern::Code(code) => write!(f, "{code}"),
            StatusPattern::Class(class) => write!(f, "{class}xx"),
        }
    }
}

/// The `Idempotency-Key` header of an `http` request (`idempotency_key`).
///
/// The key of an attempt is [`NodeCall::idempotency_key`]: `<run_id>:<node_id>`
/// (with `:<item index>` for an item of a `for_each` node), the same on every
/// attempt and when a journaled run resumes, so a server that remembers keys
/// applies the request once. A request run without an engine (or by a call with
/// an empty `run_id`) has no such key: [`IdempotencyKey::Default`] and
/// [`IdempotencyKey::Always`] then send none. A header named `Idempotency-Key`
/// in `headers` (any case) is sent instead, whatever this says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum IdempotencyKey {
    /// Absent (or `null`): the attempt's key on `POST`, `PUT`, `PATCH` and
    /// `DELETE`; none on `GET`, `HEAD` and `OPTIONS`, which repeat safely.
    #[default]
    Default,
    /// `false`: no key.
    Off,
    /// `true`: the attempt's key, whatever the method.
    Always,
    /// A string (a number is taken as its text): this key, whatever the method.
    Fixed(String),
}

impl IdempotencyKey {
    /// The key a `method` request sends, given the attempt's key (`None` outside
    /// a run).
    pub fn key_for<'a>(&'a self, method: &Method, call_key: Option<&'a str>) -> Option<&'a str> {
        match self {
            IdempotencyKey::Default if is_unsafe(method) => call_key,
            IdempotencyKey::Default | IdempotencyKey::Off => None,
            IdempotencyKey::Always => call_key,
            IdempotencyKey::Fixed(key) => Some(key),
        }
    }
}

/// The methods that get a key by default: those whose repetition is not harmless.
fn is_unsafe(method: &Method) -> bool {
    [Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(method)
}

/// How the response body becomes the output's `body`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseMode {
    /// JSON when the `Content-Type` says so (`application/json`, `…+json`), else text.
    #[default]
    Auto,
    /// Always JSON; a body that is not JSON is an error.
    Json,
    /// Always text (invalid UTF-8 replaced).
    Text,
}

/// What an `http` node outputs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Response headers, names in lower case; repeated headers joined with ", ".
    pub headers: Map<String, Value>,
    /// The body: JSON, a string, or `null` when empty.
    pub body: Value,
    /// From sending the request to the end of the body, in milliseconds.
    pub duration_ms: f64,
}

impl HttpResponse {
    /// The output as JSON: `{ status, headers, body, duration_ms }`.
    pub fn into_value(self) -> Value {
        let mut out = Map::new();
        out.insert("status".into(), self.status.into());
        out.insert("headers".into(), Value::Object(self.headers));
        out.insert("body".into(), self.body);
        out.insert("duration_ms".into(), Value::from(self.duration_ms));
        Value::Object(out)
    }
}

fn parse(config: &Value, mode: ReadMode) -> Result<HttpConfig, Vec<ConfigProblem>> {
    let mut r = ConfigReader::new(mode);
    let Some(map) = r.object(config, "", FIELDS) else {
        return r.finish(Some(HttpConfig::get("")));
    };
    let mut out = HttpConfig::get("");

    if let Some(method) = r.choice(field(map, "method"), "method", METHODS) {
        out.method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
    }

    let url = r.required(map, "", "url");
    if let Some(url) = r.string(url, "url") {
        if !r.deferred(&Value::String(url.clone())) {
            if let Err(problem) = parse_url(&url) {
                r.problem("url", problem);
            }
        }
        out.url = url;
    }

    out.headers = r.text_map(field(map, "headers"), "headers");
    for (name, value) in &out.headers {
        let problem = match header_name(name) {
            Err(problem) => Some(problem),
            Ok(_) if r.deferred(&Value::String(value.clone())) => None,
            Ok(_) => header_value(value).err(),
        };
        if let Some(problem) = problem {
            r.problem(join_path("headers", name), problem);
        }
    }
    out.query = r.text_multimap(field(map, "query"), "query");
    out.body = field(map, "body").cloned();

    if let Some(ms) = r.integer(field(map, "timeout_ms"), "timeout_ms", 1..=24 * 3600 * 1000) {
        out.timeout = Duration::from_millis(ms);
    }
    if let Some(list) = field(map, "expect_status") {
        out.expect_status = expect_status(&mut r, list);
    }
    if let Some(follow) = r.boolean(field(map, "follow_redirects"), "follow_redirects") {
        out.follow_redirects = follow;
    }
    if let Some(mode) = r.choice(field(map, "response"), "response", &["auto", "json", "text"]) {
        out.response = match mode {
            "json" => ResponseMode::Json,
            "text" => ResponseMode::Text,
            _ => ResponseMode::Auto,
        };
    }
    if let Some(max) = r.integer(field(map, "max_body_bytes"), "max_body_bytes", 1..=u64::MAX) {
        out.max_body_bytes = max;
    }
    if let Some(key) = field(map, "idempotency_key") {
        out.idempotency_key = idempotency_key(&mut r, key);
    }
    r.finish(Some(out))
}

/// `idempotency_key`: `true`, `false` (also as the strings "true" and "false",
/// like every boolean field), or a key: a string, or a number taken as its text.
fn idempotency_key(r: &mut ConfigReader, value: &Value) -> IdempotencyKey {
    if r.deferred(value) {
        return IdempotencyKey::Default;
    }
    let key = match value {
        Value::Bool(true) => return IdempotencyKey::Always,
        Value::Bool(false) => return IdempotencyKey::Off,
        Value::String(s) if s == "true" => return IdempotencyKey::Always,
        Value::String(s) if s == "false" => return IdempotencyKey::Off,
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => {
            r.problem(
                "idempotency_key",
                format!("must be true, false or a key (a string), not {}", short(other)),
            );
            return IdempotencyKey::Default;
        }
    };
    if key.trim().is_empty() {
        r.problem(
            "idempotency_key",
            "must not be empty (false sends no key; leave it out for the default)",
        );
    } else if let Err(problem) = header_value(&key) {
        r.problem("idempotency_key", problem);
    }
    IdempotencyKey::Fixed(key)
}

fn expect_status(r: &mut ConfigReader, list: &Value) -> Vec<StatusPattern> {
    if r.deferred(list) {
        return Vec::new();
    }
    let items: Vec<&Value> = match list {
        Value::Array(items) => items.iter().collect(),
        single @ (Value::Number(_) | Value::String(_)) => vec![single],
        other => {
            r.problem(
                "expect_status",
                format!("must be a list of codes and classes, not {}", short(other)),
            );
            return Vec::new();
        }
    };
    if items.is_empty() {
        r.problem(
            "expect_status",
            "must list at least one status (leave it out to accept any 2xx)",
        );
    }
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        if r.deferred(item) {
            continue;
        }
        match StatusPattern::parse(item) {
            Some(p) => out.push(p),
            None => r.problem(
                format!("expect_status[{i}]"),
                format!(
                    "must be a status code from 100 to 599 or a class such as \"2xx\", not {}",
                    short(item)
                ),
            ),
        }
    }
    out
}

/// The `http` node kind. It owns the HTTP client, built once, so every node of
/// every run of an engine pools and reuses connections. How many requests run at
/// once is the strategy's decision alone: the client has no concurrency cap.
pub struct Http {
    clients: Result<Clients, String>,
}

#[derive(Clone)]
struct Clients {
    /// Follows up to [`MAX_REDIRECTS`] redirects.
    follow: Client,
    /// Follows none (`follow_redirects: false`).
    manual: Client,
}

impl fmt::Debug for Http {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http").field("ready", &self.clients.is_ok()).finish()
    }
}

impl Default for Http {
    fn default() -> Self {
        Http::new()
    }
}

impl Http {
    /// The kind with its own clients. Should the TLS setup fail (it needs no system
    /// library, so it should not), every request fails with the reason instead.
    pub fn new() -> Http {
        Http::try_new().unwrap_or_else(|e| Http {
            clients: Err(error_chain(&e)),
        })
    }

    /// The kind with its own clients, or why they could not be built.
    pub fn try_new() -> Result<Http, reqwest::Error> {
        let build = |policy| {
            Client::builder()
                .redirect(policy)
                .connect_timeout(Duration::from_secs(10))
                .user_agent(concat!("flow/", env!("CARGO_PKG_VERSION")))
                .build()
        };
        Ok(Http {
            clients: Ok(Clients {
                follow: build(redirect::Policy::limited(MAX_REDIRECTS))?,
                manual: build(redirect::Policy::none())?,
            }),
        })
    }

    /// The client that follows no redirects, shared with `notify`'s webhooks.
    pub(crate) fn client(&self) -> Result<Client, String> {
        self.clients.as_ref().map(|c| c.manual.clone()).map_err(Clone::clone)
    }

    /// Sends the request `config` describes and reads the response: the work of one
    /// attempt, without an engine. Every failure but a bad config is retryable.
    ///
    /// Without an engine's call there is no attempt key, so only an
    /// [`IdempotencyKey::Fixed`] (or an `Idempotency-Key` in `headers`) is sent;
    /// [`Http::run_with_key`] gives one.
    pub async fn run(&self, config: &HttpConfig) -> Result<HttpResponse, NodeError> {
        self.run_with_key(config, None).await
    }

    /// [`Http::run`] for an attempt whose key is `call_key` (what
    /// [`NodeCall::idempotency_key`] gives in a run): the key that
    /// [`IdempotencyKey::Default`] and [`IdempotencyKey::Always`] send.
    pub async fn run_with_key(&self, config: &HttpConfig, call_key: Option<&str>) -> Result<HttpResponse, NodeError> {
        let clients = self
            .clients
            .as_ref()
            .map_err(|e| NodeError::permanent(format!("the HTTP client could not be built: {e}")))?;
        let client = if config.follow_redirects {
            &clients.follow
        } else {
            &clients.manual
        };
        let request = build_request(client, config, call_key)?;

        let started = Instant::now();
        let mut response = request.send().await.map_err(|e| transport_error(e, config.timeout))?;
        let status = response.status();
        if !config.expects(status.as_u16()) {
            return Err(unexpected_status(&mut response, config).await);
        }
        let headers = header_map(response.headers());
        let json_type = is_json(response.headers());
        let bytes = read_body(&mut response, config).await?;
        let body = decode(&bytes, config.response, json_type)?;
        Ok(HttpResponse {
            status: status.as_u16(),
            headers,
            body,
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }
}

/// Registers `http` and `notify`, whose webhooks share its connection pool.
pub(crate) fn register(registry: &mut Registry) {
    let http = Http::new();
    registry
        .register("notify", Notify::with_http(&http))
        .register("http", http);
}

#[async_trait::async_trait]
impl NodeKind for Http {
    fn check(&self, config: &Value) -> Vec<ConfigProblem> {
        HttpConfig::problems(config)
    }

    async fn run(&self, call: NodeCall) -> Result<Value, NodeError> {
        let config = HttpConfig::from_value(&call.config)?;
        // Neither the URL nor the headers are logged: they may carry secrets.
        let response = self.run_with_key(&config, call_key(&call).as_deref()).await;
        match &response {
            Ok(r) => {
                tracing::debug!(node = &*call.node_id, method = %config.method, status = r.status, duration_ms = r.duration_ms, "http request done")
            }
            Err(e) => {
                tracing::debug!(node = &*call.node_id, method = %config.method, retryable = e.is_retryable(), "http request failed")
            }
        }
        Ok(response?.into_value())
    }
}

fn build_request(
    client: &Client,
    config: &HttpConfig,
    call_key: Option<&str>,
) -> Result<reqwest::RequestBuilder, NodeError> {
    let mut url = parse_url(&config.url).map_err(|problem| NodeError::permanent(format!("config.url: {problem}")))?;
    if !config.query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (name, value) in &config.query {
            pairs.append_pair(name, value);
        }
    }
    let mut headers = request_headers(&config.headers)?;
    if let Some(key) = config.idempotency_key.key_for(&config.method, call_key) {
        let place = match config.idempotency_key {
            IdempotencyKey::Fixed(_) => "config.idempotency_key",
            _ => "the idempotency key (run id and node id)",
        };
        add_idempotency_key(&mut headers, key, place)?;
    }
    let mut request = client.request(config.method.clone(), url).timeout(config.timeout);
    match &config.body {
        None => {}
        Some(Value::String(text)) => {
            if !headers.contains_key(CONTENT_TYPE) {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
            }
            request = request.body(text.clone());
        }
        Some(json) => {
            if !headers.contains_key(CONTENT_TYPE) {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            let bytes = serde_json::to_vec(json).map_err(|e| NodeError::permanent(format!("config.body: {e}")))?;
            request = request.body(bytes);
        }
    }
    Ok(request.headers(headers))
}

async fn unexpected_status(response: &mut Response, config: &HttpConfig) -> NodeError {
    let status = response.status();
    let retry_after = if matches!(status, StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS) {
        response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
    } else {
        None
    };
    let quoted = body_start(response, QUOTED_BODY_BYTES).await;
    let mut message = format!("unexpected status {status} (expect_status: {})", config.expected_text());
    if !quoted.is_empty() {
        message.push_str(&format!("; body: {quoted}"));
    }
    let error = NodeError::new(message);
    match retry_after {
        Some(wait) => error.with_retry_after(wait),
        None => error,
    }
}

/// The whole body, streamed: reading stops with an error as soon as it passes the cap.
async fn read_body(response: &mut Response, config: &HttpConfig) -> Result<Vec<u8>, NodeError> {
    let max = config.max_body_bytes;
    let too_large = || {
        NodeError::new(format!(
            "the response body is larger than config.max_body_bytes ({max} bytes)"
        ))
    };
    let announced = response.content_length();
    if announced.is_some_and(|len| len > max) {
        return Err(too_large());
    }
    let capacity = announced.unwrap_or(0).min(max).min(1024 * 1024);
    let mut body = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(e, config.timeout))? {
        if (body.len() as u64).saturating_add(chunk.len() as u64) > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            essence == "application/json" || essence.ends_with("+json")
        })
        .unwrap_or(false)
}

fn decode(bytes: &[u8], mode: ResponseMode, json_type: bool) -> Result<Value, NodeError> {
    let as_json = match mode {
        ResponseMode::Json => true,
        ResponseMode::Text => false,
        ResponseMode::Auto => json_type,
    };
    if !as_json {
        return Ok(Value::String(String::from_utf8_lossy(bytes).into_owned()));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let why = match mode {
            ResponseMode::Json => "config.response is json",
            _ => "the Content-Type says JSON",
        };
        NodeError::new(format!("the response body is not JSON ({why}): {e}"))
    })
}

fn header_map(headers: &HeaderMap) -> Map<String, Value> {
    let mut out: Map<String, Value> = Map::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match out.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                out.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn problems(config: Value) -> Vec<(String, String)> {
        HttpConfig::problems(&config)
            .into_iter()
            .map(|p| (p.path, p.message))
            .collect()
    }

    #[test]
    fn status_patterns() {
        assert_eq!(StatusPattern::parse(&json!(404)), Some(StatusPattern::Code(404)));
        assert_eq!(StatusPattern::parse(&json!("3xx")), Some(StatusPattern::Class(3)));
        assert_eq!(StatusPattern::parse(&json!("2XX")), Some(StatusPattern::Class(2)));
        assert_eq!(StatusPattern::parse(&json!("201")), Some(StatusPattern::Code(201)));
        assert_eq!(StatusPattern::parse(&json!(99)), None);
        assert_eq!(StatusPattern::parse(&json!("6xx")), None);
        assert_eq!(StatusPattern::parse(&json!(true)), None);
        assert!(StatusPattern::Class(3).matches(302));
    }

    #[test]
    fn defaults() {
        let config = HttpConfig::from_value(&json!({ "url": "http://x.test/" })).unwrap();
        assert_eq!(config, HttpConfig::get("http://x.test/"));
        assert!(config.expects(204));
        assert!(!config.expects(302));
    }

    #[test]
    fn check_names_every_field() {
        let found = problems(json!({
            "method": "FETCH",
            "headers": { "bad name": "x" },
            "expect_status": [200, "9xx", {}],
            "timeout_ms": 0,
            "response": "xml",
            "follow_redirects": "yes",
            "max_body_bytes": -1,
            "idempotency_key": [],
            "bodyy": 1,
        }));
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        for expected in [
            "bodyy",
            "method",
            "url",
            "headers[\"bad name\"]",
            "timeout_ms",
            "expect_status[1]",
            "expect_status[2]",
            "follow_redirects",
            "response",
            "max_body_bytes",
            "idempotency_key",
        ] {
            assert!(paths.contains(&expected), "{expected} missing from {found:?}");
        }
    }

    #[test]
    fn templates_pass_check() {
        assert!(
            problems(json!({
                "method": "{{ input.method }}",
                "url": "{{ input.base }}/users",
                "headers": { "Authorization": "Bearer {{ env.TOKEN }}" },
                "timeout_ms": "{{ input.timeout }}",
                "expect_status": "{{ input.codes }}",
            }))
            .is_empty()
        );
        assert_eq!(problems(json!({ "url": "ftp://x" }))[0].0, "url");
        assert_eq!(problems(json!("GET /"))[0].0, "");
    }

    #[test]
    fn idempotency_key_values() {
        let read = |key: Value| {
            HttpConfig::from_value(&json!({ "url": "http://x.test/", "idempotency_key": key }))
                .map(|c| c.idempotency_key)
        };
        assert_eq!(read(Value::Null), Ok(IdempotencyKey::Default));
        assert_eq!(read(json!(false)), Ok(IdempotencyKey::Off));
        assert_eq!(read(json!(true)), Ok(IdempotencyKey::Always));
        assert_eq!(read(json!("false")), Ok(IdempotencyKey::Off));
        assert_eq!(read(json!("order-7")), Ok(IdempotencyKey::Fixed("order-7".into())));
        assert_eq!(read(json!(7)), Ok(IdempotencyKey::Fixed("7".into())));
        for bad in [json!({}), json!([]), json!(""), json!(" "), json!("a\nb")] {
            let err = read(bad.clone()).unwrap_err();
            assert!(err.message().starts_with("config.idempotency_key: "), "{bad}: {err}");
            assert!(!err.is_retryable());
        }
        assert_eq!(
            problems(json!({ "url": "http://x.test/", "idempotency_key": { "a": 1 } })),
            [(
                "idempotency_key".to_owned(),
                "must be true, false or a key (a string), not {\"a\":1}".to_owned()
            )]
        );
        assert!(problems(json!({ "url": "http://x.test/", "idempotency_key": "{{ input.key }}" })).is_empty());
    }

    #[test]
    fn idempotency_key_methods() {
        let call = Some("run:node");
        let key = |setting: &IdempotencyKey, method: Method| setting.key_for(&method, call).map(str::to_owned);
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert_eq!(key(&IdempotencyKey::Default, method.clone()).as_deref(), call);
            assert_eq!(key(&IdempotencyKey::Off, method), None);
        }
        for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert_eq!(key(&IdempotencyKey::Default, method.clone()), None);
            assert_eq!(key(&IdempotencyKey::Always, method.clone()).as_deref(), call);
            assert_eq!(key(&IdempotencyKey::Fixed("k".into()), method).as_deref(), Some("k"));
        }
        // Outside a run there is no call key: only a fixed key is sent.
        assert_eq!(IdempotencyKey::Default.key_for(&Method::POST, None), None);
        assert_eq!(IdempotencyKey::Always.key_for(&Method::POST, None), None);
        assert_eq!(
            IdempotencyKey::Fixed("k".into()).key_for(&Method::POST, None),
            Some("k")
        );
    }

    #[test]
    fn decode_modes() {
        assert_eq!(
            decode(b"{\"a\":1}", ResponseMode::Auto, true).unwrap(),
            json!({ "a": 1 })
        );
        assert_eq!(
            decode(b"{\"a\":1}", ResponseMode::Auto, false).unwrap(),
            json!("{\"a\":1}")
        );
        assert_eq!(decode(b"", ResponseMode::Json, false).unwrap(), Value::Null);
        assert!(decode(b"<html>", ResponseMode::Json, false).is_err());
    }
}
