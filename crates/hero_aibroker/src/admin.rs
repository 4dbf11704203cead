//! Commands that change the broker (keys, priorities, provider instances, reload) or list what
//! they change. The mutating ones — and `providers check`, which uses the provider keys — need
//! the admin token when the broker has one (`--admin-token`/`ADMIN_TOKEN`).

use hero_aibroker_sdk::admin::{ApiKeyInfo, KeyCreate, KeyUpdate, PriorityEntry};
use hero_aibroker_sdk::rpc::HeroAiBrokerApiClient;

use crate::cli::{KeysCommand, PriorityCommand, ProvidersCommand};
use crate::conn::Conn;
use crate::format::{json, opt, table, timestamp, usd};

pub async fn providers(
    conn: &Conn,
    cmd: &ProvidersCommand,
    as_json: bool,
) -> anyhow::Result<String> {
    let rpc = conn.rpc();
    let instance = match cmd {
        ProvidersCommand::Check { provider } => {
            let checks = conn.call(|| rpc.providers_check(provider.clone())).await?;
            if as_json {
                return json(&checks);
            }
            let mut t = table(["instance", "key", "verdict", "http", "latency", "detail"]);
            for c in &checks {
                t.add_row([
                    c.instance.clone(),
                    opt(c.key_hint.as_deref()),
                    if c.ok { "works" } else { "FAILS" }.to_owned(),
                    opt(c.http_status),
                    format!("{} ms", c.latency_ms),
                    match (&c.error, c.models) {
                        (Some(e), _) => e.clone(),
                        (None, Some(n)) => format!("{n} models"),
                        (None, None) => String::new(),
                    },
                ]);
            }
            return Ok(t.to_string());
        }
        ProvidersCommand::Reset { instance } => {
            conn.call(|| rpc.providers_reset(instance.clone())).await?
        }
        ProvidersCommand::Disable { instance, reason } => {
            conn.call(|| rpc.providers_disable(instance.clone(), reason.clone()))
                .await?
        }
    };
    if as_json {
        return json(&instance);
    }
    Ok(format!(
        "{}: {}{}",
        instance.id,
        instance.state,
        instance
            .reason
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    ))
}

pub async fn keys(conn: &Conn, cmd: &KeysCommand, as_json: bool) -> anyhow::Result<String> {
    let rpc = conn.rpc();
    match cmd {
        KeysCommand::Create { name, limits } => {
            let params = KeyCreate {
                name: name.clone(),
                allowed_models: limits.models.clone(),
                rpm: limits.rpm,
                tpm: limits.tpm,
                max_concurrent: limits.max_concurrent,
                budget_usd: limits.budget,
            };
            let created = conn.call(|| rpc.keys_create(params.clone())).await?;
            if as_json {
                return json(&created);
            }
            Ok(format!(
                "{}\n\nSecret: {}\nWarning: this secret is shown once and never again; store it now.",
                key_table(std::slice::from_ref(&created.key)),
                created.secret
            ))
        }
        KeysCommand::List => {
            let keys = conn.call(|| rpc.keys_list()).await?;
            if as_json {
                return json(&keys);
            }
            if keys.is_empty() {
                return Ok(
                    "No API keys. Create one with: hero_aibroker keys create NAME".to_owned(),
                );
            }
            Ok(key_table(&keys))
        }
        KeysCommand::Update {
            id,
            name,
            limits,
            clear,
        } => {
            let update = KeyUpdate {
                name: name.clone(),
                allowed_models: limits.models.clone(),
                rpm: limits.rpm,
                tpm: limits.tpm,
                max_concurrent: limits.max_concurrent,
                budget_usd: limits.budget,
                clear: clear.clone(),
            };
            let key = conn
                .call(|| rpc.keys_update(id.clone(), update.clone()))
                .await?;
            if as_json {
                return json(&key);
            }
            Ok(key_table(std::slice::from_ref(&key)))
        }
        KeysCommand::Revoke { id } => {
            let key = conn.call(|| rpc.keys_revoke(id.clone())).await?;
            if as_json {
                return json(&key);
            }
            Ok(format!(
                "{}\nRevoked: requests with this key are refused from now on.",
                key_table(std::slice::from_ref(&key))
            ))
        }
    }
}

fn key_table(keys: &[ApiKeyInfo]) -> String {
    let mut t = table([
        "id",
        "name",
        "key",
        "models",
        "rpm",
        "tpm",
        "conc",
        "budget",
        "spent",
        "state",
        "created (UTC)",
    ]);
    for k in keys {
        t.add_row([
            k.id.clone(),
            k.name.clone(),
            k.hint.clone(),
            k.allowed_models
                .as_ref()
                .map_or_else(|| "all".to_owned(), |m| m.join(",")),
            opt(k.rpm),
            opt(k.tpm),
            opt(k.max_concurrent),
            opt(k.budget_usd.map(usd)),
            usd(k.spent_usd),
            if k.revoked { "revoked" } else { "active" }.to_owned(),
            timestamp(k.created_ms),
        ]);
    }
    t.to_string()
}

pub async fn priority(conn: &Conn, cmd: &PriorityCommand, as_json: bool) -> anyhow::Result<String> {
    let rpc = conn.rpc();
    let entries = match cmd {
        PriorityCommand::List => conn.call(|| rpc.priority_list()).await?,
        PriorityCommand::Set { provider, priority } => vec![
            conn.call(|| rpc.priority_set(provider.clone(), Some(*priority)))
                .await?,
        ],
        PriorityCommand::Clear { provider } => vec![
            conn.call(|| rpc.priority_set(provider.clone(), None))
                .await?,
        ],
    };
    if as_json {
        return match cmd {
            PriorityCommand::List => json(&entries),
            _ => json(&entries[0]),
        };
    }
    if entries.is_empty() {
        return Ok("No priority overrides: the YAML priorities apply.".to_owned());
    }
    Ok(priority_table(&entries))
}

fn priority_table(entries: &[PriorityEntry]) -> String {
    let mut t = table(["provider", "priority"]);
    for e in entries {
        t.add_row([
            e.provider.clone(),
            e.priority
                .map_or_else(|| "YAML".to_owned(), |p| p.to_string()),
        ]);
    }
    t.to_string()
}

pub async fn reload(conn: &Conn, as_json: bool) -> anyhow::Result<String> {
    let rpc = conn.rpc();
    let r = conn.call(|| rpc.config_reload()).await?;
    if as_json {
        return json(&r);
    }
    Ok(format!(
        "Reloaded {}: {} models ({} servable).",
        r.path, r.models, r.servable_models
    ))
}
