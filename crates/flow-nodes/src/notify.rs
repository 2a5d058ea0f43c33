//! `notify`: one message to several recipients, delivered concurrently through a
//! flow-strategy of the node's own (default all-settled, so one bad recipient does
//! not stop the others).

use std::fmt;
use std::time::{Duration, Instant};

use flow_core::{ConfigProblem, NodeCall, NodeError, NodeKind};
use flow_strategy::{Outcome, StrategyConfig, StrategyKind};
use serde::Serialize;
use serde_json::{Map, Value};
use tracing::Instrument;

use crate::fields::{Mode, Reader, config_error, field, is_template, short, type_name};

/// The default `timeout_ms` of one delivery: 30 seconds.
pub const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

const COMMON: &[&str] = &[
    "channel",
    "message",
    "recipients",
    "strategy",
    "min_success",
    "timeout_ms",
];
const WEBHOOK: &[&str] = &["payload", "headers"];
const EMAIL: &[&str] = &[
    "smtp_host",
    "smtp_port",
    "tls",
    "from",
    "subject",
    "username",
    "password",
];
const LOG: &[&str] = &["level"];
const CHANNELS: &[&str] = &["webhook", "email", "log"];

/// The config of a `notify` node. Build one in code or read one from JSON with
/// [`NotifyConfig::from_value`].
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyConfig {
    /// `channel` and its own fields.
    pub channel: Channel,
    /// `message`: the text sent.
    pub message: String,
    /// `recipients`: webhook URLs, email addresses, or names for `log`.
    pub recipients: Vec<String>,
    /// `strategy`: how deliveries run side by side (default all-settled).
    pub strategy: StrategyConfig,
    /// `min_success`: the node succeeds when at least this many deliveries do
    /// (default: all of them).
    pub min_success: Option<usize>,
    /// `timeout_ms`: the limit of each delivery.
    pub timeout: Duration,
}

impl NotifyConfig {
    /// A config sending `message` to `recipients` over `channel`, other fields at their defaults.
    pub fn new(channel: Channel, message: impl Into<String>, recipients: Vec<String>) -> NotifyConfig {
        NotifyConfig {
            channel,
            message: message.into(),
            recipients,
            strategy: StrategyConfig::new(StrategyKind::AllSettled),
            min_success: None,
            timeout: DEFAULT_DELIVERY_TIMEOUT,
        }
    }

    /// Reads a rendered config; the error names every field that is wrong.
    pub fn from_value(config: &Value) -> Result<NotifyConfig, NodeError> {
        parse(config, Mode::Run).map_err(config_error)
    }

    /// The problems of a config as written (templates are not judged).
    pub fn problems(config: &Value) -> Vec<ConfigProblem> {
        parse(config, Mode::Check).err().unwrap_or_default()
    }
}

/// Where `notify` sends its message.
#[derive(Debug, Clone, PartialEq)]
pub enum Channel {
    /// `webhook`: a JSON POST to each recipient URL (feature `http`).
    Webhook(WebhookChannel),
    /// `email`: one SMTP message to each recipient address (feature `email`).
    Email(EmailChannel),
    /// `log`: the message written through `tracing`, once per recipient.
    Log(LogChannel),
}

impl Channel {
    /// The channel's name in a config.
    pub fn name(&self) -> &'static str {
        match self {
            Channel::Webhook(_) => "webhook",
            Channel::Email(_) => "email",
            Channel::Log(_) => "log",
        }
    }
}

/// The `webhook` channel: POSTs `{"text": message}` merged with `payload` — the
/// shape Slack, Mattermost and Discord (`/slack`) incoming webhooks accept.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WebhookChannel {
    /// `payload`: fields added to the JSON body; a `text` here replaces the message.
    pub payload: Map<String, Value>,
    /// `headers`: extra request headers (an `Authorization`, say).
    pub headers: Vec<(String, String)>,
}

/// The `email` channel: SMTP through lettre.
#[derive(Clone, PartialEq)]
pub struct EmailChannel {
    /// `smtp_host`: the SMTP server's host name (also the name its TLS certificate must carry).
    pub smtp_host: String,
    /// `smtp_port`: default 25 without TLS, 587 with STARTTLS, 465 with TLS.
    pub smtp_port: Option<u16>,
    /// `tls`: how the connection is secured (default `starttls`).
    pub tls: SmtpTls,
    /// `from`: the sender, `a@b.example` or `Name <a@b.example>`.
    pub from: String,
    /// `subject`: the subject line (default "flow notification").
    pub subject: String,
    /// `username`: SMTP login, with `password`.
    pub username: Option<String>,
    /// `password`: SMTP password, typically `"{{ env.SMTP_PASSWORD }}"`.
    pub password: Option<String>,
}

impl EmailChannel {
    /// The port used: `smtp_port`, or the usual one for `tls`.
    pub fn port(&self) -> u16 {
        self.smtp_port.unwrap_or(match self.tls {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        })
    }
}

impl fmt::Debug for EmailChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailChannel")
            .field("smtp_host", &self.smtp_host)
            .field("smtp_port", &self.smtp_port)
            .field("tls", &self.tls)
            .field("from", &self.from)
            .field("subject", &self.subject)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmtpTls {
    /// `none`: plain text (a local relay or a test server only).
    None,
    /// `starttls`: plain text upgraded with STARTTLS, which is required.
    #[default]
    Starttls,
    /// `tls`: TLS from the first byte (SMTPS).
    Tls,
}

/// The `log` channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChannel {
    /// `level`: `error`, `warn` (default: shown by the CLI without `-v`), `info` or `debug`.
    pub level: tracing::Level,
}

impl Default for LogChannel {
    fn default() -> Self {
        LogChannel {
            level: tracing::Level::WARN,
        }
    }
}

/// What became of the delivery to one recipient: one entry of a `notify` output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    /// The recipient as configured.
    pub recipient: String,
    /// Whether it was delivered.
    pub ok: bool,
    /// On success: the HTTP status (webhook), the SMTP reply code (email) or `"logged"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
    /// On failure: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long the delivery took, in milliseconds.
    pub duration_ms: f64,
}

fn parse(config: &Value, mode: Mode) -> Result<NotifyConfig, Vec<ConfigProblem>> {
    let mut r = Reader::new(mode);
    // The channel decides which other fields belong; until it is known, all do.
    let named = config
        .get("channel")
        .and_then(Value::as_str)
        .filter(|_| !r.deferred(&config["channel"]));
    let own: &[&str] = match named {
        Some("webhook") => WEBHOOK,
        Some("email") => EMAIL,
        Some("log") => LOG,
        _ => &[],
    };
    let known: Vec<&str> = if own.is_empty() {
        [COMMON, WEBHOOK, EMAIL, LOG].concat()
    } else {
        [COMMON, own].concat()
    };
    let placeholder = NotifyConfig::new(Channel::Log(LogChannel::default()), "", Vec::new());
    let Some(map) = r.object("", config, &known) else {
        return r.finish(placeholder);
    };
    let mut out = placeholder;

    let channel = r.required(map, "", "channel");
    let channel = r.choice(channel, "channel", CHANNELS);
    out.channel = match channel {
        Some("webhook") => Channel::Webhook(webhook(&mut r, map)),
        Some("email") => Channel::Email(email(&mut r, map)),
        _ => Channel::Log(log(&mut r, map)),
    };
    if let Some(missing) = missing_feature(&out.channel) {
        r.problem("channel", missing);
    }

    let message = r.required(map, "", "message");
    if let Some(message) = message {
        if message.is_object() || message.is_array() {
            r.problem("message", format!("must be text, not {}", type_name(message)));
        } else if let Some(text) = r.string(Some(message), "message") {
            out.message = text;
        }
    }

    let recipients = r.required(map, "", "recipients");
    let listed = recipients.is_some_and(|v| !r.deferred(v));
    if let Some(recipients) = recipients.filter(|_| listed) {
        out.recipients = recipient_list(&mut r, recipients, channel);
    }

    if let Some(strategy) = field(map, "strategy") {
        out.strategy = self::strategy(&mut r, strategy);
    }
    if let Some(n) = r.integer(field(map, "min_success"), "min_success", 0, u64::from(u32::MAX)) {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if listed && n > out.recipients.len() {
            r.problem(
                "min_success",
                format!(
                    "is {n}, more than the {} recipients: it can never be met",
                    out.recipients.len()
                ),
            );
        }
        out.min_success = Some(n);
    }
    if let Some(ms) = r.integer(field(map, "timeout_ms"), "timeout_ms", 1, 24 * 3600 * 1000) {
        out.timeout = Duration::from_millis(ms);
    }
    r.finish(out)
}

fn missing_feature(channel: &Channel) -> Option<&'static str> {
    match channel {
        Channel::Webhook(_) if !cfg!(feature = "http") => {
            Some("the webhook channel needs flow-nodes' `http` feature, which this build leaves out")
        }
        Channel::Email(_) if !cfg!(feature = "email") => {
            Some("the email channel needs flow-nodes' `email` feature, which this build leaves out")
        }
        _ => None,
    }
}

fn recipient_list(r: &mut Reader, value: &Value, channel: Option<&str>) -> Vec<String> {
    let Value::Array(items) = value else {
        r.problem("recipients", format!("must be a list, not {}", type_name(value)));
        return Vec::new();
    };
    if items.is_empty() {
        r.problem("recipients", "must list at least one recipient");
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let place = format!("recipients[{i}]");
        let Some(text) = r.string(Some(item), &place) else {
            continue;
        };
        if !r.deferred(item) {
            if let Some(problem) = recipient_problem(channel, &text) {
                r.problem(place, problem);
            }
        }
        out.push(text);
    }
    out
}

/// What is wrong with a recipient that is not a template (never quoting it: a
/// webhook URL often is a secret).
fn recipient_problem(channel: Option<&str>, recipient: &str) -> Option<String> {
    match channel {
        #[cfg(feature = "http")]
        Some("webhook") => {
            let mut r = Reader::new(Mode::Run);
            crate::http::check_url(&mut r, recipient, "");
            r.into_problems().into_iter().next().map(|p| p.message)
        }
        #[cfg(feature = "email")]
        Some("email") => crate::email::address_problem(recipient),
        #[cfg(not(feature = "email"))]
        Some("email") if !recipient.contains('@') => Some("is not an email address".to_owned()),
        _ if recipient.trim().is_empty() => Some("must not be empty".to_owned()),
        _ => None,
    }
}

fn strategy(r: &mut Reader, value: &Value) -> StrategyConfig {
    let default = StrategyConfig::new(StrategyKind::AllSettled);
    if r.deferred(value) {
        return default;
    }
    let config = match value {
        Value::String(name) => match name.parse::<StrategyKind>() {
            Ok(kind) => StrategyConfig::new(kind),
            Err(e) => {
                r.problem("strategy", e.to_string());
                return default;
            }
        },
        Value::Object(map) => {
            if r.mode() == Mode::Check && map.values().any(is_template) {
                return default;
            }
            match serde_json::from_value::<StrategyConfig>(value.clone()) {
                Ok(config) => config,
                Err(e) => {
                    r.problem("strategy", format!("{e} (kind: sequential, parallel, all-settled or rate-limited; options: max_concurrency, per_second, burst, fail_fast)"));
                    return default;
                }
            }
        }
        other => {
            r.problem(
                "strategy",
                format!(
                    "must be a strategy name or a map like the workflow's strategy section, not {}",
                    short(other)
                ),
            );
            return default;
        }
    };
    if let Err(e) = config.build() {
        let field = e.field().to_owned();
        let text = e.to_string();
        let reason = text.strip_prefix(&format!("{field}: ")).unwrap_or(&text).to_owned();
        r.problem(field, reason);
        return default;
    }
    config
}

fn webhook(r: &mut Reader, map: &Map<String, Value>) -> WebhookChannel {
    let mut out = WebhookChannel::default();
    if let Some(payload) = field(map, "payload").filter(|v| !r.deferred(v)) {
        match payload {
            Value::Object(fields) => out.payload = fields.clone(),
            other => r.problem("payload", format!("must be a map of fields, not {}", type_name(other))),
        }
    }
    out.headers = r.text_map(field(map, "headers"), "headers", false);
    out
}

fn email(r: &mut Reader, map: &Map<String, Value>) -> EmailChannel {
    let host = r.required(map, "", "smtp_host");
    let from = r.required(map, "", "from");
    let mut out = EmailChannel {
        smtp_host: r.string(host, "smtp_host").unwrap_or_default(),
        smtp_port: r
            .integer(field(map, "smtp_port"), "smtp_port", 1, 65535)
            .and_then(|p| u16::try_from(p).ok()),
        tls: SmtpTls::default(),
        from: r.string(from, "from").unwrap_or_default(),
        subject: r
            .string(field(map, "subject"), "subject")
            .unwrap_or_else(|| "flow notification".to_owned()),
        username: r.string(field(map, "username"), "username"),
        password: r.string(field(map, "password"), "password"),
    };
    if host.is_some_and(|h| !r.deferred(h)) && out.smtp_host.trim().is_empty() {
        r.problem("smtp_host", "must not be empty");
    }
    if let Some(from) = from.filter(|f| !r.deferred(f)) {
        if let Some(problem) = recipient_problem(Some("email"), from.as_str().unwrap_or_default()) {
            r.problem("from", problem);
        }
    }
    if let Some(tls) = r.choice(field(map, "tls"), "tls", &["none", "starttls", "tls"]) {
        out.tls = match tls {
            "none" => SmtpTls::None,
            "tls" => SmtpTls::Tls,
            _ => SmtpTls::Starttls,
        };
    }
    match (field(map, "username").is_some(), field(map, "password").is_some()) {
        (true, false) => r.problem("password", "is required with `username`"),
        (false, true) => r.problem("username", "is required with `password`"),
        _ => {}
    }
    out
}

fn log(r: &mut Reader, map: &Map<String, Value>) -> LogChannel {
    let level = match r.choice(field(map, "level"), "level", &["error", "warn", "info", "debug"]) {
        Some("error") => tracing::Level::ERROR,
        Some("info") => tracing::Level::INFO,
        Some("debug") => tracing::Level::DEBUG,
        _ => tracing::Level::WARN,
    };
    LogChannel { level }
}

/// The `notify` node kind.
pub struct Notify {
    #[cfg(feature = "http")]
    client: Result<reqwest::Client, String>,
}

impl fmt::Debug for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notify").finish_non_exhaustive()
    }
}

impl Default for Notify {
    fn default() -> Self {
        Notify::new()
    }
}

impl Notify {
    /// The kind, with its own HTTP client for webhooks.
    pub fn new() -> Notify {
        #[cfg(feature = "http")]
        {
            Notify::with_http(&crate::Http::new())
        }
        #[cfg(not(feature = "http"))]
        {
            Notify {}
        }
    }

    /// The kind, posting webhooks through `http`'s connection pool.
    #[cfg(feature = "http")]
    pub fn with_http(http: &crate::Http) -> Notify {
        Notify { client: http.client() }
    }

    /// Sends the message to every recipient, side by side as `config.strategy`
    /// says, and returns one [`Delivery`] per recipient, in order. Fails only when
    /// the channel cannot be set up (a bad address, a missing feature).
    pub async fn deliver(&self, config: &NotifyConfig) -> Result<Vec<Delivery>, NodeError> {
        let strategy = config
            .strategy
            .build()
            .map_err(|e| NodeError::permanent(format!("config.{e}")))?;
        let sender = self.sender(config)?;
        let sender = &sender;
        // Collected first: a lazy `map` held across the await trips rustc's `Send`
        // check of the node's future (higher-ranked closure lifetimes).
        let branches: Vec<_> = config
            .recipients
            .iter()
            .map(|recipient| deliver_one(sender, recipient, config.timeout))
            .collect();
        let outcomes = flow_strategy::run(&*strategy, branches).await;
        Ok(config
            .recipients
            .iter()
            .zip(outcomes)
            .map(|(recipient, outcome)| {
                let (ok, status, error, duration_ms) = match outcome {
                    Outcome::Ok((status, ms)) => (true, Some(status), None, ms),
                    Outcome::Err((error, ms)) => (false, None, Some(error), ms),
                    Outcome::Cancelled => (
                        false,
                        None,
                        Some(format!(
                            "cancelled: another delivery failed and the {} strategy fails fast",
                            strategy.name()
                        )),
                        0.0,
                    ),
                };
                Delivery {
                    recipient: recipient.clone(),
                    ok,
                    status,
                    error,
                    duration_ms,
                }
            })
            .collect())
    }

    /// [`Notify::deliver`], then the node's verdict: an error naming every failed
    /// recipient unless at least `min_success` (default: all) were delivered.
    pub async fn run(&self, config: &NotifyConfig) -> Result<Vec<Delivery>, NodeError> {
        let deliveries = self.deliver(config).await?;
        let delivered = deliveries.iter().filter(|d| d.ok).count();
        let needed = config.min_success.unwrap_or(deliveries.len());
        if delivered >= needed {
            return Ok(deliveries);
        }
        let failed: Vec<String> = deliveries
            .iter()
            .filter(|d| !d.ok)
            .map(|d| format!("{}: {}", d.recipient, d.error.as_deref().unwrap_or("failed")))
            .collect();
        Err(NodeError::new(format!(
            "{} of {} recipients failed ({delivered} delivered, {needed} needed): {}",
            failed.len(),
            deliveries.len(),
            failed.join("; ")
        )))
    }

    fn sender<'a>(&'a self, config: &'a NotifyConfig) -> Result<Sender<'a>, NodeError> {
        if let Some(missing) = missing_feature(&config.channel) {
            return Err(NodeError::permanent(format!("config.channel: {missing}")));
        }
        match &config.channel {
            #[cfg(feature = "http")]
            Channel::Webhook(webhook) => {
                let client = self
                    .client
                    .as_ref()
                    .map_err(|e| NodeError::permanent(format!("the HTTP client could not be built: {e}")))?;
                let mut body = Map::new();
                body.insert("text".into(), Value::String(config.message.clone()));
                for (k, v) in &webhook.payload {
                    body.insert(k.clone(), v.clone());
                }
                let body = serde_json::to_vec(&Value::Object(body))
                    .map_err(|e| NodeError::permanent(format!("config.payload: {e}")))?;
                Ok(Sender::Webhook {
                    client,
                    body,
                    headers: webhook_headers(&webhook.headers)?,
                    timeout: config.timeout,
                })
            }
            #[cfg(feature = "email")]
            Channel::Email(email) => Ok(Sender::Email {
                mailer: Box::new(crate::email::Mailer::new(email, config.timeout)?),
                message: &config.message,
            }),
            Channel::Log(log) => Ok(Sender::Log {
                level: log.level,
                message: &config.message,
            }),
            #[allow(unreachable_patterns)]
            other => Err(NodeError::permanent(format!(
                "config.channel: {} is not available",
                other.name()
            ))),
        }
    }
}

/// One delivery, timed: the status or the reason, each with the milliseconds it took.
async fn deliver_one(sender: &Sender<'_>, recipient: &str, timeout: Duration) -> Result<(Value, f64), (String, f64)> {
    let started = Instant::now();
    let result = match tokio::time::timeout(timeout, sender.send(recipient)).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "timed out after {} ms (config.timeout_ms)",
            timeout.as_millis()
        )),
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    result.map(|status| (status, ms)).map_err(|error| (error, ms))
}

#[cfg(feature = "http")]
fn webhook_headers(headers: &[(String, String)]) -> Result<reqwest::header::HeaderMap, NodeError> {
    use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let place = crate::fields::join("config.headers", name);
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| NodeError::permanent(format!("{place}: is not a valid header name")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| NodeError::permanent(format!("{place}: is not a valid header value (control characters?)")))?;
        map.append(name, value);
    }
    map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(map)
}

/// One channel, set up once per run, sending to one recipient at a time.
enum Sender<'a> {
    #[cfg(feature = "http")]
    Webhook {
        client: &'a reqwest::Client,
        body: Vec<u8>,
        headers: reqwest::header::HeaderMap,
        timeout: Duration,
    },
    #[cfg(feature = "email")]
    Email {
        mailer: Box<crate::email::Mailer>,
        message: &'a str,
    },
    Log {
        level: tracing::Level,
        message: &'a str,
    },
}

impl Sender<'_> {
    /// Delivers to one recipient: the status on success, the reason on failure.
    async fn send(&self, recipient: &str) -> Result<Value, String> {
        match self {
            #[cfg(feature = "http")]
            Sender::Webhook {
                client,
                body,
                headers,
                timeout,
            } => {
                let url = reqwest::Url::parse(recipient).map_err(|e| format!("not a valid URL: {e}"))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(format!("must be an http or https URL, not {}", url.scheme()));
                }
                let mut response = client
                    .post(url)
                    .headers(headers.clone())
                    .body(body.clone())
                    .timeout(*timeout)
                    .send()
                    .await
                    .map_err(|e| crate::http::transport_error(e, *timeout).message().to_owned())?;
                let status = response.status();
                if status.is_success() {
                    return Ok(Value::from(status.as_u16()));
                }
                let quoted = crate::http::body_start(&mut response, crate::http::QUOTED_BODY_BYTES).await;
                Err(if quoted.is_empty() {
                    format!("status {status}")
                } else {
                    format!("status {status}; body: {quoted}")
                })
            }
            #[cfg(feature = "email")]
            Sender::Email { mailer, message } => mailer.send(recipient, message).await.map(Value::from),
            Sender::Log { level, message } => {
                match *level {
                    tracing::Level::ERROR => tracing::error!(target: "flow::notify", recipient, "{message}"),
                    tracing::Level::INFO => tracing::info!(target: "flow::notify", recipient, "{message}"),
                    tracing::Level::DEBUG => tracing::debug!(target: "flow::notify", recipient, "{message}"),
                    _ => tracing::warn!(target: "flow::notify", recipient, "{message}"),
                }
                Ok(Value::from("logged"))
            }
        }
    }
}

#[async_trait::async_trait]
impl NodeKind for Notify {
    fn check(&self, config: &Value) -> Vec<ConfigProblem> {
        NotifyConfig::problems(config)
    }

    async fn run(&self, call: NodeCall) -> Result<Value, NodeError> {
        let config = NotifyConfig::from_value(&call.config)?;
        let span = tracing::info_span!("notify", node = &*call.node_id, channel = config.channel.name());
        let deliveries = Notify::run(self, &config).instrument(span).await?;
        serde_json::to_value(deliveries).map_err(|e| NodeError::permanent(format!("output: {e}")))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn paths(config: Value) -> Vec<String> {
        NotifyConfig::problems(&config).into_iter().map(|p| p.path).collect()
    }

    #[cfg(feature = "http")]
    #[test]
    fn reads_a_webhook_config() {
        let config = NotifyConfig::from_value(&json!({
            "channel": "webhook",
            "message": "hi",
            "recipients": ["http://127.0.0.1:1/a", "http://127.0.0.1:1/b"],
            "payload": { "username": "flow" },
            "strategy": { "kind": "all-settled", "max_concurrency": 1 },
            "min_success": 1,
        }))
        .unwrap();
        assert_eq!(config.recipients.len(), 2);
        assert_eq!(config.strategy.max_concurrency, Some(1));
        assert_eq!(config.min_success, Some(1));
        assert!(matches!(config.channel, Channel::Webhook(ref w) if w.payload["username"] == "flow"));
    }

    #[test]
    fn check_names_every_field() {
        assert_eq!(paths(json!({})), ["channel", "message", "recipients"]);
        assert_eq!(
            paths(json!({ "channel": "pigeon", "message": "x", "recipients": ["a"] })),
            ["channel"]
        );
        assert_eq!(
            paths(json!({ "channel": "log", "message": "x", "recipients": [], "min_success": 2 })),
            ["recipients", "min_success"]
        );
        assert_eq!(
            paths(json!({ "channel": "log", "message": "x", "recipients": ["a"], "strategy": "fastest" })),
            ["strategy"]
        );
        assert_eq!(
            paths(
                json!({ "channel": "log", "message": "x", "recipients": ["a"], "strategy": { "kind": "rate-limited" } })
            ),
            ["strategy.per_second"]
        );
        assert_eq!(
            paths(json!({ "channel": "log", "message": "x", "recipients": ["a"], "payload": {} })),
            ["payload"]
        );
        assert!(
            paths(json!({ "channel": "log", "message": "{{ input.m }}", "recipients": "{{ input.r }}" })).is_empty()
        );
    }

    #[cfg(all(feature = "http", feature = "email"))]
    #[test]
    fn check_names_channel_fields() {
        assert_eq!(
            paths(
                json!({ "channel": "email", "message": "x", "recipients": ["a@b.example", "nobody"], "username": "u" })
            ),
            ["smtp_host", "from", "password", "recipients[1]"]
        );
        assert_eq!(
            paths(json!({ "channel": "webhook", "message": "x", "recipients": ["not a url", "{{ input.hook }}"] })),
            ["recipients[0]"]
        );
    }

    #[cfg(not(feature = "email"))]
    #[test]
    fn email_needs_its_feature() {
        let problems = NotifyConfig::problems(&json!({
            "channel": "email", "message": "x", "recipients": ["a@b.example"], "smtp_host": "h", "from": "f@b.example"
        }));
        assert_eq!(problems[0].path, "channel");
        assert!(problems[0].message.contains("`email` feature"));
    }

    #[tokio::test]
    async fn log_channel_delivers_to_everyone() {
        let config = NotifyConfig::new(
            Channel::Log(LogChannel::default()),
            "hello",
            vec!["ops".into(), "dev".into()],
        );
        let deliveries = Notify::new().run(&config).await.unwrap();
        assert_eq!(deliveries.len(), 2);
        assert!(deliveries.iter().all(|d| d.ok && d.status == Some(json!("logged"))));
    }
}
