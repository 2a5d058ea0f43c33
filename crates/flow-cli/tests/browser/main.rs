//! The web page of `flow serve` in a real browser: headless Chromium (Debian's
//! `chromium` and `chromium-driver`; `.ci/run` installs them) driven through
//! chromedriver with fantoccini, against the real `flow` binary.
//!
//! One test, one browser: start a run from the workflows page's form, watch a
//! node go from running to succeeded on the run's page without a reload, see
//! new runs come into the runs list by themselves, cancel a long run from its
//! page. With `FLOW_SAVE_SCREENSHOT=1` it also saves the finished run's page as
//! `docs/serve.png`.

mod driver;
mod http;
mod server;

use std::path::Path;
use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::json;

use driver::{Driver, Page};
use server::Server;

/// Fans out, waits on a slow node, merges: a run worth looking at. `load-orders`
/// runs for 2.5 s, so its page shows it running before it succeeds; `visit`
/// goes over the customers given in the form, three at a time.
const ORDER_SYNC: &str = r#"
name: order-sync
description: Customers visited three at a time beside a slow orders export, then merged.
strategy: { kind: parallel, max_concurrency: 8 }
input:
  customers: []
nodes:
  - id: fetch-customers
    kind: transform
    config: { output: "{{ input.customers }}" }
  - { id: load-orders, kind: delay, config: { ms: 2500 } }
  - { id: check-stock, kind: delay, config: { ms: 400 } }
  - id: visit
    kind: delay
    for_each: "{{ nodes['fetch-customers'].output }}"
    as: customer
    max_concurrency: 3
    config: { ms: "{{ customer.ms }}" }
  - id: merge
    kind: transform
    config:
      output:
        customers: "{{ nodes['fetch-customers'].output | map(attribute='name') | list }}"
        waited_ms: "{{ nodes.visit.output | map(attribute='slept_ms') | sum }}"
        orders_ms: "{{ nodes['load-orders'].output.slept_ms }}"
  - { id: publish, kind: delay, config: { ms: 150 } }
edges:
  - { from: fetch-customers, to: visit }
  - { from: visit, to: merge }
  - { from: load-orders, to: merge }
  - { from: check-stock, to: merge }
  - { from: merge, to: publish }
"#;

/// What the form sends: five customers for `visit`.
const ORDER_SYNC_INPUT: &str = r#"{"customers": [
  {"name": "ada", "ms": 600}, {"name": "grace", "ms": 250}, {"name": "linus", "ms": 450},
  {"name": "barbara", "ms": 300}, {"name": "ken", "ms": 500}]}"#;

/// A run that goes on for a minute unless it is cancelled.
const LONG_WAIT: &str = r#"
name: long-wait
nodes:
  - { id: wait, kind: delay, config: { ms: 60000 } }
"#;

/// A run that waits for an approval: parked until a signal comes.
const APPROVAL: &str = r#"
name: approval
nodes:
  - id: approve
    kind: signal
    config:
      name: approval
      timeout: 72h
      schema: { type: object, required: [approved], properties: { approved: { type: boolean } } }
  - { id: deploy, kind: noop }
edges: [{ from: approve, to: deploy }]
"#;

/// A parent whose node runs `child-step` as a child run.
const PARENT: &str = r#"
name: parent-calls
nodes:
  - { id: call, kind: workflow, config: { workflow: child-step, input: { n: 21 } } }
output: "{{ nodes.call.output }}"
"#;

const CHILD: &str = r#"
name: child-step
input: { n: 0 }
nodes:
  - { id: double, kind: transform, config: { output: "{{ input.n * 2 }}" } }
output: "{{ nodes.double.output }}"
"#;

const NODES: [&str; 6] = [
    "fetch-customers",
    "load-orders",
    "check-stock",
    "visit",
    "merge",
    "publish",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_starts_watches_and_cancels_runs() {
    let began = Instant::now();
    let server = Server::start(&[
        ("order-sync.yaml", ORDER_SYNC),
        ("long-wait.yaml", LONG_WAIT),
        ("approval.yaml", APPROVAL),
        ("parent-calls.yaml", PARENT),
        ("child-step.yaml", CHILD),
    ]);
    let driver = Driver::start().await;
    let client = driver.browser().await;
    let page = Page { client: &client };

    // The workflows page: both workflows, each with its form.
    client.goto(&server.url("/workflows")).await.expect("open /workflows");
    page.until_page("workflows", "/workflows").await;
    for name in ["order-sync", "long-wait"] {
        let item = format!(r#"#workflows [data-workflow="{name}"]"#);
        assert_eq!(page.attr(&item, "data-valid").await.as_deref(), Some("true"), "{item}");
        let form = format!(r#"form.start[data-workflow="{name}"] textarea[name="input"]"#);
        assert!(page.attr(&form, "name").await.is_some(), "no {form}");
    }

    // Start a run from the form, with its JSON input.
    let form = r#"form.start[data-workflow="order-sync"]"#;
    let textarea = client
        .find(Locator::Css(&format!("{form} textarea[name=\"input\"]")))
        .await
        .expect("the form's textarea");
    // Input that is not JSON is said in the form, and nothing starts.
    textarea.clear().await.expect("clear the textarea");
    textarea.send_keys("{oops").await.expect("type the input");
    page.click(&format!("{form} button[type=\"submit\"]")).await;
    let error = page
        .until("the form's error", || async {
            page.text(&format!("{form} .form-error"))
                .await
                .filter(|text| !text.is_empty())
        })
        .await;
    assert!(error.contains("not JSON"), "{error}");
    assert_eq!(page.eval("return location.pathname;").await, json!("/workflows"));
    textarea.clear().await.expect("clear the textarea");
    textarea.send_keys(ORDER_SYNC_INPUT).await.expect("type the input");
    page.click(&format!("{form} button[type=\"submit\"]")).await;

    // The form leads to the run's page, which follows the run by itself.
    let path = page.until_page("run", "/runs/").await;
    let run = page.attr("body", "data-run").await.expect("body[data-run]");
    assert_eq!(path, format!("/runs/{run}"));
    page.mark().await;
    let row = |node: &str| format!(r#"#nodes tr[data-node="{node}"]"#);
    let boxed = |node: &str| format!(r#"#graph [data-node="{node}"]"#);
    page.until_attr(&row("load-orders"), "data-status", "running").await;
    assert_eq!(
        page.attr("#run-status", "data-status").await.as_deref(),
        Some("running")
    );
    assert_eq!(
        page.attr("#cancel", "disabled").await,
        None,
        "Cancel is enabled while the run goes on"
    );
    page.until_attr(&boxed("load-orders"), "data-status", "running").await;
    page.until_attr(&row("load-orders"), "data-status", "succeeded").await;
    page.until_attr("#run-status", "data-status", "succeeded").await;
    let finished = Instant::now();
    assert_eq!(page.text("#run-status").await.as_deref(), Some("succeeded"));
    assert!(
        page.marked().await,
        "the run's page was reloaded: it should update in place"
    );
    for node in NODES {
        page.until_attr(&row(node), "data-status", "succeeded").await;
        page.until_attr(&boxed(node), "data-status", "succeeded").await;
    }
    let visit = page
        .text(&format!("{} .attempts", row("visit")))
        .await
        .unwrap_or_default();
    assert!(visit.contains("5/5 items"), "visit's attempts cell: {visit:?}");
    assert!(
        page.attr("#cancel", "disabled").await.is_some(),
        "no Cancel once the run is over"
    );
    assert!(
        page.attr("#retry", "disabled").await.is_some(),
        "no Retry for a run that succeeded"
    );
    assert!(
        page.attr("#message", "hidden").await.is_some(),
        "{:?}",
        page.text("#message").await
    );
    assert_eq!(
        server.get(&format!("/api/v1/runs/{run}")).await["status"],
        json!("succeeded")
    );

    // The timeline is drawn again after the last change (at most once a second).
    tokio::time::sleep(Duration::from_millis(1500).saturating_sub(finished.elapsed())).await;
    page.until("the timeline image", || async {
        let loaded = "var i = document.getElementById('timeline'); \
                      return !!i && i.complete && i.naturalWidth > 0 && i.src.indexOf('?t=') > 0;";
        (page.eval(loaded).await == json!(true)).then_some(())
    })
    .await;
    assert!(page.marked().await, "the run's page was reloaded");
    if std::env::var("FLOW_SAVE_SCREENSHOT").as_deref() == Ok("1") {
        save_screenshot(&page).await;
    }

    // The runs list: the run above is there; a new one comes in by itself.
    client.goto(&server.url("/")).await.expect("open /");
    page.until_page("runs", "/").await;
    let listed = |id: &str| format!(r#"table#runs tr[data-run="{id}"]"#);
    assert_eq!(
        page.attr(&listed(&run), "data-status").await.as_deref(),
        Some("succeeded")
    );
    page.mark().await;
    let long = server.start_run("long-wait").await;
    page.until_attr(&listed(&long), "data-status", "running").await;
    assert!(page.marked().await, "the runs list was reloaded: it should poll");
    let rows = page
        .eval("return document.querySelectorAll('table#runs tbody tr[data-run]').length;")
        .await;
    assert_eq!(rows, json!(2), "{}", page.describe().await);
    let newest = page.attr("table#runs tbody tr[data-run]", "data-run").await;
    assert_eq!(newest.as_deref(), Some(long.as_str()), "the newest run comes first");
    assert_eq!(
        page.text(&format!(r#"{} td:nth-child(2)"#, listed(&long)))
            .await
            .as_deref(),
        Some("long-wait")
    );

    // Its page, from the list; cancelled from there.
    page.click(&format!("{} a", listed(&long))).await;
    page.until_page("run", &format!("/runs/{long}")).await;
    page.mark().await;
    page.until_attr(&row("wait"), "data-status", "running").await;
    assert_eq!(
        page.attr("#run-status", "data-status").await.as_deref(),
        Some("running")
    );
    page.until("Cancel enabled", || async {
        page.attr("#cancel", "disabled").await.is_none().then_some(())
    })
    .await;
    page.click("#cancel").await;
    page.until_attr("#run-status", "data-status", "cancelled").await;
    assert_eq!(page.text("#run-status").await.as_deref(), Some("cancelled"));
    page.until_attr(&row("wait"), "data-status", "cancelled").await;
    page.until_attr(&boxed("wait"), "data-status", "cancelled").await;
    assert!(
        page.attr("#cancel", "disabled").await.is_some(),
        "no Cancel once cancelled"
    );
    page.until("Retry enabled", || async {
        page.attr("#retry", "disabled").await.is_none().then_some(())
    })
    .await;
    assert!(
        page.marked().await,
        "the run's page was reloaded: it should update in place"
    );
    // "Cancelling…" is gone once the run is over.
    page.until("#message hidden", || async {
        page.attr("#message", "hidden").await.map(|_| ())
    })
    .await;
    let report = server.get(&format!("/api/v1/runs/{long}")).await;
    assert_eq!(report["status"], json!("cancelled"), "{report}");
    assert_eq!(report["nodes"]["wait"]["status"], json!("cancelled"), "{report}");

    // And the list shows it cancelled.
    client.goto(&server.url("/")).await.expect("open /");
    page.until_attr(&listed(&long), "data-status", "cancelled").await;

    // A run that waits for a signal: its page says what for, and sends it.
    let waiting = server.start_run("approval").await;
    client
        .goto(&server.url(&format!("/runs/{waiting}")))
        .await
        .expect("open the waiting run");
    page.until_attr("#run-status", "data-status", "waiting").await;
    let said = page
        .until("what it waits for", || async {
            page.text(r#"#waiting [data-waiting="approve"]"#).await
        })
        .await;
    assert!(said.contains("waits for signal approval"), "{said}");
    assert!(said.contains("gives up at"), "{said}");
    page.until_attr(&row("approve"), "data-status", "waiting").await;
    let signal_form = r#"#waiting form.signal[data-signal="approval"]"#;
    let payload = client
        .find(Locator::Css(&format!("{signal_form} textarea[name=\"payload\"]")))
        .await
        .expect("the signal form's textarea");
    // A payload the node's schema refuses is said in the form; nothing is sent.
    payload
        .send_keys(r#"{"approved": "yes"}"#)
        .await
        .expect("type the payload");
    page.click(&format!("{signal_form} button[type=\"submit\"]")).await;
    let error = page
        .until("the signal form's error", || async {
            page.text(&format!("{signal_form} .form-error"))
                .await
                .filter(|text| !text.is_empty())
        })
        .await;
    assert!(error.contains("schema"), "{error}");
    payload.clear().await.expect("clear the payload");
    payload
        .send_keys(r#"{"approved": true}"#)
        .await
        .expect("type the payload");
    page.click(&format!("{signal_form} button[type=\"submit\"]")).await;
    page.until_attr("#run-status", "data-status", "succeeded").await;
    page.until_attr(&row("deploy"), "data-status", "succeeded").await;
    let report = server.get(&format!("/api/v1/runs/{waiting}")).await;
    assert_eq!(
        report["nodes"]["approve"]["output"],
        json!({ "approved": true }),
        "{report}"
    );

    // A parent's page links to its child run, and the child's to its parent.
    let parent = server.start_run("parent-calls").await;
    client
        .goto(&server.url(&format!("/runs/{parent}")))
        .await
        .expect("open the parent run");
    page.until_attr("#run-status", "data-status", "succeeded").await;
    client.refresh().await.expect("reload the parent's page");
    page.until_attr("#run-status", "data-status", "succeeded").await;
    let child_link = "#children a.child-run";
    let href = page
        .until("the child run's link", || async { page.attr(child_link, "href").await })
        .await;
    assert_ne!(href, format!("/runs/{parent}"));
    page.click(child_link).await;
    page.until_page("run", &href).await;
    page.until_attr("#run-status", "data-status", "succeeded").await;
    assert_eq!(
        page.attr("#parent-run", "href").await.as_deref(),
        Some(format!("/runs/{parent}").as_str())
    );
    page.click("#parent-run").await;
    page.until_page("run", &format!("/runs/{parent}")).await;
    let report = server.get(&format!("/api/v1/runs/{parent}")).await;
    assert_eq!(report["output"], json!(42), "{report}");
    let child = report["nodes"]["call"]["child_run_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(href, format!("/runs/{child}"));

    // The runs list can hide child runs.
    client.goto(&server.url("/")).await.expect("open /");
    page.until_attr(&listed(&child), "data-status", "succeeded").await;
    page.click(r#"#filter input[name="top_level"]"#).await;
    page.until("the child run hidden", || async {
        let script = format!(
            "return !document.querySelector('table#runs tr[data-run=\"{child}\"]') && \
             !!document.querySelector('table#runs tr[data-run=\"{parent}\"]');"
        );
        (page.eval(&script).await == json!(true)).then_some(())
    })
    .await;

    client.close().await.expect("close the browser");
    drop(driver);
    let took = began.elapsed();
    assert!(took < Duration::from_secs(90), "the browser test took {took:?}");
    eprintln!("browser test: {took:.1?}");
}

/// The top of the run's page, down to the end of its table of nodes, 1280 wide,
/// into docs/serve.png. The window is put back to 1280×900 after.
async fn save_screenshot(page: &Page<'_>) {
    let bottom = "var t = document.getElementById('nodes'); var card = t && t.closest('section'); \
                  return Math.ceil((card || document.documentElement).getBoundingClientRect().bottom \
                  + window.scrollY + 12);";
    let wanted = page.eval(bottom).await.as_u64().unwrap_or(900).clamp(600, 1600);
    // The window's outer size is set; what the page gets is a little less.
    let mut outer = wanted;
    for _ in 0..3 {
        page.client
            .set_window_size(1280, outer as u32)
            .await
            .expect("resize the window");
        let inner = page.eval("return window.innerHeight;").await.as_u64().unwrap_or(wanted);
        if inner == wanted {
            break;
        }
        outer = (outer + wanted).saturating_sub(inner);
    }
    page.eval("window.scrollTo(0, 0); return null;").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let png = page.client.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/serve.png");
    std::fs::write(&path, &png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    eprintln!("saved {} ({} bytes, 1280×{wanted})", path.display(), png.len());
    page.client.set_window_size(1280, 900).await.expect("resize the window");
}
