//! Lists the broker's models: id, tier, whether a configured key can serve it, and its cheapest
//! price. `cargo run -p hero_aibroker_examples --bin list_models`

use hero_aibroker_examples::rest;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let models = rest().models().await?;
    for m in &models.data {
        let cheapest = m
            .backends
            .iter()
            .filter(|b| b.instances > 0)
            .map(|b| (b.input_cost, b.output_cost))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let price = cheapest.map_or_else(
            || "no key".to_owned(),
            |(i, o)| format!("${i} / ${o} per M tokens"),
        );
        println!(
            "{:<28} {:<9} {:<12} {price}",
            m.id,
            m.tier.as_deref().unwrap_or("-"),
            if m.servable {
                "servable"
            } else {
                "not servable"
            },
        );
    }
    println!("{} models", models.data.len());
    Ok(())
}
