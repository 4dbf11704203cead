//! In flight: the requests running now (model, key, client, provider, age, bytes streamed),
//! refreshed every 2 s, each with a Cancel button that ends it cleanly (recorded as
//! cancelled) through `requests.cancel`.

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Html;
use hero_aibroker_sdk::admin::RunningRequest;
use hero_aibroker_sdk::rpc::HeroAiBrokerApiClient;

use super::fragment;
use crate::auth::Current;
use crate::console::Console;
use crate::view::{self, Chrome};

/// One running request.
pub struct Row {
    pub id: String,
    pub model: String,
    pub key: String,
    pub client: String,
    pub provider: String,
    pub age: String,
    pub bytes: String,
    pub stream: bool,
    pub cancelled: bool,
}

impl From<&RunningRequest> for Row {
    fn from(r: &RunningRequest) -> Self {
        Row {
            id: r.id.clone(),
            model: r.model.clone(),
            key: r.key_id.clone().unwrap_or_default(),
            client: r.client.clone(),
            provider: r.provider.clone().unwrap_or_default(),
            age: view::ms(r.age_ms as f64),
            bytes: view::int(r.bytes),
            stream: r.stream,
            cancelled: r.cancelled,
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "inflight.html")]
pub struct Page {
    c: Chrome,
    rows: Vec<Row>,
}

#[derive(Template, WebTemplate)]
#[template(path = "_inflight.html")]
pub struct Rows {
    rows: Vec<Row>,
}

pub async fn page(State(console): State<Arc<Console>>, Extension(cur): Extension<Current>) -> Page {
    let mut c = Chrome::new(&console, &cur, "inflight", "In flight");
    let rows = c
        .or_note(
            "The broker does not answer on rpc.sock",
            console.rpc.requests_list().await,
        )
        .iter()
        .map(Row::from)
        .collect();
    Page { c, rows }
}

pub async fn rows(State(console): State<Arc<Console>>) -> Rows {
    Rows {
        rows: console
            .rpc
            .requests_list()
            .await
            .unwrap_or_default()
            .iter()
            .map(Row::from)
            .collect(),
    }
}

pub async fn cancel(State(console): State<Arc<Console>>, Path(id): Path<String>) -> Html<String> {
    match console.rpc.requests_cancel(id).await {
        Ok(r) => fragment(true, format!("{} cancelled", r.id)),
        Err(e) => fragment(false, e),
    }
}
