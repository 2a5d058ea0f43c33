//! What each channel's config says, and how it is read. Always compiled: a build
//! without a channel's feature still reads its config, so every problem is
//! reported along with the missing feature.

use std::fmt;

use serde_json::{Map, Value};

use super::email;
use crate::config::{ConfigReader, field};
use crate::message::type_name;

/// The `webhook` channel: POSTs `{"text": message}` merged with `payload` — the
/// shape Slack, Mattermost and Discord (`/slack`) incoming webhooks accept. In a
/// run, each delivery carries an `Idempotency-Key` (see
/// [`Notify::deliver_with_key`](super::Notify::deliver_with_key)).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WebhookChannel {
    /// `payload`: fields added to the JSON body; a `text` here replaces the message.
    pub payload: Map<String, Value>,
    /// `headers`: extra request headers (an `Authorization`, say); an
    /// `Idempotency-Key` here is sent instead of flow's.
    pub headers: Vec<(String, String)>,
}

impl WebhookChannel {
    /// The channel's own fields.
    pub(super) const FIELDS: &[&str] = &["payload", "headers"];

    pub(super) fn read(r: &mut ConfigReader, map: &Map<String, Value>) -> WebhookChannel {
        let mut out = WebhookChannel::default();
        if let Some(payload) = field(map, "payload").filter(|v| !r.deferred(v)) {
            match payload {
                Value::Object(fields) => out.payload = fields.clone(),
                other => r.problem("payload", format!("must be a map of fields, not {}", type_name(other))),
            }
        }
        out.headers = r.text_map(field(map, "headers"), "headers");
        out
    }
}

/// The `email` channel: SMTP through lettre. In a run, each message's
/// `Message-ID` comes from the delivery's idempotency key (see
/// [`Notify::deliver_with_key`](super::Notify::deliver_with_key)).
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
    /// The channel's own fields.
    pub(super) const FIELDS: &[&str] = &[
        "smtp_host",
        "smtp_port",
        "tls",
        "from",
        "subject",
        "username",
        "password",
    ];

    /// The port used: `smtp_port`, or the usual one for `tls`.
    pub fn port(&self) -> u16 {
        self.smtp_port.unwrap_or(match self.tls {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        })
    }

    pub(super) fn read(r: &mut ConfigReader, map: &Map<String, Value>) -> EmailChannel {
        let host = r.required(map, "", "smtp_host");
        let from = r.required(map, "", "from");
        let mut out = EmailChannel {
            smtp_host: r.string(host, "smtp_host").unwrap_or_default(),
            smtp_port: r
                .integer(field(map, "smtp_port"), "smtp_port", 1..=65535)
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
            if let Some(problem) = email::address_problem(from.as_str().unwrap_or_default()) {
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

impl LogChannel {
    /// The channel's own fields.
    pub(super) const FIELDS: &[&str] = &["level"];

    pub(super) fn read(r: &mut ConfigReader, map: &Map<String, Value>) -> LogChannel {
        let level = match r.choice(field(map, "level"), "level", &["error", "warn", "info", "debug"]) {
            Some("error") => tracing::Level::ERROR,
            Some("info") => tracing::Level::INFO,
            Some("debug") => tracing::Level::DEBUG,
            _ => tracing::Level::WARN,
        };
        LogChannel { level }
    }
}

impl Default for LogChannel {
    fn default() -> Self {
        LogChannel {
            level: tracing::Level::WARN,
        }
    }
}
