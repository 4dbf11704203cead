//! Cascade: the mother brokers this broker forwards to — list with the health and model count
//! of each, add, edit (address, port, label, priority, token), enable or disable, remove — and
//! the banner every page shows when this broker is itself a mother. Every change goes through
//! `mothers.*` on `rpc.sock`; tokens go in through a password field and are never shown.

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Form};
use hero_aibroker_sdk::admin::MotherInfo;
use hero_aibroker_sdk::rpc::HeroAiBrokerApiClient;
use serde::Deserialize;

use super::{changed, fragment, number};
use crate::auth::Current;
use crate::console::Console;
use crate::view::{self, Chrome};

/// One mother as the list shows it.
pub struct MotherRow {
    pub id: String,
    pub address: String,
    pub port: u16,
    pub label: String,
    pub priority: i64,
    pub enabled: bool,
    pub has_token: bool,
    pub models: u64,
    pub state: String,
    pub error: String,
    pub added: String,
}

impl From<&MotherInfo> for MotherRow {
    fn from(m: &MotherInfo) -> Self {
        MotherRow {
            id: m.id.clone(),
            address: m.address.clone(),
            port: m.port,
            label: m.label.clone().unwrap_or_default(),
            priority: m.priority,
            enabled: m.enabled,
            has_token: m.has_token,
            models: m.models,
            state: m.state.clone(),
            error: m.last_error.clone().unwrap_or_default(),
            added: view::utc(m.created_ms),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "cascade.html")]
pub struct Page {
    c: Chrome,
    rows: Vec<MotherRow>,
}

#[derive(Template, WebTemplate)]
#[template(path = "_mothers.html")]
pub struct List {
    rows: Vec<MotherRow>,
}

async fn rows(console: &Console, c: &mut Chrome) -> Vec<MotherRow> {
    c.or_note("Mothers", console.rpc.mothers_list().await)
        .iter()
        .map(MotherRow::from)
        .collect()
}

pub async fn page(State(console): State<Arc<Console>>, Extension(cur): Extension<Current>) -> Page {
    let mut c = Chrome::new(&console, &cur, "cascade", "Cascade");
    let rows = rows(&console, &mut c).await;
    Page { c, rows }
}

pub async fn list(State(console): State<Arc<Console>>, Extension(cur): Extension<Current>) -> List {
    let mut c = Chrome::new(&console, &cur, "cascade", "Cascade");
    List {
        rows: rows(&console, &mut c).await,
    }
}

/// The banner of every page: this broker serves child brokers.
pub async fn banner(State(console): State<Arc<Console>>) -> Html<String> {
    match console.rpc.info().await {
        Ok(i) if i.is_mother => Html(format!(
            "<p class=\"banner\" role=\"note\">This broker is a <strong>mother</strong>: child brokers forward to it over TCP ({}).</p>",
            super::escape(i.sockets.tcp.as_deref().unwrap_or("no TCP listener"))
        )),
        _ => Html(String::new()),
    }
}

/// The add and edit forms, as typed (blank = leave as is / the default).
#[derive(Debug, Default, Deserialize)]
pub struct MotherForm {
    #[serde(default)]
    address: String,
    #[serde(default)]
    port: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    priority: String,
    #[serde(default)]
    token: String,
}

fn text(v: &str) -> Option<String> {
    Some(v.trim().to_owned()).filter(|v| !v.is_empty())
}

pub async fn add(State(console): State<Arc<Console>>, Form(f): Form<MotherForm>) -> Response {
    let (port, priority) = match (
        number::<u16>("port", &f.port),
        number::<i64>("priority", &f.priority),
    ) {
        (Ok(Some(port)), Ok(priority)) => (port, priority),
        (Ok(None), _) => return fragment(false, "port is required").into_response(),
        (Err(e), _) | (_, Err(e)) => return fragment(false, e).into_response(),
    };
    let Some(address) = text(&f.address) else {
        return fragment(false, "address is required").into_response();
    };
    match console
        .rpc
        .mothers_add(
            address,
            port,
            text(&f.label),
            priority,
            Some(true),
            text(&f.token),
        )
        .await
    {
        Ok(r) => changed("mothers-changed", fragment(true, format!("added {}", r.id))),
        Err(e) => fragment(false, e).into_response(),
    }
}

pub async fn update(
    State(console): State<Arc<Console>>,
    Path(id): Path<String>,
    Form(f): Form<MotherForm>,
) -> Response {
    let (port, priority) = match (
        number::<u16>("port", &f.port),
        number::<i64>("priority", &f.priority),
    ) {
        (Ok(port), Ok(priority)) => (port, priority),
        (Err(e), _) | (_, Err(e)) => return fragment(false, e).into_response(),
    };
    match console
        .rpc
        .mothers_update(
            id,
            text(&f.address),
            port,
            text(&f.label),
            priority,
            None,
            text(&f.token),
        )
        .await
    {
        Ok(m) => changed("mothers-changed", fragment(true, format!("saved {}", m.id))),
        Err(e) => fragment(false, e).into_response(),
    }
}

/// Enables or disables a mother (`/cascade/{id}/enable`, `/cascade/{id}/disable`).
pub async fn toggle(
    State(console): State<Arc<Console>>,
    Path((id, what)): Path<(String, String)>,
) -> Response {
    let enabled = match what.as_str() {
        "enable" => true,
        "disable" => false,
        _ => return fragment(false, "unknown action").into_response(),
    };
    match console
        .rpc
        .mothers_update(id, None, None, None, None, Some(enabled), None)
        .await
    {
        Ok(m) => changed(
            "mothers-changed",
            fragment(
                true,
                format!("{} {}", m.id, if enabled { "enabled" } else { "disabled" }),
            ),
        ),
        Err(e) => fragment(false, e).into_response(),
    }
}

pub async fn remove(State(console): State<Arc<Console>>, Path(id): Path<String>) -> Response {
    match console.rpc.mothers_remove(id).await {
        Ok(r) => changed(
            "mothers-changed",
            fragment(true, format!("removed {}", r.id)),
        ),
        Err(e) => fragment(false, e).into_response(),
    }
}
