//! Resources and prompts across the ready servers, and pushing list changes to the MCP
//! sessions. Prompt names follow the tool rule (`server__name` on collisions or with
//! `MCP_TOOL_PREFIX=always`); resource URIs are kept as they are (they are globally unique in
//! practice) and `resources/read` goes to the server that listed the URI, or else to the
//! server with the longest matching resource-template prefix.

use std::sync::Arc;

use rmcp::ErrorData;
use rmcp::model::{
    GetPromptRequestParams, GetPromptResponse, Prompt, ReadResourceRequestParams,
    ReadResourceResponse, Resource, ResourceTemplate,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::aggregate::{call_error, exposed, resolve_in};
use crate::catalog::Catalog;
use crate::hub::Hub;
use crate::sessions::Changed;

impl Hub {
    /// Whether any ready server offers (resources, prompts).
    pub fn offers(&self) -> (bool, bool) {
        let cats = self.sup.catalogs();
        (
            cats.iter().any(|(_, c)| c.offers_resources),
            cats.iter().any(|(_, c)| c.offers_prompts),
        )
    }

    /// Every ready server's resources, in config order.
    pub fn resources(&self) -> Vec<Resource> {
        self.sup
            .catalogs()
            .iter()
            .flat_map(|(_, c)| c.resources.iter().cloned())
            .collect()
    }

    /// Every ready server's resource templates, in config order.
    pub fn resource_templates(&self) -> Vec<ResourceTemplate> {
        self.sup
            .catalogs()
            .iter()
            .flat_map(|(_, c)| c.templates.iter().cloned())
            .collect()
    }

    /// Every ready server's prompts under the names clients see.
    pub fn prompts(&self) -> Vec<Prompt> {
        let cats = self.sup.catalogs();
        let servers = prompt_lists(&cats);
        exposed(&servers, self.mode)
            .into_iter()
            .map(|(name, si, i)| {
                let mut p = servers[si].1[i].clone();
                p.name = name;
                p
            })
            .collect()
    }

    /// `resources/read`, routed to the server that offers the URI.
    pub async fn read_resource(
        &self,
        params: ReadResourceRequestParams,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = params.uri.clone();
        let owner = self
            .sup
            .catalogs()
            .into_iter()
            .filter_map(|(server, c)| c.serves_uri(&uri).map(|m| (m, server)))
            // The best match; on a tie the first server in config order.
            .fold(None, |best: Option<(_, String)>, (m, s)| match best {
                Some((bm, _)) if bm >= m => best,
                _ => Some((m, s)),
            });
        let Some((_, server)) = owner else {
            return Err(ErrorData::resource_not_found(
                format!(
                    "no ready MCP server offers the resource {uri:?} (resources/list and resources/templates/list show what they offer)"
                ),
                Some(json!({"uri": uri, "reason": "unknown_resource"})),
            ));
        };
        self.sup
            .read_resource(&server, params)
            .await
            .map_err(|e| call_error(&uri, e))
    }

    /// `prompts/get`, routed by the prompt's exposed name.
    pub async fn get_prompt(
        &self,
        mut params: GetPromptRequestParams,
    ) -> Result<GetPromptResponse, ErrorData> {
        let cats = self.sup.catalogs();
        let name = params.name.clone();
        let Some((server, own)) = resolve_in(&prompt_lists(&cats), self.mode, &name) else {
            return Err(ErrorData::invalid_params(
                format!(
                    "unknown prompt {name:?} (prompts/list shows the prompts of the ready servers)"
                ),
                Some(json!({"prompt": name, "reason": "unknown_prompt"})),
            ));
        };
        params.name = own;
        self.sup
            .get_prompt(&server, params)
            .await
            .map_err(|e| call_error(&name, e))
    }

    /// What the MCP sessions see, to tell when it changed.
    fn snapshot(&self) -> [String; 3] {
        let text = |v: serde_json::Result<String>| v.unwrap_or_default();
        [
            text(serde_json::to_string(&self.tools())),
            text(serde_json::to_string(&(
                self.resources(),
                self.resource_templates(),
            ))),
            text(serde_json::to_string(&self.prompts())),
        ]
    }

    /// Until `stop`: whenever a server's state or listings change, sends every MCP session the
    /// list_changed notifications of the lists that look different.
    pub async fn forward_changes(self: Arc<Self>, stop: CancellationToken) {
        let mut rx = self.sup.subscribe();
        let mut last = self.snapshot();
        loop {
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                () = stop.cancelled() => return,
            }
            let now = self.snapshot();
            let changed = Changed {
                tools: now[0] != last[0],
                resources: now[1] != last[1],
                prompts: now[2] != last[2],
            };
            last = now;
            if changed.any() {
                tracing::debug!(?changed, "forwarding list_changed to MCP sessions");
                self.sessions.notify(changed).await;
            }
        }
    }
}

fn prompt_lists(cats: &[(String, Arc<Catalog>)]) -> Vec<(&str, &[Prompt])> {
    cats.iter()
        .map(|(s, c)| (s.as_str(), c.prompts.as_slice()))
        .collect()
}
