//! `mothers.*`: the mother brokers a child forwards to, kept in the store and applied without
//! restart (the registry is rebuilt with each change). Tokens go in, never out.

use hero_aibroker_sdk::ErrorCode;
use hero_aibroker_sdk::admin::{MotherChange, MotherInfo};
use jsonrpsee::types::ErrorObjectOwned;

use crate::accounting::store::MotherRow;
use crate::state::AppState;

fn err(code: ErrorCode, msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code.rpc_code(), msg.into(), None::<()>)
}

fn store_err(e: impl std::fmt::Display) -> ErrorObjectOwned {
    err(ErrorCode::Store, format!("the store failed: {e}"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The fields a caller may set, checked.
pub struct Fields {
    pub address: Option<String>,
    pub port: Option<u16>,
    pub label: Option<String>,
    pub priority: Option<i64>,
    pub enabled: Option<bool>,
    pub token: Option<String>,
}

fn check(f: &Fields) -> Result<(), ErrorObjectOwned> {
    if let Some(a) = &f.address
        && a.parse::<std::net::IpAddr>().is_err()
        && (a.is_empty()
            || !a
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'))
    {
        return Err(err(
            ErrorCode::InvalidArguments,
            format!(
                "address {:?} is not an IP address or host name",
                crate::error::printable(a)
            ),
        ));
    }
    if f.port == Some(0) {
        return Err(err(ErrorCode::InvalidArguments, "port must be 1..65535"));
    }
    if f.token.as_deref().is_some_and(str::is_empty) {
        return Err(err(
            ErrorCode::InvalidArguments,
            "token must not be empty (leave it out for none)",
        ));
    }
    Ok(())
}

fn info(state: &AppState, r: &MotherRow) -> MotherInfo {
    let (models, last_error) = state.listed.status(&r.id);
    let reg = state.registry.load();
    let instance_state = reg
        .providers
        .get(&r.id)
        .and_then(|p| p.instances.first())
        .map_or_else(|| "absent".to_owned(), |i| i.health().as_str().to_owned());
    MotherInfo {
        id: r.id.clone(),
        address: r.address.clone(),
        port: r.port,
        label: r.label.clone(),
        priority: r.priority,
        enabled: r.enabled,
        has_token: r.token.is_some(),
        models,
        state: instance_state,
        last_error,
        created_ms: r.created_ms,
        updated_ms: r.updated_ms,
    }
}

pub async fn list(state: &AppState) -> Result<Vec<MotherInfo>, ErrorObjectOwned> {
    let rows = state.store.list_mothers().await.map_err(store_err)?;
    Ok(rows.iter().map(|r| info(state, r)).collect())
}

pub async fn add(state: &AppState, f: Fields) -> Result<MotherChange, ErrorObjectOwned> {
    check(&f)?;
    let (Some(address), Some(port)) = (f.address, f.port) else {
        return Err(err(
            ErrorCode::InvalidArguments,
            "address and port are required",
        ));
    };
    let now = now_ms();
    let row = state
        .store
        .add_mother(MotherRow {
            id: String::new(),
            address,
            port,
            label: f.label,
            priority: f.priority.unwrap_or(1),
            enabled: f.enabled.unwrap_or(true),
            token: f.token,
            created_ms: now,
            updated_ms: now,
        })
        .await
        .map_err(store_err)?;
    state.reload_mothers().await.map_err(store_err)?;
    tracing::info!(mother = %row.id, address = %row.address, port = row.port, "mother added");
    Ok(MotherChange {
        id: row.id,
        success: true,
    })
}

pub async fn update(state: &AppState, id: &str, f: Fields) -> Result<MotherInfo, ErrorObjectOwned> {
    check(&f)?;
    let rows = state.store.list_mothers().await.map_err(store_err)?;
    let Some(mut row) = rows.into_iter().find(|r| r.id == id) else {
        return Err(err(
            ErrorCode::NotFound,
            format!("no mother {:?}", crate::error::printable(id)),
        ));
    };
    if let Some(a) = f.address {
        row.address = a;
    }
    if let Some(p) = f.port {
        row.port = p;
    }
    if f.label.is_some() {
        row.label = f.label;
    }
    if let Some(p) = f.priority {
        row.priority = p;
    }
    if let Some(e) = f.enabled {
        row.enabled = e;
    }
    if f.token.is_some() {
        row.token = f.token;
    }
    row.updated_ms = now_ms();
    state.store.update_mother(&row).await.map_err(store_err)?;
    state.reload_mothers().await.map_err(store_err)?;
    Ok(info(state, &row))
}

pub async fn remove(state: &AppState, id: &str) -> Result<MotherChange, ErrorObjectOwned> {
    if !state.store.remove_mother(id).await.map_err(store_err)? {
        return Err(err(
            ErrorCode::NotFound,
            format!("no mother {:?}", crate::error::printable(id)),
        ));
    }
    state.reload_mothers().await.map_err(store_err)?;
    Ok(MotherChange {
        id: id.to_owned(),
        success: true,
    })
}
