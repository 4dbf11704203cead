//! Who is on the other end of a Unix-socket connection: `SO_PEERCRED`, recorded for
//! attribution. [`crate::serve`] puts it into every request as axum's `ConnectInfo<PeerInfo>`.

/// The peer's uid and pid from `SO_PEERCRED`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerInfo {
    pub uid: Option<u32>,
    pub pid: Option<i32>,
}

impl PeerInfo {
    /// The credentials of the process at the other end of `stream` (empty when the OS does
    /// not say).
    pub fn of(stream: &tokio::net::UnixStream) -> PeerInfo {
        let cred = stream.peer_cred().ok();
        PeerInfo {
            uid: cred.map(|c| c.uid()),
            pid: cred.and_then(|c| c.pid()),
        }
    }

    /// The client name ledgers and audits use: `uds:uid=1000` (stable across a user's processes).
    pub fn client(&self) -> String {
        match self.uid {
            Some(uid) => format!("uds:uid={uid}"),
            None => "uds".to_owned(),
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
