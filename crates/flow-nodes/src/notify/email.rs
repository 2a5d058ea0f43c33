//! The `email` channel of `notify` (feature `email`): SMTP through lettre, with
//! rustls.

use flow_core::NodeError;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;

use super::{EmailChannel, NotifyConfig, Sender, SmtpTls};
use crate::message::error_chain;

/// This build has the channel.
pub(super) const UNAVAILABLE: Option<&str> = None;

/// Whether `text` is an address lettre accepts (`a@b.example` or `Name <a@b.example>`).
pub(super) fn address_problem(text: &str) -> Option<String> {
    text.parse::<Mailbox>()
        .err()
        .map(|e| format!("is not a valid email address: {e}"))
}

/// One SMTP transport for one node's run; each recipient gets its own message
/// (and its own connection), sent concurrently.
pub(super) fn sender<'a>(channel: &EmailChannel, config: &'a NotifyConfig) -> Result<Box<dyn Sender + 'a>, NodeError> {
    let from: Mailbox = channel
        .from
        .parse()
        .map_err(|e| NodeError::permanent(format!("config.from: is not a valid email address: {e}")))?;
    let tls_parameters = || {
        TlsParameters::new(channel.smtp_host.clone())
            .map_err(|e| NodeError::permanent(format!("config.tls: TLS setup failed: {e}")))
    };
    let tls = match channel.tls {
        SmtpTls::None => Tls::None,
        SmtpTls::Starttls => Tls::Required(tls_parameters()?),
        SmtpTls::Tls => Tls::Wrapper(tls_parameters()?),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(channel.smtp_host.clone())
        .port(channel.port())
        .tls(tls)
        .timeout(Some(config.timeout));
    if let (Some(user), Some(password)) = (&channel.username, &channel.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    Ok(Box::new(Mailer {
        transport: builder.build(),
        from,
        subject: channel.subject.clone(),
        text: &config.message,
    }))
}

struct Mailer<'a> {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    subject: String,
    text: &'a str,
}

#[async_trait::async_trait]
impl Sender for Mailer<'_> {
    /// Sends the message to `recipient`; the SMTP reply code on success.
    async fn send(&self, recipient: &str) -> Result<Value, String> {
        let to: Mailbox = recipient
            .parse()
            .map_err(|e| format!("not a valid email address: {e}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(self.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(self.text.to_owned())
            .map_err(|e| format!("the message could not be built: {e}"))?;
        let response = self
            .transport
            .send(message)
            .await
            .map_err(|e| format!("SMTP: {}", error_chain(&e)))?;
        let code: u16 = response.code().to_string().parse().unwrap_or(250);
        Ok(Value::from(code))
    }
}
