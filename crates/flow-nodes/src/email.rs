//! The `email` channel of `notify`: SMTP through lettre, with rustls (feature `email`).

use std::time::Duration;

use flow_core::NodeError;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::fields::error_chain;
use crate::notify::{EmailChannel, SmtpTls};

/// Whether `text` is an address lettre accepts (`a@b.example` or `Name <a@b.example>`).
pub(crate) fn address_problem(text: &str) -> Option<String> {
    text.parse::<Mailbox>()
        .err()
        .map(|e| format!("is not a valid email address: {e}"))
}

/// One SMTP transport for one node's run; each recipient gets its own message
/// (and its own connection), sent concurrently.
pub(crate) struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    subject: String,
}

impl Mailer {
    pub(crate) fn new(channel: &EmailChannel, timeout: Duration) -> Result<Mailer, NodeError> {
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
            .timeout(Some(timeout));
        if let (Some(user), Some(password)) = (&channel.username, &channel.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
            subject: channel.subject.clone(),
        })
    }

    /// Sends `text` to `to`; the SMTP reply code on success.
    pub(crate) async fn send(&self, to: &str, text: &str) -> Result<u16, String> {
        let to: Mailbox = to.parse().map_err(|e| format!("not a valid email address: {e}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(self.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(text.to_owned())
            .map_err(|e| format!("the message could not be built: {e}"))?;
        let response = self
            .transport
            .send(message)
            .await
            .map_err(|e| format!("SMTP: {}", error_chain(&e)))?;
        Ok(response.code().to_string().parse().unwrap_or(250))
    }
}
