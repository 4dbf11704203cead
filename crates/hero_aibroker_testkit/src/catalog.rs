//! OpenRouter's model catalog on the fake provider, under OpenRouter's own path layout
//! ([`FakeProvider::openrouter_url`], `…/api/v1`): `GET /api/v1/models` pages the catalog
//! like OpenRouter (`data`, `total_count`, `links.next`; `offset`/`limit` query), and
//! `GET /api/v1/models/{author}/{slug}/endpoints` answers the `endpoints.json` recording for
//! a listed model. Chat and the other endpoints answer under `/api/v1` as under `/v1`.
//!
//! Catalog requests are kept apart from [`FakeProvider::calls`] and `call_count` (a broker
//! fetches its catalog on its own schedule; tests counting chat calls must not see it) and
//! ignore scripted [`Rule`](crate::Rule)s: [`FakeProvider::fail_catalog`] scripts them.

use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::body::FakeBody;
use crate::{Call, FakeProvider, RawCall, Shared};

const MODELS: &str = include_str!("../fixtures/openrouter/models.json");
const ENDPOINTS: &str = include_str!("../fixtures/openrouter/endpoints.json");
/// Where OpenRouter's API lives below its origin.
const PREFIX: &str = "/api/v1";

/// The scripted catalog and the catalog requests received.
pub(crate) struct Catalog(Mutex<Inner>);

struct Inner {
    /// The models array, or any value a test wants served as `data`.
    models: Value,
    fail: Option<u16>,
    page_size: Option<usize>,
    calls: Vec<RawCall>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog(Mutex::new(Inner {
            models: fixture_models(),
            fail: None,
            page_size: None,
            calls: Vec::new(),
        }))
    }
}

impl Catalog {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The `data` array of the `models.json` recording (one model, `openai/gpt-4`).
fn fixture_models() -> Value {
    let mut page: Value = serde_json::from_str(MODELS).unwrap_or_default();
    page["data"].take()
}

/// A catalog entry shaped like the recording's, with this id (also its slug and links),
/// name and prices in USD per token as OpenRouter writes them (`"0.00003"`).
pub fn catalog_entry(id: &str, prompt: &str, completion: &str) -> Value {
    let mut entry = fixture_models()[0].take();
    entry["id"] = json!(id);
    entry["canonical_slug"] = json!(id);
    entry["name"] = json!(format!("Fake: {id}"));
    entry["pricing"]["prompt"] = json!(prompt);
    entry["pricing"]["completion"] = json!(completion);
    entry["links"]["details"] = json!(format!("{PREFIX}/models/{id}/endpoints"));
    entry
}

impl FakeProvider {
    /// `http://127.0.0.1:PORT/api/v1`: the base URL of the OpenRouter side (catalog included).
    pub fn openrouter_url(&self) -> String {
        format!("http://{}{PREFIX}", self.addr())
    }

    /// Serve `models` as the catalog's `data` (an array is paged; anything else is sent as
    /// is, to test malformed catalogs). Default: the `models.json` recording.
    pub fn set_catalog(&self, models: Value) {
        self.shared.catalog.lock().models = models;
    }

    /// Answer every catalog request with this status and OpenRouter's error envelope
    /// (`None`: answer normally again).
    pub fn fail_catalog(&self, status: Option<u16>) {
        self.shared.catalog.lock().fail = status;
    }

    /// Models per catalog page when the request gives no `limit` (`None`: all on one page).
    pub fn set_catalog_page_size(&self, size: Option<usize>) {
        self.shared.catalog.lock().page_size = size;
    }

    /// The catalog requests received so far (not in [`calls`](FakeProvider::calls)).
    pub fn catalog_calls(&self) -> Vec<Call> {
        self.shared
            .catalog
            .lock()
            .calls
            .iter()
            .map(RawCall::to_call)
            .collect()
    }
}

/// The reply to a catalog request, or `None` for every other request.
pub(crate) fn answer(shared: &Shared, parts: &Parts) -> Option<Response<FakeBody>> {
    let path = parts.uri.path();
    let rest = path.strip_prefix(PREFIX)?.strip_prefix("/models")?;
    if parts.method != Method::GET || !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let mut catalog = shared.catalog.lock();
    catalog.calls.push(RawCall {
        path: path.to_owned(),
        headers: parts.headers.clone(),
        model: None,
        stream: false,
        body: Bytes::new(),
    });
    if let Some(status) = catalog.fail {
        return Some(error(status, "The fake catalog was scripted to fail"));
    }
    if rest.is_empty() {
        return Some(page(&catalog, parts.uri.query().unwrap_or_default()));
    }
    let id = rest
        .strip_prefix('/')
        .and_then(|r| r.strip_suffix("/endpoints"))
        .filter(|id| id.split('/').count() == 2);
    let model = id.and_then(|id| catalog.models.as_array()?.iter().find(|m| m["id"] == id));
    Some(match model {
        Some(model) => endpoints(model),
        None => error(404, "Model not found"),
    })
}

/// One page: `offset`/`limit` from the query, `links.next` while models remain.
fn page(catalog: &Inner, query: &str) -> Response<FakeBody> {
    let Some(models) = catalog.models.as_array() else {
        return ok(json!({ "data": catalog.models }));
    };
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.parse::<usize>().ok())
    };
    let offset = param("offset").unwrap_or(0).min(models.len());
    let limit = param("limit")
        .or(catalog.page_size)
        .unwrap_or(models.len())
        .max(1);
    let end = offset.saturating_add(limit).min(models.len());
    let next = (end < models.len()).then(|| format!("{PREFIX}/models?offset={end}&limit={limit}"));
    ok(json!({
        "data": &models[offset..end],
        "links": {"next": next},
        "total_count": models.len(),
    }))
}

/// The `endpoints.json` recording, made about `model`: its id, name, prices and context.
fn endpoints(model: &Value) -> Response<FakeBody> {
    let mut reply: Value = serde_json::from_str(ENDPOINTS).unwrap_or_default();
    let data = &mut reply["data"];
    for field in ["id", "name", "architecture", "description"] {
        if !model[field].is_null() {
            data[field] = model[field].clone();
        }
    }
    for endpoint in data["endpoints"].as_array_mut().into_iter().flatten() {
        endpoint["model_id"] = model["id"].clone();
        endpoint["model_name"] = model["name"].clone();
        endpoint["pricing"] = model["pricing"].clone();
        endpoint["context_length"] = model["context_length"].clone();
    }
    ok(reply)
}

fn ok(body: Value) -> Response<FakeBody> {
    json_response(StatusCode::OK, &body)
}

/// OpenRouter's error envelope: `{"error": {"code": <int>, "message"}}`.
fn error(status: u16, message: &str) -> Response<FakeBody> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"error": {"code": status.as_u16(), "message": message}});
    json_response(status, &body)
}

fn json_response(status: StatusCode, body: &Value) -> Response<FakeBody> {
    let mut response = Response::new(FakeBody::full(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
