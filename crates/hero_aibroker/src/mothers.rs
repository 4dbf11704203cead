//! `hero_aibroker mothers list|add|update|remove`: the mother brokers this broker forwards to.
//! Tokens are read from an environment variable (`--token-env`), never taken on the command
//! line, and never printed.

use hero_aibroker_sdk::admin::MotherInfo;
use hero_aibroker_sdk::rpc::HeroAiBrokerApiClient;

use crate::cli::MothersCommand;
use crate::conn::Conn;
use crate::format::{json, opt, table, timestamp};

fn token_from(var: Option<&String>) -> anyhow::Result<Option<String>> {
    let Some(var) = var else {
        return Ok(None);
    };
    std::env::var_os(var)
        .and_then(|v| v.into_string().ok())
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .map(Some)
        .ok_or_else(|| anyhow::anyhow!("--token-env {var}: the variable is not set"))
}

pub async fn run(conn: &Conn, cmd: &MothersCommand, as_json: bool) -> anyhow::Result<String> {
    let rpc = conn.rpc();
    match cmd {
        MothersCommand::List => {
            let list = conn.call(|| rpc.mothers_list()).await?;
            if as_json {
                return json(&list);
            }
            if list.is_empty() {
                return Ok("No mothers: this broker forwards to no other broker.".to_owned());
            }
            Ok(list_table(&list))
        }
        MothersCommand::Add {
            address,
            port,
            label,
            priority,
            disabled,
            token_env,
        } => {
            let token = token_from(token_env.as_ref())?;
            let r = conn
                .call(|| {
                    rpc.mothers_add(
                        address.clone(),
                        *port,
                        label.clone(),
                        *priority,
                        Some(!disabled),
                        token.clone(),
                    )
                })
                .await?;
            if as_json {
                return json(&r);
            }
            Ok(format!("Added {} ({address}:{port}).", r.id))
        }
        MothersCommand::Update {
            id,
            address,
            port,
            label,
            priority,
            enabled,
            token_env,
        } => {
            let token = token_from(token_env.as_ref())?;
            let m = conn
                .call(|| {
                    rpc.mothers_update(
                        id.clone(),
                        address.clone(),
                        *port,
                        label.clone(),
                        *priority,
                        *enabled,
                        token.clone(),
                    )
                })
                .await?;
            if as_json {
                return json(&m);
            }
            Ok(list_table(&[m]))
        }
        MothersCommand::Remove { id } => {
            let r = conn.call(|| rpc.mothers_remove(id.clone())).await?;
            if as_json {
                return json(&r);
            }
            Ok(format!("Removed {}.", r.id))
        }
    }
}

fn list_table(list: &[MotherInfo]) -> String {
    let mut t = table([
        "id", "address", "label", "priority", "enabled", "token", "models", "state", "error",
        "added",
    ]);
    for m in list {
        t.add_row([
            m.id.clone(),
            format!("{}:{}", m.address, m.port),
            opt(m.label.as_deref()),
            m.priority.to_string(),
            if m.enabled { "yes" } else { "no" }.to_owned(),
            if m.has_token { "set" } else { "none" }.to_owned(),
            m.models.to_string(),
            m.state.clone(),
            opt(m.last_error.as_deref()),
            timestamp(m.created_ms),
        ]);
    }
    t.to_string()
}
