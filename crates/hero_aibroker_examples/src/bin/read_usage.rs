//! Prints what was spent, per model, from the ledger (RPC `usage.summary`).
//! `cargo run -p hero_aibroker_examples --bin read_usage -- [model|provider|key|client]`

use hero_aibroker_examples::{arg, rpc};
use hero_aibroker_sdk::admin::UsageQuery;
use hero_aibroker_sdk::rpc::HeroAiBrokerApiClient;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let group_by = serde_json::from_value(serde_json::Value::String(arg(1, "model")))
        .map_err(|_| anyhow::anyhow!("group by model, provider, key or client"))?;
    let groups = rpc()
        .usage_summary(UsageQuery {
            group_by,
            ..UsageQuery::default()
        })
        .await?;
    println!(
        "{:<28} {:>8} {:>7} {:>10} {:>10} {:>12}",
        "group", "requests", "errors", "prompt", "completion", "cost USD"
    );
    for g in &groups {
        println!(
            "{:<28} {:>8} {:>7} {:>10} {:>10} {:>12.6}",
            if g.group.is_empty() { "-" } else { &g.group },
            g.requests,
            g.errors,
            g.prompt_tokens,
            g.completion_tokens,
            g.cost_usd
        );
    }
    Ok(())
}
