//! The `email` channel of `notify` (feature `email`): SMTP through lettre, with
//! rustls; a delivery with an idempotency key gets a `Message-ID` made from it.

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

/// The `Message-ID` of the delivery whose idempotency key is `key`: `<key@flow>`,
/// with every run of characters that a dot-atom does not allow (`:` among them)
/// made one `.`, so the same key always gives the same, valid id. `None` when
/// nothing of the key is left.
pub(super) fn message_id(key: &str) -> Option<String> {
    let mut id = String::with_capacity(key.len());
    for c in key.chars() {
        if is_atext(c) {
            id.push(c);
        } else if !id.is_empty() && !id.ends_with('.') {
            id.push('.');
        }
    }
    let id = id.trim_end_matches('.');
    (!id.is_empty()).then(|| format!("<{id}@flow>"))
}

/// Whether `c` may appear in an RFC 5322 atom (`atext`).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
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
    async fn send(&self, recipient: &str, key: Option<&str>) -> Result<Value, String> {
        let to: Mailbox = recipient
            .parse()
            .map_err(|e| format!("not a valid email address: {e}"))?;
        let mut message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(self.subject.clone())
            .header(ContentType::TEXT_PLAIN);
        // Without a key, no Message-ID: the relay adds one, as before.
        if let Some(id) = key.and_then(message_id) {
            message = message.message_id(Some(id));
        }
        let message = message
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_stable_dot_atoms() {
        let run = "0190b0c4-7d1e-7a3b-9c2d-5e6f7a8b9c0d";
        assert_eq!(
            message_id(&format!("{run}:send-mail")).as_deref(),
            Some("<0190b0c4-7d1e-7a3b-9c2d-5e6f7a8b9c0d.send-mail@flow>")
        );
        assert_eq!(
            message_id(&format!("{run}:mail:3:1")).as_deref(),
            Some("<0190b0c4-7d1e-7a3b-9c2d-5e6f7a8b9c0d.mail.3.1@flow>")
        );
        // Runs of other characters become one dot; none leads or trails.
        assert_eq!(message_id(":a b..c<>@é:").as_deref(), Some("<a.b.c@flow>"));
        assert_eq!(message_id("order#7").as_deref(), Some("<order#7@flow>"));
        assert_eq!(message_id(":::"), None);
        assert_eq!(message_id(""), None);
    }
}
