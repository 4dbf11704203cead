//! The console's state: clients for the broker's sockets, the admin token, and the sessions of
//! signed-in browsers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hero_aibroker_sdk::client::{RestClient, RpcClient};
use hero_aibroker_sdk::paths;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How long a session lasts without use.
const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; the least recently used go first.
const MAX_SESSIONS: usize = 1000;

/// Who a session belongs to.
#[derive(Clone, PartialEq, Eq)]
pub enum Role {
    /// The operator: signed in with the admin token, or any visitor when there is none.
    Admin,
    /// A broker key holder: sees only that key's own page. The key is kept to call the REST
    /// surface as that key, never shown.
    Key(String),
}

impl std::fmt::Debug for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Admin => f.write_str("Admin"),
            Role::Key(_) => f.write_str("Key(***)"),
        }
    }
}

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub role: Role,
    /// Sent back by every mutation (`x-csrf-token`); a request from another site cannot know it.
    pub csrf: String,
    last_used: Instant,
}

/// The console.
pub struct Console {
    pub socket_dir: PathBuf,
    /// JSON-RPC on `rpc.sock`, with the admin token when there is one.
    pub rpc: RpcClient,
    token_digest: Option<[u8; 32]>,
    /// The admin token itself, sent as the Bearer of the console's own REST calls (the
    /// playground) so they pass the broker's authentication layer. Never printed.
    admin_token: Option<String>,
    sessions: Mutex<HashMap<String, Session>>,
    pub started: Instant,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("socket_dir", &self.socket_dir)
            .field("protected", &self.protected())
            .finish_non_exhaustive()
    }
}

fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl Console {
    /// A console for the broker whose sockets are in `socket_dir`.
    pub fn new(socket_dir: &Path, admin_token: Option<String>) -> Self {
        let mut rpc = RpcClient::new(socket_dir.join(paths::RPC_SOCK))
            .with_timeout(Some(Duration::from_secs(10)));
        if let Some(t) = &admin_token {
            rpc = rpc.with_token(t.clone());
        }
        Console {
            socket_dir: socket_dir.to_owned(),
            rpc,
            token_digest: admin_token
                .as_ref()
                .map(|t| Sha256::digest(t.as_bytes()).into()),
            admin_token,
            sessions: Mutex::new(HashMap::new()),
            started: Instant::now(),
        }
    }

    /// Whether signing in needs the admin token.
    pub fn protected(&self) -> bool {
        self.token_digest.is_some()
    }

    /// Whether `presented` is the admin token (constant time over digests).
    pub fn is_admin_token(&self, presented: &str) -> bool {
        let Some(expected) = &self.token_digest else {
            return false;
        };
        let got: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(got.ct_eq(expected))
    }

    /// The REST surface, as `key` when given (a key holder's session).
    pub fn rest(&self, key: Option<&str>) -> RestClient {
        let c = RestClient::new(self.socket_dir.join(paths::REST_SOCK))
            .with_timeout(Some(Duration::from_secs(30)));
        match key {
            Some(k) => c.with_api_key(k),
            None => c,
        }
    }

    /// The Bearer of the console's own REST calls: the admin token, when there is one.
    pub fn rest_bearer(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    /// `rest.sock`'s path.
    pub fn rest_sock(&self) -> PathBuf {
        self.socket_dir.join(paths::REST_SOCK)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens a session for `role`; returns its id (the cookie's value).
    pub fn open_session(&self, role: Role) -> (String, Session) {
        let id = random_hex();
        let session = Session {
            role,
            csrf: random_hex(),
            last_used: Instant::now(),
        };
        let mut map = self.lock();
        map.retain(|_, s| s.last_used.elapsed() < SESSION_IDLE);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(id.clone(), session.clone());
        (id, session)
    }

    /// The live session `id`, touched.
    pub fn session(&self, id: &str) -> Option<Session> {
        let mut map = self.lock();
        let s = map.get_mut(id)?;
        if s.last_used.elapsed() >= SESSION_IDLE {
            map.remove(id);
            return None;
        }
        s.last_used = Instant::now();
        Some(s.clone())
    }

    /// Ends session `id`.
    pub fn close_session(&self, id: &str) {
        self.lock().remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_and_the_token() {
        let c = Console::new(
            Path::new("/nonexistent"),
            Some("t0k3n-0123456789abcdef".into()),
        );
        assert!(c.protected());
        assert!(c.is_admin_token("t0k3n-0123456789abcdef"));
        assert!(!c.is_admin_token("t0k3n"));
        let (id, s) = c.open_session(Role::Key("sk-hab-secret".into()));
        assert_eq!(c.session(&id).expect("live").csrf, s.csrf);
        assert_eq!(format!("{:?}", s.role), "Key(***)");
        c.close_session(&id);
        assert!(c.session(&id).is_none());
        let open = Console::new(Path::new("/nonexistent"), None);
        assert!(!open.protected() && !open.is_admin_token(""));
    }
}
