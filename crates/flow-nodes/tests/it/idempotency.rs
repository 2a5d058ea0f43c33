//! `Idempotency-Key` on `http` requests and webhooks, and the `Message-ID` of
//! emails: the call's key, the same on every attempt.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, Method};
use axum::routing::any;
use flow_core::{Context, Format, Limits, NodeCall, NodeKind, Registry, Workflow};
use flow_nodes::{Http, Noop, Notify, registry};
use serde_json::{Value, json};

use crate::serve;

const RUN: &str = "0190b0c4-7d1e-7a3b-9c2d-5e6f7a8b9c0d";

/// What a server saw of one request: its method and every `Idempotency-Key` sent.
type Seen = Arc<Mutex<Vec<(Method, Vec<String>)>>>;

/// A server on 127.0.0.1 that answers every request with 200 and records it.
async fn recorder() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let base = serve(
        Router::new().fallback(any(move |method: Method, headers: HeaderMap| async move {
            let keys = headers
                .get_all("idempotency-key")
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect();
            s.lock().unwrap().push((method, keys));
            "ok"
        })),
    )
    .await;
    (base, seen)
}

/// The first attempt of node `node` of run `run_id`, with this (rendered) config.
fn call(node: &str, run_id: &str, config: Value) -> NodeCall {
    let mut registry = Registry::new();
    registry.register("noop", Noop);
    let text = r#"{ "name": "t", "nodes": [{ "id": "a", "kind": "noop" }] }"#;
    let workflow = Workflow::from_str(text, Format::Json, &registry, &Limits::default()).unwrap();
    let context = Context::for_run(Arc::new(workflow), Value::Null, BTreeMap::new(), run_id.into());
    NodeCall::new(node.into(), Arc::new(config), context)
}

/// Runs `call` through `kind` and returns the keys the server saw, then forgets them.
async fn keys_sent(kind: &dyn NodeKind, call: NodeCall, seen: &Seen) -> Vec<Vec<String>> {
    kind.run(call).await.unwrap();
    let mut seen = seen.lock().unwrap();
    let keys = seen.iter().map(|(_, keys)| keys.clone()).collect();
    seen.clear();
    keys
}

fn one(key: &str) -> Vec<Vec<String>> {
    vec![vec![key.to_owned()]]
}

#[tokio::test]
async fn http_writes_carry_the_run_and_node_key_on_every_attempt() {
    let (base, seen) = recorder().await;
    let http = Http::new();
    let key = format!("{RUN}:create");
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let config = json!({ "method": method, "url": format!("{base}/orders"), "body": { "n": 1 } });
        assert_eq!(
            keys_sent(&http, call("create", RUN, config), &seen).await,
            one(&key),
            "{method}"
        );
    }

    let config = json!({ "method": "POST", "url": format!("{base}/orders") });
    let mut retry = call("create", RUN, config.clone());
    retry.attempt = 2;
    assert_eq!(keys_sent(&http, retry, &seen).await, one(&key));

    let mut item = call("create", RUN, config.clone());
    item.item = Some(3);
    assert_eq!(keys_sent(&http, item, &seen).await, one(&format!("{key}:3")));

    // A call outside a run (empty run id) has no key to send.
    assert_eq!(
        keys_sent(&http, call("create", "", config), &seen).await,
        [Vec::<String>::new()]
    );
}

#[tokio::test]
async fn http_reads_send_no_key_by_default() {
    let (base, seen) = recorder().await;
    let http = Http::new();
    for method in ["GET", "HEAD", "OPTIONS"] {
        let config = json!({ "method": method, "url": format!("{base}/orders") });
        assert_eq!(
            keys_sent(&http, call("list", RUN, config), &seen).await,
            [Vec::<String>::new()],
            "{method}"
        );
    }
    let config = json!({ "url": format!("{base}/orders"), "idempotency_key": true });
    assert_eq!(
        keys_sent(&http, call("list", RUN, config), &seen).await,
        one(&format!("{RUN}:list"))
    );
}

#[tokio::test]
async fn http_idempotency_key_overrides() {
    let (base, seen) = recorder().await;
    let http = Http::new();
    let url = format!("{base}/orders");

    let off = json!({ "method": "POST", "url": url, "idempotency_key": false });
    assert_eq!(
        keys_sent(&http, call("create", RUN, off), &seen).await,
        [Vec::<String>::new()]
    );

    // A string (a rendered template, say) is the key, whatever the method.
    for method in ["POST", "GET"] {
        let fixed = json!({ "method": method, "url": url, "idempotency_key": "order-7" });
        assert_eq!(
            keys_sent(&http, call("create", RUN, fixed), &seen).await,
            one("order-7")
        );
    }

    // An explicit header wins over the default and over the field: never two keys.
    for setting in [Value::Null, json!(true), json!("order-7")] {
        let explicit = json!({
            "method": "POST", "url": url,
            "headers": { "IDEMPOTENCY-KEY": "mine" },
            "idempotency_key": setting,
        });
        assert_eq!(
            keys_sent(&http, call("create", RUN, explicit), &seen).await,
            one("mine")
        );
    }
}

#[test]
fn a_bad_idempotency_key_is_a_config_problem() {
    let registry = registry();
    let http = registry.get("http").unwrap();
    for bad in [json!([1]), json!({ "key": "k" }), json!("")] {
        let problems = http.check(&json!({ "method": "POST", "url": "http://x.test/", "idempotency_key": bad }));
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["idempotency_key"], "{bad}: {problems:?}");
    }
    for good in [json!(false), json!(true), json!("k-{{ input.id }}"), json!("order-7")] {
        let problems = http.check(&json!({ "method": "POST", "url": "http://x.test/", "idempotency_key": good }));
        assert!(problems.is_empty(), "{good}: {problems:?}");
    }
}

#[tokio::test]
async fn webhooks_carry_a_key_per_delivery() {
    let (base, seen) = recorder().await;
    let notify = Notify::with_http(&Http::new());
    let hook = format!("{base}/hook");

    let single = json!({ "channel": "webhook", "message": "hi", "recipients": [hook] });
    let key = format!("{RUN}:announce");
    assert_eq!(
        keys_sent(&notify, call("announce", RUN, single.clone()), &seen).await,
        one(&key)
    );
    let mut retry = call("announce", RUN, single.clone());
    retry.attempt = 3;
    assert_eq!(keys_sent(&notify, retry, &seen).await, one(&key));
    let mut item = call("announce", RUN, single);
    item.item = Some(0);
    assert_eq!(keys_sent(&notify, item, &seen).await, one(&format!("{key}:0")));

    // Several recipients: each delivery has a key of its own (the same URL twice too).
    let several = json!({
        "channel": "webhook", "message": "hi", "recipients": [hook, hook],
        "strategy": "sequential",
    });
    assert_eq!(
        keys_sent(&notify, call("announce", RUN, several), &seen).await,
        [vec![format!("{key}:0")], vec![format!("{key}:1")]]
    );

    let explicit = json!({
        "channel": "webhook", "message": "hi", "recipients": [hook],
        "headers": { "Idempotency-Key": "mine" },
    });
    assert_eq!(
        keys_sent(&notify, call("announce", RUN, explicit), &seen).await,
        one("mine")
    );

    let outside = json!({ "channel": "webhook", "message": "hi", "recipients": [hook] });
    assert_eq!(
        keys_sent(&notify, call("announce", "", outside), &seen).await,
        [Vec::<String>::new()]
    );
}

#[cfg(feature = "email")]
#[tokio::test]
async fn emails_get_a_message_id_from_the_key() {
    let (port, inbox) = smtp::sink().await;
    let notify = Notify::new();
    let config = |recipients: Value| {
        json!({
            "channel": "email", "message": "hi", "recipients": recipients, "strategy": "sequential",
            "smtp_host": "127.0.0.1", "smtp_port": port, "tls": "none", "from": "flow@example.com",
        })
    };
    let message_ids = || -> Vec<Option<String>> {
        let mut inbox = inbox.lock().unwrap();
        let ids = inbox.iter().map(|data| smtp::header(data, "Message-ID")).collect();
        inbox.clear();
        ids
    };
    let id = format!("<{RUN}.mail@flow>");

    for attempt in [1, 2] {
        let mut first = call("mail", RUN, config(json!(["ops@example.com"])));
        first.attempt = attempt;
        NodeKind::run(&notify, first).await.unwrap();
        assert_eq!(message_ids(), [Some(id.clone())]);
    }

    let mut item = call("mail", RUN, config(json!(["ops@example.com", "dev@example.com"])));
    item.item = Some(2);
    NodeKind::run(&notify, item).await.unwrap();
    assert_eq!(
        message_ids(),
        [
            Some(format!("<{RUN}.mail.2.0@flow>")),
            Some(format!("<{RUN}.mail.2.1@flow>"))
        ]
    );

    // Outside a run, flow sets no Message-ID (the relay adds one).
    let outside = call("mail", "", config(json!(["ops@example.com"])));
    NodeKind::run(&notify, outside).await.unwrap();
    assert_eq!(message_ids(), [None]);
}

/// Just enough of an SMTP server to take mail from lettre without TLS or login.
#[cfg(feature = "email")]
mod smtp {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    /// The DATA of every message received.
    pub type Inbox = Arc<Mutex<Vec<String>>>;

    /// A sink on a free port of 127.0.0.1: its port and what it receives.
    pub async fn sink() -> (u16, Inbox) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let inbox = Inbox::default();
        let shared = inbox.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(session(socket, shared.clone()));
            }
        });
        (port, inbox)
    }

    async fn session(socket: tokio::net::TcpStream, inbox: Inbox) -> std::io::Result<()> {
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read);
        write.write_all(b"220 sink.test ESMTP\r\n").await?;
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let command = line.trim_end().to_ascii_uppercase();
            let reply: &[u8] = if command.starts_with("EHLO") {
                b"250-sink.test\r\n250 8BITMIME\r\n"
            } else if command == "DATA" {
                write.write_all(b"354 go ahead\r\n").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 || line.trim_end() == "." {
                        break;
                    }
                    data.push_str(&line);
                }
                inbox.lock().unwrap().push(data);
                b"250 queued\r\n"
            } else if command == "QUIT" {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            } else {
                b"250 OK\r\n"
            };
            write.write_all(reply).await?;
        }
    }

    /// The value of header `name` in a message's DATA, if it has one.
    pub fn header(data: &str, name: &str) -> Option<String> {
        data.lines().take_while(|l| !l.is_empty()).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}
