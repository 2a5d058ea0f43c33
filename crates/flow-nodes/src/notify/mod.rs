//! `notify`: one message to several recipients, delivered concurrently through a
//! flow-strategy of the node's own (default all-settled, so one bad recipient does
//! not stop the others).
//!
//! Here: the kind, its config's common fields and the deliveries. `channel` reads
//! what each channel's config says, whatever the build's features; each channel's
//! own module delivers: `log` always, `webhook` with the `http` feature, `email`
//! with the `email` feature. A build without one still reads its config, then
//! refuses it, naming the feature.

mod channel;
#[cfg(feature = "email")]
mod email;
mod log;
#[cfg(feature = "http")]
mod webhook;

use std::fmt;
use std::time::{Duration, Instant};

use flow_core::{ConfigProblem, NodeCall, NodeError, NodeKind};
use flow_strategy::{Outcome, StrategyConfig, StrategyKind};
use serde::Serialize;
use serde_json::Value;
use tracing::Instrument;

pub use channel::{EmailChannel, LogChannel, SmtpTls, WebhookChannel};

use crate::call_key;
use crate::config::{ConfigReader, ReadMode, config_error, field, is_template};
use crate::message::{short, type_name};

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
        parse(config, ReadMode::Run).map_err(config_error)
    }

    /// The problems of a config as written (templates are not judged).
    pub fn problems(config: &Value) -> Vec<ConfigProblem> {
        parse(config, ReadMode::Check).err().unwrap_or_default()
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

fn parse(config: &Value, mode: ReadMode) -> Result<NotifyConfig, Vec<ConfigProblem>> {
    let mut r = ConfigReader::new(mode);
    // The channel decides which other fields belong; until it is known, all do.
    let named = config
        .get("channel")
        .and_then(Value::as_str)
        .filter(|_| !r.deferred(&config["channel"]));
    let own: &[&str] = match named {
        Some("webhook") => WebhookChannel::FIELDS,
        Some("email") => EmailChannel::FIELDS,
        Some("log") => LogChannel::FIELDS,
        _ => &[],
    };
    let known: Vec<&str> = if own.is_empty() {
        [COMMON, WebhookChannel::FIELDS, EmailChannel::FIELDS, LogChannel::FIELDS].concat()
    } else {
        [COMMON, own].concat()
    };
    let placeholder = NotifyConfig::new(Channel::Log(LogChannel::default()), "", Vec::new());
    let Some(map) = r.object(config, "", &known) else {
        return r.finish(Some(placeholder));
    };
    let mut out = placeholder;

    let channel = r.required(map, "", "channel");
    let channel = r.choice(channel, "channel", CHANNELS);
    out.channel = match channel {
        Some("webhook") => Channel::Webhook(WebhookChannel::read(&mut r, map)),
        Some("email") => Channel::Email(EmailChannel::read(&mut r, map)),
        _ => Channel::Log(LogChannel::read(&mut r, map)),
    };
    if let Some(missing) = unavailable(&out.channel) {
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
    if let Some(n) = r.integer(field(map, "min_success"), "min_success", 0..=u64::from(u32::MAX)) {
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
    if let Some(ms) = r.integer(field(map, "timeout_ms"), "timeout_ms", 1..=24 * 3600 * 1000) {
        out.timeout = Duration::from_millis(ms);
    }
    r.finish(Some(out))
}

/// Why this build cannot deliver over `channel`, if it cannot.
fn unavailable(channel: &Channel) -> Option<&'static str> {
    match channel {
        Channel::Webhook(_) => webhook::UNAVAILABLE,
        Channel::Email(_) => email::UNAVAILABLE,
        Channel::Log(_) => None,
    }
}

fn recipient_list(r: &mut ConfigReader, value: &Value, channel: Option<&str>) -> Vec<String> {
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
        Some("webhook") => webhook::url_problem(recipient),
        Some("email") => email::address_problem(recipient),
        _ => blank_problem(recipient),
    }
}

fn blank_problem(recipient: &str) -> Option<String> {
    recipient.trim().is_empty().then(|| "must not be empty".to_owned())
}

fn strategy(r: &mut ConfigReader, value: &Value) -> StrategyConfig {
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
            if r.mode() == ReadMode::Check && map.values().any(is_template) {
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

/// The `notify` node kind.
pub struct Notify {
    webhooks: webhook::Client,
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
        Notify {
            webhooks: webhook::Client::new(),
        }
    }

    /// Sends the message to every recipient, side by side as `config.strategy`
    /// says, and returns one [`Delivery`] per recipient, in order. Fails only when
    /// the channel cannot be set up (a bad address, a missing feature).
    ///
    /// Without an engine's call there is no idempotency key: webhooks carry no
    /// `Idempotency-Key` and emails no `Message-ID` of flow's (see
    /// [`Notify::deliver_with_key`]).
    pub async fn deliver(&self, config: &NotifyConfig) -> Result<Vec<Delivery>, NodeError> {
        self.deliver_with_key(config, None).await
    }

    /// [`Notify::deliver`] for an attempt whose idempotency key is `key` (what
    /// [`NodeCall::idempotency_key`] gives in a run). Each delivery gets a key of
    /// its own, the same on every attempt: `key` itself when there is one
    /// recipient, else `key:<i>` for the recipient at 0-based position `i` of
    /// `recipients`. A webhook sends it as `Idempotency-Key` (unless its `headers`
    /// have one), an email as its `Message-ID`, `<key@flow>` (every character a
    /// message id does not allow, `:` included, made a `.`).
    pub async fn deliver_with_key(&self, config: &NotifyConfig, key: Option<&str>) -> Result<Vec<Delivery>, NodeError> {
        let strategy = config
            .strategy
            .build()
            .map_err(|e| NodeError::permanent(format!("config.{e}")))?;
        let sender = self.sender(config)?;
        let sender = &*sender;
        // Collected first: a lazy `map` held across the await trips rustc's `Send`
        // check of the node's future (higher-ranked closure lifetimes).
        let count = config.recipients.len();
        let branches: Vec<_> = config
            .recipients
            .iter()
            .enumerate()
            .map(|(i, recipient)| deliver_one(sender, recipient, delivery_key(key, i, count), config.timeout))
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
        self.run_with_key(config, None).await
    }

    /// [`Notify::run`] for an attempt whose idempotency key is `key`: see
    /// [`Notify::deliver_with_key`].
    pub async fn run_with_key(&self, config: &NotifyConfig, key: Option<&str>) -> Result<Vec<Delivery>, NodeError> {
        let deliveries = self.deliver_with_key(config, key).await?;
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

    /// The channel, set up once for every recipient.
    fn sender<'a>(&'a self, config: &'a NotifyConfig) -> Result<Box<dyn Sender + 'a>, NodeError> {
        if let Some(missing) = unavailable(&config.channel) {
            return Err(NodeError::permanent(format!("config.channel: {missing}")));
        }
        match &config.channel {
            Channel::Webhook(channel) => webhook::sender(&self.webhooks, channel, config),
            Channel::Email(channel) => email::sender(channel, config),
            Channel::Log(channel) => Ok(log::sender(channel, config)),
        }
    }
}

/// One channel, set up once per run, delivering to one recipient at a time.
#[async_trait::async_trait]
trait Sender: Send + Sync {
    /// Delivers to one recipient, with the delivery's idempotency key if it has
    /// one: the status on success, the reason on failure.
    async fn send(&self, recipient: &str, key: Option<&str>) -> Result<Value, String>;
}

/// The idempotency key of the delivery to the recipient at `index` of `count`:
/// the node's key when it is the only one, else `key:<index>`, so that no two
/// deliveries of one node share a key (a receiver may scope keys wider than one
/// URL, and one URL may be listed twice) and each keeps its own on every attempt.
fn delivery_key(key: Option<&str>, index: usize, count: usize) -> Option<String> {
    let key = key?;
    Some(if count == 1 {
        key.to_owned()
    } else {
        format!("{key}:{index}")
    })
}

/// One delivery, timed: the status or the reason, each with the milliseconds it took.
async fn deliver_one(
    sender: &dyn Sender,
    recipient: &str,
    key: Option<String>,
    timeout: Duration,
) -> Result<(Value, f64), (String, f64)> {
    let started = Instant::now();
    let result = match tokio::time::timeout(timeout, sender.send(recipient, key.as_deref())).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "timed out after {} ms (config.timeout_ms)",
            timeout.as_millis()
        )),
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    result.map(|status| (status, ms)).map_err(|error| (error, ms))
}

#[async_trait::async_trait]
impl NodeKind for Notify {
    fn check(&self, config: &Value) -> Vec<ConfigProblem> {
        NotifyConfig::problems(config)
    }

    async fn run(&self, call: NodeCall) -> Result<Value, NodeError> {
        let config = NotifyConfig::from_value(&call.config)?;
        let span = tracing::info_span!("notify", node = &*call.node_id, channel = config.channel.name());
        let deliveries = self
            .run_with_key(&config, call_key(&call).as_deref())
            .instrument(span)
            .await?;
        serde_json::to_value(deliveries).map_err(|e| NodeError::permanent(format!("output: {e}")))
    }
}

/// The webhook channel in a build without the `http` feature: read, then refused.
#[cfg(not(feature = "http"))]
mod webhook {
    use flow_core::NodeError;

    use super::{NotifyConfig, Sender, WebhookChannel};

    const MISSING: &str = "the webhook channel needs flow-nodes' `http` feature, which this build leaves out";
    pub(super) const UNAVAILABLE: Option<&str> = Some(MISSING);

    /// No client to hold.
    pub(super) struct Client;

    impl Client {
        pub(super) fn new() -> Client {
            Client
        }
    }

    pub(super) fn url_problem(url: &str) -> Option<String> {
        super::blank_problem(url)
    }

    pub(super) fn sender<'a>(
        _client: &'a Client,
        _channel: &WebhookChannel,
        _config: &NotifyConfig,
    ) -> Result<Box<dyn Sender + 'a>, NodeError> {
        Err(NodeError::permanent(format!("config.channel: {MISSING}")))
    }
}

/// The email channel in a build without the `email` feature: read, then refused.
#[cfg(not(feature = "email"))]
mod email {
    use flow_core::NodeError;

    use super::{EmailChannel, NotifyConfig, Sender};

    const MISSING: &str = "the email channel needs flow-nodes' `email` feature, which this build leaves out";
    pub(super) const UNAVAILABLE: Option<&str> = Some(MISSING);

    pub(super) fn address_problem(text: &str) -> Option<String> {
        (!text.contains('@')).then(|| "is not an email address".to_owned())
    }

    pub(super) fn sender<'a>(
        _channel: &EmailChannel,
        _config: &'a NotifyConfig,
    ) -> Result<Box<dyn Sender + 'a>, NodeError> {
        Err(NodeError::permanent(format!("config.channel: {MISSING}")))
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

    #[cfg(not(feature = "http"))]
    #[tokio::test]
    async fn webhook_needs_its_feature() {
        let problems = NotifyConfig::problems(&json!({
            "channel": "webhook", "message": "x", "recipients": ["http://x.test/hook"]
        }));
        assert_eq!(problems[0].path, "channel");
        assert!(problems[0].message.contains("`http` feature"));
        let config = NotifyConfig::new(
            Channel::Webhook(WebhookChannel::default()),
            "x",
            vec!["http://x.test/hook".into()],
        );
        let err = Notify::new().run(&config).await.unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.message().starts_with("config.channel: the webhook channel needs"));
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
