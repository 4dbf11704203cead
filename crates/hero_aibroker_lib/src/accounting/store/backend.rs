//! The two databases behind [`super::Store`]: SQLite (embedded, the default) and PostgreSQL
//! (shared by several brokers). Every query is written once: [`on_pool!`] runs its body against
//! whichever pool the store holds, with the body's database type named, so each query is
//! type-checked for both. Static SQL uses `$1, $2, …` placeholders, which both accept;
//! `QueryBuilder` writes each database's own. The few spots where the dialects differ are the
//! constants of [`Dialect`].

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Postgres, Row, Sqlite};

use super::{StoreOptions, redact};

/// The migrations of each dialect, embedded at build time. Versions match one for one.
pub(super) static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
pub(super) static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database a store is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

impl StoreKind {
    /// `sqlite` or `postgres`, as `/health` reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Postgres => "postgres",
        }
    }
}

/// A pool of either database.
#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Pg(PgPool),
}

/// Runs `$body` against the pool `$pool`, with `$p` bound to the concrete pool and `$db` naming
/// its database type (`sqlx::Sqlite` or `sqlx::Postgres`).
macro_rules! on_pool {
    ($pool:expr, |$p:ident, $db:ident| $body:expr) => {
        match $pool {
            $crate::accounting::store::backend::Pool::Sqlite($p) => {
                #[allow(dead_code)]
                type $db = sqlx::Sqlite;
                $body
            }
            $crate::accounting::store::backend::Pool::Pg($p) => {
                #[allow(dead_code)]
                type $db = sqlx::Postgres;
                $body
            }
        }
    };
}
pub(crate) use on_pool;

/// What differs between the two dialects.
pub(crate) trait Dialect {
    /// Opens a write transaction. SQLite takes the write lock up front (`IMMEDIATE`) instead of
    /// failing at the first write; PostgreSQL locks rows as they are written.
    const BEGIN_WRITE: &'static str;
    /// The larger / smaller of two values (`MAX(a, b)` in SQLite, `GREATEST(a, b)` in PostgreSQL).
    const GREATEST: &'static str;
    const LEAST: &'static str;
    /// Locks the rows a `SELECT` reads until the transaction ends (SQLite's write transaction
    /// already excludes every other writer).
    const FOR_UPDATE: &'static str;
}

impl Dialect for Sqlite {
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const GREATEST: &'static str = "MAX";
    const LEAST: &'static str = "MIN";
    const FOR_UPDATE: &'static str = "";
}

impl Dialect for Postgres {
    const BEGIN_WRITE: &'static str = "BEGIN";
    const GREATEST: &'static str = "GREATEST";
    const LEAST: &'static str = "LEAST";
    const FOR_UPDATE: &'static str = " FOR UPDATE";
}

/// Column reads shared by both row types, so row decoders are written once.
pub(crate) trait Cols {
    fn text(&self, c: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, c: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, c: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, c: &str) -> Result<Option<i64>, sqlx::Error>;
    fn real(&self, c: &str) -> Result<f64, sqlx::Error>;
    fn opt_real(&self, c: &str) -> Result<Option<f64>, sqlx::Error>;
    fn flag(&self, c: &str) -> Result<bool, sqlx::Error>;
}

macro_rules! cols_for {
    ($row:ty) => {
        impl Cols for $row {
            fn text(&self, c: &str) -> Result<String, sqlx::Error> {
                self.try_get(c)
            }
            fn opt_text(&self, c: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(c)
            }
            fn int(&self, c: &str) -> Result<i64, sqlx::Error> {
                self.try_get(c)
            }
            fn opt_int(&self, c: &str) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(c)
            }
            fn real(&self, c: &str) -> Result<f64, sqlx::Error> {
                self.try_get(c)
            }
            fn opt_real(&self, c: &str) -> Result<Option<f64>, sqlx::Error> {
                self.try_get(c)
            }
            fn flag(&self, c: &str) -> Result<bool, sqlx::Error> {
                self.try_get(c)
            }
        }
    };
}
cols_for!(SqliteRow);
cols_for!(PgRow);

/// Where a database URL points.
pub(super) enum Target {
    Sqlite(PathBuf),
    Postgres(String),
}

/// The database a URL names: `postgres://…` / `postgresql://…`, `sqlite:/abs/path.db`,
/// `sqlite://path`, or a plain filesystem path.
pub(super) fn target(url: &str) -> Result<Target, String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Target::Postgres(url.to_owned()));
    }
    let rest = if let Some(r) = url.strip_prefix("sqlite://") {
        r
    } else if let Some(r) = url.strip_prefix("sqlite:") {
        r
    } else if url.contains("://") {
        let scheme = url.split("://").next().unwrap_or_default();
        return Err(format!(
            "{scheme:?} databases are not supported; use a SQLite path or a postgres:// URL"
        ));
    } else {
        url
    };
    // Connection options in the URL (`?mode=...`) would fight the ones set here.
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Err("give a database file path (in-memory databases are not supported)".into());
    }
    Ok(Target::Sqlite(PathBuf::from(path)))
}

/// Opens a SQLite pool at `path` (created 0600 in a 0700 directory when missing): WAL,
/// `synchronous=NORMAL`, the busy timeout, foreign keys on.
pub(super) async fn open_sqlite(
    path: &std::path::Path,
    opts: &StoreOptions,
) -> Result<SqlitePool, Box<dyn std::error::Error + Send + Sync>> {
    hero_aibroker_host::socket::prepare_file(path)?;
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // NORMAL in WAL mode: a commit survives a process crash (kill -9); only a power
        // loss can undo the last transactions, and never corrupts the database.
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(opts.busy_timeout)
        .foreign_keys(true);
    Ok(SqlitePoolOptions::new()
        .max_connections(opts.max_connections.max(1))
        .min_connections(1)
        .connect_with(options)
        .await?)
}

/// Opens a PostgreSQL pool. Connections are made lazily beyond the first, and a connection
/// that cannot be had within `busy_timeout` fails the statement (a down database must not hold
/// the ledger writer or an admin call for long); the pool reconnects by itself once the server
/// is back.
pub(super) async fn open_pg(
    url: &str,
    opts: &StoreOptions,
) -> Result<PgPool, Box<dyn std::error::Error + Send + Sync>> {
    let options = PgConnectOptions::from_str(url)?.application_name("hero_aibroker");
    Ok(PgPoolOptions::new()
        // The ledger writer, lease renewals and admin reads each want one.
        .max_connections(opts.max_connections.max(4))
        .min_connections(1)
        .acquire_timeout(opts.busy_timeout.max(Duration::from_secs(1)))
        .connect_with(options)
        .await
        .map_err(|e| format!("{e} (database {})", redact(url)))?)
}
