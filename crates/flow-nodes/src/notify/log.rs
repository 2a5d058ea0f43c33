//! The `log` channel of `notify`: the message written through `tracing`, once per
//! recipient (target `flow::notify`).

use serde_json::Value;

use super::{LogChannel, NotifyConfig, Sender};

pub(super) fn sender<'a>(channel: &LogChannel, config: &'a NotifyConfig) -> Box<dyn Sender + 'a> {
    Box::new(Log {
        level: channel.level,
        message: &config.message,
    })
}

struct Log<'a> {
    level: tracing::Level,
    message: &'a str,
}

#[async_trait::async_trait]
impl Sender for Log<'_> {
    async fn send(&self, recipient: &str, _key: Option<&str>) -> Result<Value, String> {
        let message = self.message;
        match self.level {
            tracing::Level::ERROR => tracing::error!(target: "flow::notify", recipient, "{message}"),
            tracing::Level::INFO => tracing::info!(target: "flow::notify", recipient, "{message}"),
            tracing::Level::DEBUG => tracing::debug!(target: "flow::notify", recipient, "{message}"),
            _ => tracing::warn!(target: "flow::notify", recipient, "{message}"),
        }
        Ok(Value::from("logged"))
    }
}
