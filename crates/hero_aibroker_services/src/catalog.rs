//! What one connected server offers: its tools, resources, resource templates and prompts,
//! listed when it connects and again whenever it sends a `notifications/*/list_changed`.

use std::sync::Arc;

use rmcp::model::{Prompt, Resource, ResourceTemplate, Tool};
use rmcp::service::{Peer, RoleClient};

/// One server's listings.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub tools: Arc<Vec<Tool>>,
    pub resources: Vec<Resource>,
    pub templates: Vec<ResourceTemplate>,
    pub prompts: Vec<Prompt>,
    /// The server declared the resources capability.
    pub offers_resources: bool,
    /// The server declared the prompts capability.
    pub offers_prompts: bool,
}

impl Catalog {
    /// Whether `uri` is one of its listed resources, or starts with the fixed part (before the
    /// first `{`) of one of its templates.
    pub fn serves_uri(&self, uri: &str) -> Option<Match> {
        if self.resources.iter().any(|r| r.uri == uri) {
            return Some(Match::Listed);
        }
        self.templates
            .iter()
            .filter_map(|t| {
                let fixed = t.uri_template.split('{').next().unwrap_or("");
                (!fixed.is_empty() && uri.starts_with(fixed)).then_some(fixed.len())
            })
            .max()
            .map(Match::Template)
    }
}

/// How a URI matched a server's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Match {
    /// Matched a template's fixed prefix of this many bytes (longer is better).
    Template(usize),
    /// A listed resource: the best match.
    Listed,
}

/// Lists everything `peer` offers. A failing `tools/list` fails the connection; failing
/// resource or prompt listings are logged and leave those lists empty, so the tools still
/// serve.
pub async fn fetch(server: &str, peer: &Peer<RoleClient>) -> Result<Catalog, String> {
    let tools = peer
        .list_all_tools()
        .await
        .map_err(|e| format!("tools/list failed: {e}"))?;
    let caps = peer.peer_info().map(|i| i.capabilities.clone());
    let offers_resources = caps.as_ref().is_some_and(|c| c.resources.is_some());
    let offers_prompts = caps.as_ref().is_some_and(|c| c.prompts.is_some());
    let mut catalog = Catalog {
        tools: Arc::new(tools),
        offers_resources,
        offers_prompts,
        ..Catalog::default()
    };
    if offers_resources {
        match peer.list_all_resources().await {
            Ok(r) => catalog.resources = r,
            Err(e) => tracing::warn!(server, "resources/list failed: {e}"),
        }
        match peer.list_all_resource_templates().await {
            Ok(t) => catalog.templates = t,
            Err(e) => tracing::warn!(server, "resources/templates/list failed: {e}"),
        }
    }
    if offers_prompts {
        match peer.list_all_prompts().await {
            Ok(p) => catalog.prompts = p,
            Err(e) => tracing::warn!(server, "prompts/list failed: {e}"),
        }
    }
    Ok(catalog)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_uris_beat_template_prefixes() {
        let c = Catalog {
            resources: vec![Resource::new("ping://a/about", "about")],
            templates: vec![
                ResourceTemplate::new("ping://a/echo/{text}", "echo"),
                ResourceTemplate::new("ping://{x}", "any"),
            ],
            ..Catalog::default()
        };
        assert_eq!(c.serves_uri("ping://a/about"), Some(Match::Listed));
        assert_eq!(
            c.serves_uri("ping://a/echo/hi"),
            Some(Match::Template("ping://a/echo/".len()))
        );
        assert_eq!(c.serves_uri("file:///etc/passwd"), None);
        assert!(Match::Listed > Match::Template(100));
    }
}
