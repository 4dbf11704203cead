//! The live MCP client sessions on `/mcp`, so that changes can be pushed to them: when a
//! server becomes ready or goes away, or a server says its tools, resources or prompts
//! changed, every session gets the matching `notifications/*/list_changed`. Closed sessions
//! are dropped as they are found.

use std::sync::{Arc, Mutex};

use rmcp::service::{Peer, RoleServer};

/// Which listings changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changed {
    pub tools: bool,
    pub resources: bool,
    pub prompts: bool,
}

impl Changed {
    /// Whether anything changed.
    pub fn any(self) -> bool {
        self.tools || self.resources || self.prompts
    }
}

/// The peers of the live sessions. Cheap to clone.
#[derive(Clone, Default)]
pub struct Sessions {
    peers: Arc<Mutex<Vec<Peer<RoleServer>>>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Peer<RoleServer>>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds the peer of a session that just completed its handshake.
    pub fn add(&self, peer: Peer<RoleServer>) {
        let mut peers = self.lock();
        peers.retain(|p| !p.is_transport_closed());
        peers.push(peer);
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        let mut peers = self.lock();
        peers.retain(|p| !p.is_transport_closed());
        peers.len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sends the list_changed notifications of `what` to every open session; a session whose
    /// transport is closed (or fails the send) is dropped.
    pub async fn notify(&self, what: Changed) {
        if !what.any() {
            return;
        }
        let peers: Vec<Peer<RoleServer>> = {
            let mut peers = self.lock();
            peers.retain(|p| !p.is_transport_closed());
            peers.clone()
        };
        let mut failed = 0usize;
        for peer in &peers {
            let mut ok = true;
            if what.tools {
                ok &= peer.notify_tool_list_changed().await.is_ok();
            }
            if what.resources {
                ok &= peer.notify_resource_list_changed().await.is_ok();
            }
            if what.prompts {
                ok &= peer.notify_prompt_list_changed().await.is_ok();
            }
            failed += usize::from(!ok);
        }
        if failed > 0 {
            // A failed send means the session's transport is gone: the next prune drops it.
            tracing::debug!(sessions = failed, "MCP sessions gone before a list_changed");
            self.lock().retain(|p| !p.is_transport_closed());
        }
    }
}
