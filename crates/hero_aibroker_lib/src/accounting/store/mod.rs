//! The store: the broker's persistent state behind one sqlx pool — the usage ledger
//! (`request_logs`), broker API keys (`api_keys`, secrets never stored, only their SHA-256),
//! runtime provider priorities, instance health (`key_state`), backend circuits
//! (`circuit_state`), mother brokers (`mothers`), and what several brokers on one database
//! share (`config_version`, `key_leases`).
//!
//! SQLite in WAL mode is the embedded backend; PostgreSQL (a `postgres://` URL) lets several
//! brokers share one state. Each query is written once and runs on either ([`backend`]).
//! Queries are runtime queries (`sqlx::query`), not the checked macros: there is no database at
//! build time.
//!
//! The schema lives in `migrations/{sqlite,postgres}/` (the same versions in both dialects),
//! embedded in the binary and applied by [`Store::open`]. A database migrated by a newer
//! hero_aibroker is refused with [`StoreError::NewerSchema`] rather than half-understood.

pub(crate) mod backend;
mod circuits;
mod logs;
mod mothers;
pub use mothers::{MotherRow, mother_id};
mod rollup;
mod shared;
pub use shared::Lease;

pub use backend::StoreKind;
pub use circuits::CircuitRow;

use std::time::Duration;

use backend::{Cols, Pool, Target, on_pool};
use sqlx::Executor;

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened (bad URL, directory not creatable, file not readable,
    /// server unreachable).
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
    /// SQLite: how long a statement waits for another connection's write lock before failing
    /// (`SQLITE_BUSY`). PostgreSQL: how long a statement waits for a connection (a down server
    /// fails statements after this). Default 5 s.
    pub busy_timeout: Duration,
    /// Connections in the pool: one is the ledger writer's, the rest serve reads (WAL lets
    /// readers run beside the writer). Default 2: each connection keeps its own page and
    /// prepared-statement caches (several MiB), and admin reads are rare. PostgreSQL uses at
    /// least 4 (lease renewals and the config poll run beside the writer).
    pub max_connections: u32,
    /// This broker's id: the owner of its budget leases and of the ledger rows it writes.
    pub broker_id: String,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            busy_timeout: Duration::from_secs(5),
            max_connections: 2,
            // New at every start: a restarted broker is a new holder of leases (what the
            // stopped one held expires or was returned).
            broker_id: format!("brk_{}", hex::encode(rand::random::<[u8; 6]>())),
        }
    }
}

/// The broker's database. Cheap to clone (a pool handle).
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    /// `sqlite:/path` or the PostgreSQL URL without its password.
    described: std::sync::Arc<str>,
    broker_id: std::sync::Arc<str>,
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

const KEY_COLUMNS: &str = "id, name, hash, hint, allowed_models, rpm, tpm, max_concurrent, budget_usd, spent_usd, revoked, created_ms";

impl Store {
    /// Opens (creating if needed) and migrates the database at `url`: `postgres://…`,
    /// `sqlite:/abs/path.db`, `sqlite://path`, or a plain filesystem path. A SQLite file is
    /// created (0600, in a 0700 directory) when missing; WAL, `synchronous=NORMAL`,
    /// `busy_timeout` 5 s, foreign keys on.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, &StoreOptions::default()).await
    }

    /// [`Store::open`] with explicit [`StoreOptions`].
    pub async fn open_with(url: &str, opts: &StoreOptions) -> Result<Store, StoreError> {
        let open_err = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            target: redact(url),
            source,
        };
        let (pool, described) = match backend::target(url).map_err(|m| open_err(m.into()))? {
            Target::Sqlite(path) => {
                let path = std::path::absolute(&path).map_err(|e| open_err(e.into()))?;
                let pool = backend::open_sqlite(&path, opts).await.map_err(open_err)?;
                (Pool::Sqlite(pool), format!("sqlite:{}", path.display()))
            }
            Target::Postgres(url) => {
                let pool = backend::open_pg(&url, opts).await.map_err(open_err)?;
                (Pool::Pg(pool), redact(&url))
            }
        };
        let store = Store {
            pool,
            described: described.into(),
            broker_id: opts.broker_id.as_str().into(),
        };

        // Ours to say, before sqlx's migrator reports the unknown version in its own words.
        let migrator = store.migrator();
        let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        if let Some(found) = store.newest_unknown_migration().await?
            && found > known
        {
            store.close_pool().await;
            return Err(StoreError::NewerSchema { found, known });
        }
        let ran = on_pool!(&store.pool, |p, Db| migrator.run(p).await);
        if let Err(source) = ran {
            store.close_pool().await;
            return Err(StoreError::Migrate {
                target: store.describe(),
                source,
            });
        }
        Ok(store)
    }

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self.pool {
            Pool::Sqlite(_) => &backend::SQLITE_MIGRATOR,
            Pool::Pg(_) => &backend::PG_MIGRATOR,
        }
    }

    /// Which database this store is on.
    pub fn kind(&self) -> StoreKind {
        match self.pool {
            Pool::Sqlite(_) => StoreKind::Sqlite,
            Pool::Pg(_) => StoreKind::Postgres,
        }
    }

    /// Whether several brokers may share this database (PostgreSQL): budgets go through leases
    /// and configuration changes are polled.
    pub fn shared(&self) -> bool {
        self.kind() == StoreKind::Postgres
    }

    /// This broker's id, as given in [`StoreOptions::broker_id`].
    pub fn broker_id(&self) -> &str {
        &self.broker_id
    }

    /// The highest applied migration version this binary does not know, if any.
    async fn newest_unknown_migration(&self) -> Result<Option<i64>, StoreError> {
        let exists: i64 = on_pool!(&self.pool, |p, Db| {
            match self.kind() {
            StoreKind::Sqlite => sqlx::query_scalar(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            )
            .fetch_one(p)
            .await?,
            StoreKind::Postgres => sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'",
            )
            .fetch_one(p)
            .await?,
        }
        });
        if exists == 0 {
            return Ok(None);
        }
        let applied: Vec<i64> = on_pool!(&self.pool, |p, Db| sqlx::query_scalar(
            "SELECT version FROM _sqlx_migrations"
        )
        .fetch_all(p)
        .await?);
        let migrator = self.migrator();
        Ok(applied
            .into_iter()
            .filter(|v| !migrator.version_exists(*v))
            .max())
    }

    /// `sqlite:/path/to.db`, or the PostgreSQL URL without its password.
    pub fn describe(&self) -> String {
        self.described.to_string()
    }

    /// Answers when the database does: one trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(&self.pool, |p, Db| p.execute("SELECT 1").await.map(|_| ()))?;
        Ok(())
    }

    /// Checkpoints SQLite's WAL into the database file and closes every connection.
    pub async fn close(&self) {
        if let Err(e) = self.checkpoint().await {
            tracing::warn!(error = %e, "WAL checkpoint before closing the database failed");
        }
        self.close_pool().await;
    }

    async fn close_pool(&self) {
        on_pool!(&self.pool, |p, Db| p.close().await);
    }

    /// SQLite: moves the WAL's content into the database file and truncates the WAL, so a copy
    /// of the `.db` file alone is complete. PostgreSQL: nothing to do.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        if let Pool::Sqlite(p) = &self.pool {
            p.execute("PRAGMA wal_checkpoint(TRUNCATE)").await?;
        }
        Ok(())
    }

    // ---- keys ----

    /// Stores a new key. Fails on a duplicate id or hash.
    pub async fn insert_key(&self, k: &KeyRow) -> Result<(), StoreError> {
        let models = models_json(k.allowed_models.as_deref())?;
        on_pool!(&self.pool, |p, Db| {
            sqlx::query(
            "INSERT INTO api_keys (id, name, hash, hint, allowed_models, rpm, tpm, max_concurrent, budget_usd, spent_usd, revoked, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&k.id)
        .bind(&k.name)
        .bind(hex::encode(k.hash))
        .bind(&k.hint)
        .bind(models)
        .bind(k.rpm.map(to_i64))
        .bind(k.tpm.map(to_i64))
        .bind(k.max_concurrent.map(to_i64))
        .bind(k.budget_usd)
        .bind(k.spent_usd)
        .bind(k.revoked)
        .bind(k.created_ms)
        .execute(p)
        .await
        .map(|_| ())
        })?;
        self.bump_config().await
    }

    /// Writes every column of a key but `spent_usd`: spend is only ever added by the ledger
    /// ([`Store::insert_logs`]), so an admin edit racing a batch cannot undo a charge.
    pub async fn update_key(&self, k: &KeyRow) -> Result<(), StoreError> {
        let models = models_json(k.allowed_models.as_deref())?;
        let done = on_pool!(&self.pool, |p, Db| {
            sqlx::query(
            "UPDATE api_keys SET name = $1, hash = $2, hint = $3, allowed_models = $4, rpm = $5, tpm = $6, \
             max_concurrent = $7, budget_usd = $8, revoked = $9, created_ms = $10 WHERE id = $11",
        )
        .bind(&k.name)
        .bind(hex::encode(k.hash))
        .bind(&k.hint)
        .bind(models)
        .bind(k.rpm.map(to_i64))
        .bind(k.tpm.map(to_i64))
        .bind(k.max_concurrent.map(to_i64))
        .bind(k.budget_usd)
        .bind(k.revoked)
        .bind(k.created_ms)
        .bind(&k.id)
        .execute(p)
        .await?
        .rows_affected()
        });
        if done == 0 {
            return Err(StoreError::NoSuchKey(k.id.clone()));
        }
        self.bump_config().await
    }

    /// Every key (revoked included), oldest first.
    pub async fn keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_ms, id");
        on_pool!(&self.pool, |p, Db| sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(p)
            .await?
            .iter()
            .map(key_row)
            .collect())
    }

    // ---- provider priorities ----

    /// Runtime priority overrides, by provider name.
    pub async fn priorities(&self) -> Result<Vec<(String, i64)>, StoreError> {
        on_pool!(&self.pool, |p, Db| sqlx::query(
            "SELECT provider, priority FROM provider_priority ORDER BY provider"
        )
        .fetch_all(p)
        .await?
        .iter()
        .map(|r| Ok((r.text("provider")?, r.int("priority")?)))
        .collect())
    }

    /// Sets (`Some`) or removes (`None`) the priority override of a provider.
    pub async fn set_priority(
        &self,
        provider: &str,
        priority: Option<i64>,
    ) -> Result<(), StoreError> {
        on_pool!(&self.pool, |p, Db| match priority {
            Some(v) => sqlx::query(
                "INSERT INTO provider_priority (provider, priority) VALUES ($1, $2) \
                 ON CONFLICT (provider) DO UPDATE SET priority = excluded.priority",
            )
            .bind(provider)
            .bind(v)
            .execute(p)
            .await
            .map(|_| ())?,
            None => sqlx::query("DELETE FROM provider_priority WHERE provider = $1")
                .bind(provider)
                .execute(p)
                .await
                .map(|_| ())?,
        });
        self.bump_config().await
    }

    /// Persisted health of provider instances.
    pub async fn key_states(&self) -> Result<Vec<KeyStateRow>, StoreError> {
        self.key_states_since(i64::MIN).await
    }

    /// Instance health rows written after `after_ms` (by any broker of the database).
    pub async fn key_states_since(&self, after_ms: i64) -> Result<Vec<KeyStateRow>, StoreError> {
        on_pool!(&self.pool, |p, Db| sqlx::query(
            "SELECT instance, provider, state, reason, until_ms, updated_ms FROM key_state \
             WHERE updated_ms > $1",
        )
        .bind(after_ms)
        .fetch_all(p)
        .await?
        .iter()
        .map(|r| {
            Ok(KeyStateRow {
                instance: r.text("instance")?,
                provider: r.text("provider")?,
                state: r.text("state")?,
                reason: r.opt_text("reason")?,
                until_ms: r.opt_int("until_ms")?.unwrap_or(0),
                updated_ms: r.int("updated_ms")?,
            })
        })
        .collect())
    }

    /// Upserts instance health rows in one transaction.
    pub async fn save_key_states(&self, rows: &[KeyStateRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        on_pool!(&self.pool, |p, Db| {
            let mut tx = p.begin().await?;
            for r in rows {
                sqlx::query(
                    "INSERT INTO key_state (instance, provider, state, reason, until_ms, updated_ms) VALUES ($1, $2, $3, $4, $5, $6) \
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
        });
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

fn key_row(r: &impl Cols) -> Result<KeyRow, StoreError> {
    let hash_hex = r.text("hash")?;
    let mut hash = [0u8; 32];
    hex::decode_to_slice(&hash_hex, &mut hash).map_err(|e| decode_err("api_keys.hash", e))?;
    let allowed_models = r
        .opt_text("allowed_models")?
        .map(|s| serde_json::from_str::<Vec<String>>(&s))
        .transpose()
        .map_err(|e| decode_err("api_keys.allowed_models", e))?;
    Ok(KeyRow {
        id: r.text("id")?,
        name: r.text("name")?,
        hash,
        hint: r.text("hint")?,
        allowed_models,
        rpm: r.opt_int("rpm")?.map(to_u64),
        tpm: r.opt_int("tpm")?.map(to_u64),
        max_concurrent: r.opt_int("max_concurrent")?.map(to_u64),
        budget_usd: r.opt_real("budget_usd")?,
        spent_usd: r.real("spent_usd")?,
        revoked: r.flag("revoked")?,
        created_ms: r.int("created_ms")?,
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

    fn sqlite(url: &str) -> Result<std::path::PathBuf, String> {
        match backend::target(url)? {
            Target::Sqlite(p) => Ok(p),
            Target::Postgres(u) => Err(format!("postgres {u}")),
        }
    }

    #[test]
    fn parses_urls_and_paths() {
        use std::path::PathBuf;
        assert_eq!(
            sqlite("sqlite:/a/b.db").expect("parsed"),
            PathBuf::from("/a/b.db")
        );
        assert_eq!(
            sqlite("sqlite:///a/b.db").expect("parsed"),
            PathBuf::from("/a/b.db")
        );
        assert_eq!(
            sqlite("sqlite://rel.db?mode=rwc").expect("parsed"),
            PathBuf::from("rel.db")
        );
        assert_eq!(sqlite("/x/y.db").expect("parsed"), PathBuf::from("/x/y.db"));
        assert!(sqlite("sqlite::memory:").is_err());
        assert!(
            sqlite("mysql://u:pw@h/db")
                .expect_err("refused")
                .contains("\"mysql\"")
        );
        assert!(matches!(
            backend::target("postgres://u:pw@h/db"),
            Ok(Target::Postgres(_))
        ));
        assert!(matches!(
            backend::target("postgresql:///db?host=/run/pg"),
            Ok(Target::Postgres(_))
        ));
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
