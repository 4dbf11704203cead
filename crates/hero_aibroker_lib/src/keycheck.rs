//! `providers.check`: does each provider key work? One `GET {base_url}/models` per instance,
//! all at once, each bounded in time and size. Read-only: instance health is not touched.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hero_aibroker_sdk::admin::KeyCheck;

use crate::pool::Instance;
use crate::state::AppState;

/// Longest a provider may take to answer a check.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest models list read (OpenRouter's is ~1 MB).
const MAX_BODY: usize = 8 << 20;

/// Checks every instance, or only `provider`'s; `None` when no provider has that name.
pub async fn check(state: &AppState, provider: Option<&str>) -> Option<Vec<KeyCheck>> {
    let reg = state.registry.load();
    if let Some(name) = provider
        && !reg.providers.contains_key(name)
    {
        return None;
    }
    let instances: Vec<Arc<Instance>> = reg
        .providers
        .values()
        .filter(|p| provider.is_none_or(|name| p.name == name))
        .flat_map(|p| p.instances.iter().cloned())
        .collect();
    let checks = instances.iter().map(|i| one(&state.client, i));
    Some(futures_util::future::join_all(checks).await)
}

async fn one(client: &reqwest::Client, i: &Instance) -> KeyCheck {
    let t0 = Instant::now();
    let url = format!("{}/models", i.base_url);
    let mut req = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json");
    if let Some(key) = &i.key {
        req = req.bearer_auth(key.expose());
    }
    let answer = tokio::time::timeout(TIMEOUT, async {
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let body = read_bounded(resp).await?;
        Ok::<_, reqwest::Error>((status, body))
    })
    .await;
    let mut check = KeyCheck {
        instance: i.id.clone(),
        provider: i.provider.clone(),
        key_hint: i.key.as_ref().map(crate::secret::Secret::masked),
        ok: false,
        http_status: None,
        latency_ms: t0.elapsed().as_millis() as u64,
        models: None,
        error: None,
    };
    match answer {
        Err(_) => check.error = Some(format!("no answer within {}s", TIMEOUT.as_secs())),
        Ok(Err(e)) => check.error = Some(transport(&e)),
        Ok(Ok((status, body))) => {
            check.http_status = Some(status);
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if (200..300).contains(&status) {
                check.ok = true;
                check.models = v["data"].as_array().map(|a| a.len() as u64);
            } else {
                let message = v["error"]["message"]
                    .as_str()
                    .map(|m| format!(": {}", crate::error::printable(m)))
                    .unwrap_or_default();
                check.error = Some(format!("HTTP {status}{message}"));
            }
        }
    }
    check
}

/// The body, or as much of it as fits in [`MAX_BODY`] (a list cut short still proves the key).
async fn read_bounded(mut resp: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY {
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A connection error: what failed and its innermost cause (e.g. "Connection refused"),
/// without the URL.
fn transport(e: &reqwest::Error) -> String {
    let what = if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut root: &dyn std::error::Error = e;
    while let Some(c) = root.source() {
        root = c;
    }
    crate::error::printable(&format!("{what}: {root}"))
}
