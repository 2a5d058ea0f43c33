//! The `webhook` channel of `notify` (feature `http`): a JSON POST to each
//! recipient URL, through the `http` kind's connection pool, with the delivery's
//! `Idempotency-Key` when it has one.

use std::time::Duration;

use flow_core::NodeError;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::{Map, Value};

use super::{Notify, NotifyConfig, Sender, WebhookChannel};
use crate::Http;
use crate::net::{QUOTED_BODY_BYTES, add_idempotency_key, body_start, parse_url, request_headers, transport_error};

/// This build has the channel.
pub(super) const UNAVAILABLE: Option<&str> = None;

/// The client webhooks are posted with: the `http` kind's client that follows no
/// redirects, or why it could not be built.
pub(super) struct Client(Result<reqwest::Client, String>);

impl Client {
    /// A client of its own.
    pub(super) fn new() -> Client {
        Client(Http::new().client())
    }
}

impl Notify {
    /// The kind, posting webhooks through `http`'s connection pool.
    pub fn with_http(http: &Http) -> Notify {
        Notify {
            webhooks: Client(http.client()),
        }
    }
}

/// What is wrong with a recipient URL, never quoting it: a webhook URL often is a
/// secret.
pub(super) fn url_problem(url: &str) -> Option<String> {
    parse_url(url).err()
}

/// The request every recipient gets, built once.
pub(super) fn sender<'a>(
    client: &'a Client,
    channel: &WebhookChannel,
    config: &NotifyConfig,
) -> Result<Box<dyn Sender + 'a>, NodeError> {
    let client = client
        .0
        .as_ref()
        .map_err(|e| NodeError::permanent(format!("the HTTP client could not be built: {e}")))?;
    let mut body = Map::new();
    body.insert("text".into(), Value::String(config.message.clone()));
    for (k, v) in &channel.payload {
        body.insert(k.clone(), v.clone());
    }
    let body =
        serde_json::to_vec(&Value::Object(body)).map_err(|e| NodeError::permanent(format!("config.payload: {e}")))?;
    let mut headers = request_headers(&channel.headers)?;
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(Box::new(Webhook {
        client,
        body,
        headers,
        timeout: config.timeout,
    }))
}

struct Webhook<'a> {
    client: &'a reqwest::Client,
    body: Vec<u8>,
    headers: HeaderMap,
    timeout: Duration,
}

#[async_trait::async_trait]
impl Sender for Webhook<'_> {
    async fn send(&self, recipient: &str, key: Option<&str>) -> Result<Value, String> {
        let url = parse_url(recipient)?;
        let mut headers = self.headers.clone();
        if let Some(key) = key {
            add_idempotency_key(&mut headers, key, "the idempotency key (run id and node id)")
                .map_err(|e| e.message().to_owned())?;
        }
        let mut response = self
            .client
            .post(url)
            .headers(headers)
            .body(self.body.clone())
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| transport_error(e, self.timeout).message().to_owned())?;
        let status = response.status();
        if status.is_success() {
            return Ok(Value::from(status.as_u16()));
        }
        let quoted = body_start(&mut response, QUOTED_BODY_BYTES).await;
        Err(if quoted.is_empty() {
            format!("status {status}")
        } else {
            format!("status {status}; body: {quoted}")
        })
    }
}
