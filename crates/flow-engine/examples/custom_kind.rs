//! A custom node kind in an embedding program: `quote`, which prices an order
//! from a price list the program owns, less a discount that another node computed.
//!
//! Everything the kind needs comes from one import, `flow_engine::kind::*`.
//!
//! ```sh
//! cargo run -p flow-engine --example custom_kind
//! ```

use std::collections::HashMap;
use std::time::Duration;

use flow_engine::kind::*;
use flow_engine::{Engine, RunOptions, RunStatus};

/// `quote`: `qty` (1 to 1000, default 1) × the price of `item`, less the
/// `percent` output by the node `discount_from` (an upstream node), if any.
///
/// The kind is registered once and shared by every node of every run, so it is
/// where shared resources live: here, the price list.
struct Quote {
    prices: HashMap<String, f64>,
    latency: Duration,
}

struct QuoteConfig {
    item: String,
    qty: u64,
    discount_from: Option<String>,
}

impl Quote {
    /// The one reading of a config, as written (`check`) or rendered (`run`).
    fn read(&self, reader: &mut ConfigReader, config: &Value) -> Option<QuoteConfig> {
        let map = reader.object(config, "", &["item", "qty", "discount_from"])?;
        let item = reader.required(map, "", "item");
        if let Some(name) = item.filter(|v| !is_template(v)).and_then(Value::as_str) {
            if !self.prices.contains_key(name) {
                let hint = did_you_mean(name, self.prices.keys().map(String::as_str));
                let hint = hint.map(|h| format!(" (did you mean `{h}`?)")).unwrap_or_default();
                reader.problem("item", format!("no price for `{name}`{hint}"));
            }
        }
        let item = reader.string(item, "item");
        let qty = reader.integer(reader.optional(map, "qty"), "qty", 1..=1000);
        let discount_from = reader.string(reader.optional(map, "discount_from"), "discount_from");
        Some(QuoteConfig {
            item: item?,
            qty: qty.unwrap_or(1),
            discount_from,
        })
    }
}

#[async_trait]
impl NodeKind for Quote {
    fn check(&self, config: &Value) -> Vec<ConfigProblem> {
        let mut reader = ConfigReader::new(ReadMode::Check);
        self.read(&mut reader, config);
        reader.into_problems()
    }

    /// For `flow explain`: every quote takes the price list's latency.
    fn estimate(&self, _config: &Value) -> AttemptTime {
        AttemptTime::Succeeds(self.latency.as_secs_f64() * 1000.0)
    }

    async fn run(&self, call: NodeCall) -> Result<Value, NodeError> {
        let mut reader = ConfigReader::new(ReadMode::Run);
        let config = self.read(&mut reader, &call.config);
        let config = reader.finish(config).map_err(config_error)?;
        tokio::time::sleep(self.latency).await;
        let unit = self.prices.get(&config.item).copied().unwrap_or_default();
        // Another node's result, through the run's read-only context.
        let percent = match &config.discount_from {
            None => 0.0,
            Some(id) => call
                .context
                .settled_by_id(id)
                .and_then(|s| s.output["percent"].as_f64())
                .ok_or_else(|| {
                    NodeError::permanent(format!("config.discount_from: node `{id}` has no `percent` output"))
                })?,
        };
        let total = unit * config.qty as f64 * (1.0 - percent / 100.0);
        Ok(json!({ "item": config.item, "qty": config.qty, "total": total }))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let quote = Quote {
        prices: HashMap::from([("tea".to_owned(), 2.5), ("cake".to_owned(), 4.0)]),
        latency: Duration::from_millis(20),
    };
    println!(
        "one quote takes {:?} (what `flow explain` is told)",
        quote.estimate(&Value::Null)
    );
    let engine = Engine::builder().register("quote", quote).build();

    // A workflow mixes the custom kind with built-in ones.
    let workflow = engine.parse_yaml(
        r#"
name: custom-kind
nodes:
  - { id: discount, kind: transform, config: { output: { percent: "{{ input.discount }}" } } }
  - { id: tea, kind: quote, config: { item: tea, qty: 3 } }
  - { id: cake, kind: quote, config: { item: cake, qty: "{{ input.cakes }}", discount_from: discount } }
  - { id: bill, kind: transform, config: { output: "{{ nodes.tea.output.total + nodes.cake.output.total }}" } }
edges:
  - { from: discount, to: cake }
  - { from: tea, to: bill }
  - { from: cake, to: bill }
"#,
    )?;
    let input = json!({ "discount": 25, "cakes": 2 });
    let report = engine.run(&workflow, RunOptions::new().input(input)).await?;
    for id in ["tea", "cake", "bill"] {
        let output = report.node(id).map(|n| n.output.clone()).unwrap_or_default();
        println!("{id}: {output}");
    }
    if report.status != RunStatus::Succeeded {
        return Err(format!("the run {}", report.status.as_str()).into());
    }

    // `check` runs at validation: a bad config is rejected before anything runs,
    // every problem named by its place.
    let invalid = "name: bad\nnodes:\n  - { id: q, kind: quote, config: { item: cakes, qty: 0, discount: d } }\n";
    match engine.parse_yaml(invalid) {
        Ok(_) => return Err("an invalid config was accepted".into()),
        Err(e) => println!("rejected as expected:\n{e}"),
    }
    Ok(())
}
