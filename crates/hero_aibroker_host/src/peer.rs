//! Who is on the other end of a connection: `SO_PEERCRED` on a Unix socket, the address on
//! TCP, recorded for attribution. [`crate::serve`] puts it into every request as axum's
//! `ConnectInfo<PeerInfo>`.

use std::net::IpAddr;

/// The peer's uid and pid from `SO_PEERCRED` (Unix sockets), or its IP (TCP).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerInfo {
    pub uid: Option<u32>,
    pub pid: Option<i32>,
    /// The peer's address on a TCP connection.
    pub ip: Option<IpAddr>,
}

impl PeerInfo {
    /// The credentials of the process at the other end of `stream` (empty when the OS does
    /// not say).
    pub fn of(stream: &tokio::net::UnixStream) -> PeerInfo {
        let cred = stream.peer_cred().ok();
        PeerInfo {
            uid: cred.map(|c| c.uid()),
            pid: cred.and_then(|c| c.pid()),
            ip: None,
        }
    }

    /// A TCP peer at `ip`.
    pub fn tcp(ip: IpAddr) -> PeerInfo {
        PeerInfo {
            uid: None,
            pid: None,
            ip: Some(ip.to_canonical()),
        }
    }

    /// Whether the peer came over TCP.
    pub fn is_tcp(&self) -> bool {
        self.ip.is_some()
    }

    /// The client name ledgers and audits use: `uds:uid=1000` (stable across a user's
    /// processes), or the IP of a TCP peer (`127.0.0.1`, `2001:db8::1`).
    pub fn client(&self) -> String {
        match (self.ip, self.uid) {
            (Some(ip), _) => ip.to_string(),
            (None, Some(uid)) => format!("uds:uid={uid}"),
            (None, None) => "uds".to_owned(),
        }
    }
}

/// So routers served by `axum::serve(..).into_make_service_with_connect_info::<PeerInfo>()`
/// (in-process tests) see the same extension as under [`crate::serve`].
impl
    axum::extract::connect_info::Connected<
        axum::serve::IncomingStream<'_, tokio::net::UnixListener>,
    > for PeerInfo
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::UnixListener>) -> Self {
        PeerInfo::of(stream.io())
    }
}

#[cfg(test)]
mod tests {
    use super::PeerInfo;

    #[tokio::test]
    async fn our_own_uid_and_pid() {
        let (a, _b) = tokio::net::UnixStream::pair().expect("pair");
        let peer = PeerInfo::of(&a);
        assert_eq!(peer.uid, Some(rustix::process::geteuid().as_raw()));
        assert_eq!(peer.pid, Some(std::process::id() as i32));
        assert_eq!(
            peer.client(),
            format!("uds:uid={}", rustix::process::geteuid().as_raw())
        );
        assert_eq!(PeerInfo::default().client(), "uds");
    }
}
