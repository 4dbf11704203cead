//! `providers.check`: does each provider key work? One cheap read-only call per instance, the
//! one its driver chooses ([`super::Driver::check_key`]; `GET {base_url}/models` for the
//! OpenAI-compatible kinds), all at once. Instance health is not touched.

use std::sync::Arc;

use hero_aibroker_sdk::admin::KeyCheck;

use super::{Driver, Drivers};
use crate::config::registry::Registry;
use crate::health::pool::Instance;

/// Checks every instance of `reg`, or only `provider`'s, each with its kind's driver; `None`
/// when no provider has that name.
pub async fn check(
    reg: &Registry,
    drivers: &Drivers,
    client: &reqwest::Client,
    provider: Option<&str>,
) -> Option<Vec<KeyCheck>> {
    if let Some(name) = provider
        && !reg.providers.contains_key(name)
    {
        return None;
    }
    let work: Vec<(Arc<dyn Driver>, Arc<Instance>)> = reg
        .providers
        .values()
        .filter(|p| provider.is_none_or(|name| p.name == name))
        .flat_map(|p| p.instances.iter().cloned())
        .map(|i| (drivers.for_provider(reg, &i.provider), i))
        .collect();
    let checks = work.iter().map(|(driver, i)| driver.check_key(client, i));
    Some(futures_util::future::join_all(checks).await)
}

/// A connection error: what failed and its innermost cause (e.g. "Connection refused"),
/// without the URL.
pub(super) fn transport(e: &reqwest::Error) -> String {
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
