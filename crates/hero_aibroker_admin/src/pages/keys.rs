//! Keys: create (the secret is shown once, with a copy button), the list with spend against
//! budget, limits and allowed models, edit limits (a blank field clears it), revoke with a
//! confirmation. Every change goes through `keys.*` on `rpc.sock`.

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use hero_aibroker_sdk::admin::{ApiKeyInfo, KeyCreate, KeyUpdate};
use hero_aibroker_sdk::rpc::HeroAiBrokerApiClient;
use serde::Deserialize;

use super::{changed, fragment, number};
use crate::auth::Current;
use crate::console::Console;
use crate::view::{self, Chrome};

/// One key as the list shows it.
pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub hint: String,
    pub models: String,
    pub rpm: String,
    pub tpm: String,
    pub max_concurrent: String,
    pub budget: String,
    pub spent: String,
    /// Spend against budget, 0–100, for the bar; `None` without a budget.
    pub used_pct: Option<u32>,
    pub revoked: bool,
    pub created: String,
    pub created_ms: i64,
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

impl From<&ApiKeyInfo> for KeyRow {
    fn from(k: &ApiKeyInfo) -> Self {
        KeyRow {
            id: k.id.clone(),
            name: k.name.clone(),
            hint: k.hint.clone(),
            models: k
                .allowed_models
                .as_ref()
                .map(|m| m.join(", "))
                .unwrap_or_default(),
            rpm: opt(k.rpm),
            tpm: opt(k.tpm),
            max_concurrent: opt(k.max_concurrent),
            budget: opt(k.budget_usd),
            spent: view::usd(k.spent_usd),
            used_pct: k.budget_usd.map(|b| {
                if b <= 0.0 {
                    100
                } else {
                    ((k.spent_usd / b) * 100.0).clamp(0.0, 100.0).round() as u32
                }
            }),
            revoked: k.revoked,
            created: view::utc(k.created_ms),
            created_ms: k.created_ms,
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "keys.html")]
pub struct Page {
    c: Chrome,
    rows: Vec<KeyRow>,
}

#[derive(Template, WebTemplate)]
#[template(path = "_keys.html")]
pub struct List {
    rows: Vec<KeyRow>,
}

#[derive(Template, WebTemplate)]
#[template(path = "_created.html")]
pub struct Created {
    row: KeyRow,
    secret: String,
}

async fn rows(console: &Console, c: &mut Chrome) -> Vec<KeyRow> {
    c.or_note("Keys", console.rpc.keys_list().await)
        .iter()
        .map(KeyRow::from)
        .collect()
}

pub async fn page(State(console): State<Arc<Console>>, Extension(cur): Extension<Current>) -> Page {
    let mut c = Chrome::new(&console, &cur, "keys", "Keys");
    let rows = rows(&console, &mut c).await;
    Page { c, rows }
}

pub async fn list(State(console): State<Arc<Console>>, Extension(cur): Extension<Current>) -> List {
    let mut c = Chrome::new(&console, &cur, "keys", "Keys");
    List {
        rows: rows(&console, &mut c).await,
    }
}

/// The limit fields of the create and edit forms, as typed (blank = none).
#[derive(Debug, Default, Deserialize)]
pub struct Limits {
    #[serde(default)]
    name: String,
    #[serde(default)]
    models: String,
    #[serde(default)]
    rpm: String,
    #[serde(default)]
    tpm: String,
    #[serde(default)]
    max_concurrent: String,
    #[serde(default)]
    budget: String,
}

fn model_list(v: &str) -> Option<Vec<String>> {
    let list: Vec<String> = v
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect();
    (!list.is_empty()).then_some(list)
}

pub async fn create(State(console): State<Arc<Console>>, Form(f): Form<Limits>) -> Response {
    let parsed = (|| {
        Ok::<_, String>(KeyCreate {
            name: f.name.trim().to_owned(),
            allowed_models: model_list(&f.models),
            rpm: number("rpm", &f.rpm)?,
            tpm: number("tpm", &f.tpm)?,
            max_concurrent: number("max concurrent", &f.max_concurrent)?,
            budget_usd: number("budget", &f.budget)?,
        })
    })();
    let params = match parsed {
        Ok(p) => p,
        Err(e) => return fragment(false, e).into_response(),
    };
    match console.rpc.keys_create(params).await {
        Ok(k) => changed(
            "keys-changed",
            Created {
                row: KeyRow::from(&k.key),
                secret: k.secret,
            },
        ),
        Err(e) => fragment(false, e).into_response(),
    }
}

pub async fn update(
    State(console): State<Arc<Console>>,
    Path(id): Path<String>,
    Form(f): Form<Limits>,
) -> Response {
    let parsed = (|| {
        let mut u = KeyUpdate {
            name: Some(f.name.trim().to_owned()).filter(|n| !n.is_empty()),
            allowed_models: model_list(&f.models),
            rpm: number("rpm", &f.rpm)?,
            tpm: number("tpm", &f.tpm)?,
            max_concurrent: number("max concurrent", &f.max_concurrent)?,
            budget_usd: number("budget", &f.budget)?,
            clear: Vec::new(),
        };
        // A blank field clears that limit.
        for (field, value) in [
            ("allowed_models", &f.models),
            ("rpm", &f.rpm),
            ("tpm", &f.tpm),
            ("max_concurrent", &f.max_concurrent),
            ("budget_usd", &f.budget),
        ] {
            if value.trim().is_empty() {
                u.clear.push(field.to_owned());
            }
        }
        Ok::<_, String>(u)
    })();
    let update = match parsed {
        Ok(u) => u,
        Err(e) => return fragment(false, e).into_response(),
    };
    match console.rpc.keys_update(id, update).await {
        Ok(k) => changed("keys-changed", fragment(true, format!("{} saved", k.name))),
        Err(e) => fragment(false, e).into_response(),
    }
}

pub async fn revoke(State(console): State<Arc<Console>>, Path(id): Path<String>) -> Response {
    match console.rpc.keys_revoke(id).await {
        Ok(k) => changed(
            "keys-changed",
            fragment(true, format!("{} revoked", k.name)),
        ),
        Err(e) => fragment(false, e).into_response(),
    }
}
