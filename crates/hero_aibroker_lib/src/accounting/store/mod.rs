//! The store: the broker's persistent state behind one sqlx pool — the usage ledger
//! (`request_logs`), broker API keys (`api_keys`, secrets never stored, only their SHA-256),
//! runtime provider priorities, instance health (`key_state`), backend circuits
//! (`circuit_state`), and the tables later features fill (`mothers`).
//!
//! SQLite in WAL mode is the embedded backend. The SQL is kept portable to PostgreSQL
//! (standard types, `ON CONFLICT`, `RETURNING`, placeholders through `QueryBuilder` where the
//! query is built at runtime) so a server backend can be added without rewriting queries.
//! Queries are runtime queries (`sqlx::query`), not the checked macros: there is no database at
//! build time.
//!
//! The schema lives in `migrations/`, embedded in the binary and applied by [`Store::open`]. A
//! database migrated by a newer hero_aibroker is refused with [`StoreError::NewerSchema`]
//! rather than half-understood.

mod circuits;
mod logs;
mod mothers;
pub use mothers::{MotherRow, mother_id};
mod rollup;

pub use circuits::CircuitRow;

use std::path::PathBuf;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Executor, Row};

/// The schema migrations, embedded at build time.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened (bad URL, directory not creatable, file not readable).
    #[error("cannot open the database {target}: {source}")]
    Open {
        /// The database, as given, with any password removed.
        target: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The database was migrated by a newer hero_aibroker.
    #[error(
        "the database schema (version {found}) is newer than this hero_aibroker knows (version {known}); upgrade hero_aibroker or use another database"
    )]
    NewerSchema { found: i64, known: i64 },
    /// Applying the embedded migrations failed.
    #[error("cannot migrate the database schema of {target}: {source}")]
    Migrate {
        target: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// `update_key` named a key that does not exist.
    #[error("no API key with id {0:?} in the database")]
    NoSuchKey(String),
    /// A query failed.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// Tunables of [`Store::open_with`]; [`Store::open`] uses the defaults.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// How long a statement waits for another connection's write lock before failing
    /// (`SQLITE_BUSY`). Default 5 s.
    pub busy_timeout: Duration,
    /// Connections in the pool: one is the ledger writer's, the rest serve reads (WAL lets
    /// readers run beside the writer). Default 2: each connection keeps its own page and
    /// prepared-statement caches (several MiB), and admin reads are rare.
    pub max_connections: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            busy_timeout: Duration::from_secs(5),
            max_connections: 2,
        }
    }
}

/// The broker's database. Cheap to clone (a pool handle).
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    path: PathBuf,
}

/// A broker API key as stored: never its secret.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRow {
    pub id: String,
    pub name: String,
    /// SHA-256 of the secret (stored as hex).
    pub hash: [u8; 32],
    /// `sk-hab-…abcd`.
    pub hint: String,
    pub allowed_models: Option<Vec<String>>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_concurrent: Option<u64>,
    pub budget_usd: Option<f64>,
    pub spent_usd: f64,
    pub revoked: bool,
    pub created_ms: i64,
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `url`: `sqlite:/abs/path.db`,
    /// `sqlite://path`, or a plain filesystem path. Creates the parent directory (0700) and the
    /// file (0600) when missing; WAL, `synchronous=NORMAL`, `busy_timeout` 5 s, foreign keys on.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, &StoreOptions::default()).await
    }

    /// [`Store::open`] with explicit [`StoreOptions`].
    pub async fn open_with(url: &str, opts: &StoreOptions) -> Result<Store, StoreError> {
        let open_err = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            target: redact(url),
            source,
        };
        let path = sqlite_path(url).map_err(|m| open_err(m.into()))?;
        let path = std::path::absolute(&path).map_err(|e| open_err(e.into()))?;
        hero_aibroker_host::socket::prepare_file(&path).map_err(|e| open_err(e.into()))?;

        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode: a commit survives a process crash (kill -9); only a power
            // loss can undo the last transactions, and never corrupts the database.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(opts.busy_timeout)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .min_connections(1)
            .connect_with(options)
            .await
            .map_err(|e| open_err(e.into()))?;
        let store = Store { pool, path };

        // Ours to say, before sqlx's migrator reports the unknown version in its own words.
        let known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        if let Some(found) = store.newest_unknown_migration().await?
            && found > known
        {
            store.pool.close().await;
            return Err(StoreError::NewerSchema { found, known });
        }
        if let Err(source) = MIGRATOR.run(&store.pool).await {
            store.pool.close().await;
            return Err(StoreError::Migrate {
                target: store.describe(),
                source,
            });
        }
        Ok(store)
    }

    /// The highest applied migration version this binary does not know, if any.
    async fn newest_unknown_migration(&self) -> Result<Option<i64>, StoreError> {
        let exists: Option<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_optional(&self.pool)
        .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
            .fetch_all(&self.pool)
            .await?;
        Ok(applied
            .into_iter()
            .filter(|v| !MIGRATOR.version_exists(*v))
            .max())
    }

    /// `sqlite:/path/to.db`.
    pub fn describe(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    /// Checkpoints the WAL into the database file and closes every connection.
    pub async fn close(&self) {
        if let Err(e) = self.checkpoint().await {
            tracing::warn!(error = %e, "WAL checkpoint before closing the database failed");
        }
        self.pool.close().await;
    }

    /// Moves the WAL's content into the database file and truncates the WAL, so a copy of the
    /// `.db` file alone is complete.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        self.pool.execute("PRAGMA wal_checkpoint(TRUNCATE)").await?;
        Ok(())
    }

    // ---- keys ----

    /// Stores a new key. Fails on a duplicate id or hash.
    pub async fn insert_key(&self, k: &KeyRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, name, hash, hint, allowed_models, rpm, tpm, max_concurrent, budget_usd, spent_usd, revoked, created_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&k.id)
        .bind(&k.name)
        .bind(hex::encode(k.hash))
        .bind(&k.hint)
        .bind(models_json(k.allowed_models.as_deref())?)
        .bind(k.rpm.map(to_i64))
        .bind(k.tpm.map(to_i64))
        .bind(k.max_concurrent.map(to_i64))
        .bind(k.budget_usd)
        .bind(k.spent_usd)
        .bind(k.revoked)
        .bind(k.created_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Writes every column of a key but `spent_usd`: spend is only ever added by the ledger
    /// ([`Store::insert_logs`]), so an admin edit racing a batch cannot undo a charge.
    pub async fn update_key(&self, k: &KeyRow) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET name = ?, hash = ?, hint = ?, allowed_models = ?, rpm = ?, tpm = ?, \
             max_concurrent = ?, budget_usd = ?, revoked = ?, created_ms = ? WHERE id = ?",
        )
        .bind(&k.name)
        .bind(hex::encode(k.hash))
        .bind(&k.hint)
        .bind(models_json(k.allowed_models.as_deref())?)
        .bind(k.rpm.map(to_i64))
        .bind(k.tpm.map(to_i64))
        .bind(k.max_concurrent.map(to_i64))
        .bind(k.budget_usd)
        .bind(k.revoked)
        .bind(k.created_ms)
        .bind(&k.id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NoSuchKey(k.id.clone()));
        }
        Ok(())
    }

    /// Every key (revoked included), oldest first.
    pub async fn keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, hash, hint, allowed_models, rpm, tpm, max_concurrent, budget_usd, spent_usd, revoked, created_ms \
             FROM api_keys ORDER BY created_ms, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_row).collect()
    }

    // ---- provider priorities ----

    /// Runtime priority overrides, by provider name.
    pub async fn priorities(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows =
            sqlx::query("SELECT provider, priority FROM provider_priority ORDER BY provider")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("provider")?, r.try_get("priority")?)))
            .collect()
    }

    /// Sets (`Some`) or removes (`None`) the priority override of a provider.
    pub async fn set_priority(
        &self,
        provider: &str,
        priority: Option<i64>,
    ) -> Result<(), StoreError> {
        match priority {
            Some(p) => {
                sqlx::query(
                    "INSERT INTO provider_priority (provider, priority) VALUES (?, ?) \
                     ON CONFLICT (provider) DO UPDATE SET priority = excluded.priority",
                )
                .bind(provider)
                .bind(p)
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM provider_priority WHERE provider = ?")
                    .bind(provider)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Persisted health of provider instances.
    pub async fn key_states(&self) -> Result<Vec<KeyStateRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT instance, provider, state, reason, until_ms, updated_ms FROM key_state",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(KeyStateRow {
                    instance: r.try_get("instance")?,
                    provider: r.try_get("provider")?,
                    state: r.try_get("state")?,
                    reason: r.try_get("reason")?,
                    until_ms: r.try_get::<Option<i64>, _>("until_ms")?.unwrap_or(0),
                    updated_ms: r.try_get("updated_ms")?,
                })
            })
            .collect()
    }

    /// Upserts instance health rows in one transaction.
    pub async fn save_key_states(&self, rows: &[KeyStateRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for r in rows {
            sqlx::query(
                "INSERT INTO key_state (instance, provider, state, reason, until_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (instance) DO UPDATE SET provider = excluded.provider, state = excluded.state, \
                 reason = excluded.reason, until_ms = excluded.until_ms, updated_ms = excluded.updated_ms",
            )
            .bind(&r.instance)
            .bind(&r.provider)
            .bind(&r.state)
            .bind(&r.reason)
            .bind(r.until_ms)
            .bind(r.updated_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// One row of `key_state`: the health of a provider instance (never its key).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyStateRow {
    pub instance: String,
    pub provider: String,
    /// `healthy`, `cooldown`, `auth_failed` or `disabled`.
    pub state: String,
    pub reason: Option<String>,
    /// Unix ms a cooldown ends; 0 otherwise.
    pub until_ms: i64,
    pub updated_ms: i64,
}

/// The file path of a SQLite URL or plain path.
fn sqlite_path(url: &str) -> Result<PathBuf, String> {
    let rest = if let Some(r) = url.strip_prefix("sqlite://") {
        r
    } else if let Some(r) = url.strip_prefix("sqlite:") {
        r
    } else if url.contains("://") {
        let scheme = url.split("://").next().unwrap_or_default();
        return Err(format!(
            "{scheme:?} databases are not supported by this build; use a SQLite path"
        ));
    } else {
        url
    };
    // Connection options in the URL (`?mode=...`) would fight the ones set here.
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Err("give a database file path (in-memory databases are not supported)".into());
    }
    Ok(PathBuf::from(path))
}

/// `url` with the password of a `scheme://user:password@host` URL replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!("{scheme}://{masked}{}", &rest[at..])
        }
        None => url.to_owned(),
    }
}

/// u64 → BIGINT, saturating (SQL has no unsigned 64-bit integer).
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// BIGINT → u64; a negative value (never written by us) reads as 0.
pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn models_json(models: Option<&[String]>) -> Result<Option<String>, StoreError> {
    models
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Db(sqlx::Error::Encode(Box::new(e))))
}

fn key_row(r: &SqliteRow) -> Result<KeyRow, StoreError> {
    let hash_hex: String = r.try_get("hash")?;
    let mut hash = [0u8; 32];
    hex::decode_to_slice(&hash_hex, &mut hash).map_err(|e| decode_err("api_keys.hash", e))?;
    let allowed: Option<String> = r.try_get("allowed_models")?;
    let allowed_models = allowed
        .map(|s| serde_json::from_str::<Vec<String>>(&s))
        .transpose()
        .map_err(|e| decode_err("api_keys.allowed_models", e))?;
    Ok(KeyRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        hash,
        hint: r.try_get("hint")?,
        allowed_models,
        rpm: r.try_get::<Option<i64>, _>("rpm")?.map(to_u64),
        tpm: r.try_get::<Option<i64>, _>("tpm")?.map(to_u64),
        max_concurrent: r.try_get::<Option<i64>, _>("max_concurrent")?.map(to_u64),
        budget_usd: r.try_get("budget_usd")?,
        spent_usd: r.try_get("spent_usd")?,
        revoked: r.try_get("revoked")?,
        created_ms: r.try_get("created_ms")?,
    })
}

/// A column whose content we could not parse.
fn decode_err(column: &str, e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Db(sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: Box::new(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_and_paths() {
        assert_eq!(
            sqlite_path("sqlite:/a/b.db").expect("parsed"),
            PathBuf::from("/a/b.db")
        );
        assert_eq!(
            sqlite_path("sqlite:///a/b.db").expect("parsed"),
            PathBuf::from("/a/b.db")
        );
        assert_eq!(
            sqlite_path("sqlite://rel.db?mode=rwc").expect("parsed"),
            PathBuf::from("rel.db")
        );
        assert_eq!(
            sqlite_path("/x/y.db").expect("parsed"),
            PathBuf::from("/x/y.db")
        );
        assert!(sqlite_path("sqlite::memory:").is_err());
        assert!(
            sqlite_path("postgres://u:pw@h/db")
                .expect_err("refused")
                .contains("\"postgres\"")
        );
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://bob:hunter2@db.local:5432/x"),
            "postgres://bob:***@db.local:5432/x"
        );
        assert_eq!(
            redact("postgres://bob@db.local/x"),
            "postgres://bob@db.local/x"
        );
        assert_eq!(redact("sqlite:/a/b.db"), "sqlite:/a/b.db");
    }

    #[test]
    fn integer_conversions_saturate() {
        assert_eq!(to_i64(u64::MAX), i64::MAX);
        assert_eq!(to_i64(7), 7);
        assert_eq!(to_u64(-1), 0);
        assert_eq!(to_u64(i64::MAX), i64::MAX as u64);
    }
}
