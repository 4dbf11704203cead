//! Creates a broker API key with a budget (RPC `keys.create`), sends a chat with it (REST, the key
//! as Bearer), and reads back what the key has spent (RPC `keys.list`). The secret is shown once
//! by the broker; this example prints only its first characters.
//! `cargo run -p hero_aibroker_examples --bin create_key_and_use_it -- [MODEL]`

use hero_aibroker_examples::{arg, rest, rpc};
use hero_aibroker_sdk::admin::KeyCreate;
use hero_aibroker_sdk::rpc::HeroAiBrokerApiClient;
use hero_aibroker_sdk::{ChatCompletionRequest, ChatMessage};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let admin = rpc();
    let created = admin
        .keys_create(KeyCreate {
            name: "sdk-example".to_owned(),
            budget_usd: Some(1.0),
            rpm: Some(60),
            ..KeyCreate::default()
        })
        .await?;
    let prefix: String = created.secret.chars().take(8).collect();
    println!("created key {} ({prefix}…), budget $1.00", created.key.id);

    let with_key = rest().with_api_key(created.secret);
    let answer = with_key
        .chat(&ChatCompletionRequest {
            model: arg(1, "auto"),
            messages: vec![ChatMessage::text("user", "What is 2 + 2?")],
            stream: None,
            stream_options: None,
            extra: Default::default(),
        })
        .await?;
    let text = answer
        .choices
        .first()
        .and_then(|c| c.message.content_text())
        .unwrap_or("");
    println!("answer: {text}");

    let keys = admin.keys_list().await?;
    let key = keys
        .iter()
        .find(|k| k.id == created.key.id)
        .ok_or_else(|| anyhow::anyhow!("the new key is not listed"))?;
    println!("key {} has spent ${}", key.id, key.spent_usd);
    Ok(())
}
