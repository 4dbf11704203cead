//! Sockets and private files: the socket directory `0700` owned by us (a symlink, a foreign
//! owner or group/world write access is refused), sockets `0600`, a stale socket replaced only
//! after a failed connect, the file removed when the listener is done; and [`prepare_file`] for
//! databases and histories (`0600` in a `0700` directory).

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

/// Why a socket could not be set up. Messages are one line an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("cannot create socket directory {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("socket directory {0} is a symlink; refusing to use it")]
    Symlink(PathBuf),
    #[error(
        "socket directory {path} is owned by uid {owner}, not by us (uid {me}); refusing to use it"
    )]
    Owner { path: PathBuf, owner: u32, me: u32 },
    #[error(
        "socket directory {path} is writable by group or others (mode {mode:o}); refusing to use it"
    )]
    Writable { path: PathBuf, mode: u32 },
    #[error(
        "{0} is in use: another process is listening on it (stop it first, e.g. scripts/stop.sh)"
    )]
    InUse(PathBuf),
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    #[error("cannot bind {path}: {source}")]
    Bind { path: PathBuf, source: io::Error },
}

/// Creates (or checks) the service's socket directory.
pub fn prepare_dir(dir: &Path) -> Result<(), SocketError> {
    let create = |source| SocketError::CreateDir {
        path: dir.to_owned(),
        source,
    };
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent).map_err(create)?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(create(e)),
    }
    let meta = fs::symlink_metadata(dir).map_err(create)?;
    if meta.file_type().is_symlink() {
        return Err(SocketError::Symlink(dir.to_owned()));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(SocketError::Owner {
            path: dir.to_owned(),
            owner: meta.uid(),
            me,
        });
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(SocketError::Writable {
            path: dir.to_owned(),
            mode,
        });
    }
    if mode != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(create)?;
    }
    Ok(())
}

/// A bound socket that removes its file when dropped.
#[derive(Debug)]
pub struct BoundSocket {
    pub listener: UnixListener,
    pub guard: SocketGuard,
}

/// Removes the socket file on drop.
#[derive(Debug)]
pub struct SocketGuard(PathBuf);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Binds `path` with mode `0600`, replacing a stale socket but never a live one.
pub fn bind(path: &Path) -> Result<BoundSocket, SocketError> {
    if let Ok(meta) = fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(SocketError::NotASocket(path.to_owned()));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(SocketError::InUse(path.to_owned()));
        }
        tracing::info!(path = %path.display(), "replacing stale socket");
        let _ = fs::remove_file(path);
    }
    let bind_err = |source| SocketError::Bind {
        path: path.to_owned(),
        source,
    };
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    let guard = SocketGuard(path.to_owned());
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(bind_err)?;
    Ok(BoundSocket { listener, guard })
}

/// Creates `path` as an empty `0600` file (in a `0700` directory if its directory is missing),
/// or tightens an existing one that group or others could read to `0600`. SQLite then opens the file with the mode it already has, so a store or an
/// audit database is never readable by others, not even for a moment.
pub fn prepare_file(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // A file others can read (made by hand, or by an older version): tightened.
            let mode = fs::metadata(path)?.mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "tightening mode {mode:o} to 600");
                fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dir_and_socket_modes_stale_and_live() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("a/hero_aibroker");
        prepare_dir(&dir).expect("created");
        assert_eq!(fs::metadata(&dir).expect("meta").mode() & 0o777, 0o700);

        let sock = dir.join("rest.sock");
        let bound = bind(&sock).expect("bound");
        assert_eq!(fs::metadata(&sock).expect("meta").mode() & 0o777, 0o600);
        assert!(
            matches!(bind(&sock), Err(SocketError::InUse(_))),
            "live socket refused"
        );

        // A stale socket file (listener gone, file left behind) is replaced.
        let std_listener = bound.listener.into_std().expect("std");
        std::mem::forget(bound.guard);
        drop(std_listener);
        assert!(sock.exists());
        let again = bind(&sock).expect("stale socket replaced");
        drop(again);
        assert!(!sock.exists(), "guard removes the file");
    }

    #[test]
    fn private_file_in_private_dir_existing_kept() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("new/dir/store.db");
        prepare_file(&path).expect("created");
        assert_eq!(fs::metadata(&path).expect("meta").mode() & 0o777, 0o600);
        let dir = path.parent().expect("dir");
        assert_eq!(fs::metadata(dir).expect("meta").mode() & 0o777, 0o700);
        fs::write(&path, b"kept").expect("write");
        prepare_file(&path).expect("existing file is fine");
        assert_eq!(fs::read(&path).expect("read"), b"kept");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        prepare_file(&path).expect("tightened");
        assert_eq!(fs::metadata(&path).expect("meta").mode() & 0o777, 0o600);
        assert_eq!(fs::read(&path).expect("read"), b"kept", "content untouched");
    }

    #[test]
    fn refuses_writable_dir_symlink_and_non_socket() {
        let tmp = tempfile::tempdir().expect("tmp");
        let open = tmp.path().join("open");
        fs::create_dir(&open).expect("mkdir");
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).expect("chmod");
        assert!(matches!(
            prepare_dir(&open),
            Err(SocketError::Writable { .. })
        ));

        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(tmp.path(), &link).expect("symlink");
        assert!(matches!(prepare_dir(&link), Err(SocketError::Symlink(_))));

        let file = tmp.path().join("file.sock");
        fs::write(&file, b"x").expect("write");
        assert!(matches!(bind(&file), Err(SocketError::NotASocket(_))));

        let loose = tmp.path().join("loose");
        fs::create_dir(&loose).expect("mkdir");
        fs::set_permissions(&loose, fs::Permissions::from_mode(0o755)).expect("chmod");
        prepare_dir(&loose).expect("tightened");
        assert_eq!(fs::metadata(&loose).expect("meta").mode() & 0o777, 0o700);
    }
}
