//! Mother brokers in the store (`mothers` table, migration 0005): the child's list of brokers
//! it forwards to. Ids are `ai_broker_mother`, `ai_broker_mother2`, … in the order they were
//! added (a removed id is not reused while a later one exists).

use super::backend::on_pool;
use super::{Store, StoreError};

/// One mother as stored; `token` is what the child presents (a broker key of the mother or its
/// cascade token) and never leaves the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MotherRow {
    pub id: String,
    pub address: String,
    pub port: u16,
    pub label: Option<String>,
    pub priority: i64,
    pub enabled: bool,
    pub token: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// The id of the `n`th mother (1-based): `ai_broker_mother`, `ai_broker_mother2`, …
pub fn mother_id(n: u64) -> String {
    if n <= 1 {
        "ai_broker_mother".to_owned()
    } else {
        format!("ai_broker_mother{n}")
    }
}

fn number_of(id: &str) -> u64 {
    match id.strip_prefix("ai_broker_mother") {
        Some("") => 1,
        Some(n) => n.parse().unwrap_or(0),
        None => 0,
    }
}

type Row = (
    String,
    String,
    i64,
    Option<String>,
    i64,
    bool,
    Option<String>,
    i64,
    i64,
);

fn from_row(r: Row) -> MotherRow {
    MotherRow {
        id: r.0,
        address: r.1,
        port: u16::try_from(r.2).unwrap_or(0),
        label: r.3,
        priority: r.4,
        enabled: r.5,
        token: r.6,
        created_ms: r.7,
        updated_ms: r.8,
    }
}

impl Store {
    /// Every mother, in the order they were added.
    pub async fn list_mothers(&self) -> Result<Vec<MotherRow>, StoreError> {
        let rows: Vec<Row> = on_pool!(&self.pool, |p, Db| sqlx::query_as(
            "SELECT id, address, port, label, priority, enabled, token, created_ms, updated_ms \
             FROM mothers ORDER BY created_ms, id",
        )
        .fetch_all(p)
        .await?);
        Ok(rows.into_iter().map(from_row).collect())
    }

    /// Adds a mother under the next free id; returns it.
    pub async fn add_mother(&self, mut m: MotherRow) -> Result<MotherRow, StoreError> {
        let taken = self.list_mothers().await?;
        let next = taken.iter().map(|t| number_of(&t.id)).max().unwrap_or(0) + 1;
        m.id = mother_id(next);
        on_pool!(&self.pool, |p, Db| sqlx::query(
            "INSERT INTO mothers (id, address, port, label, priority, enabled, token, created_ms, \
             updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&m.id)
        .bind(&m.address)
        .bind(i64::from(m.port))
        .bind(&m.label)
        .bind(m.priority)
        .bind(m.enabled)
        .bind(&m.token)
        .bind(m.created_ms)
        .bind(m.updated_ms)
        .execute(p)
        .await
        .map(|_| ()))?;
        self.bump_config().await?;
        Ok(m)
    }

    /// Replaces a mother's fields; false when there is no such mother.
    pub async fn update_mother(&self, m: &MotherRow) -> Result<bool, StoreError> {
        let changed = on_pool!(&self.pool, |p, Db| {
            sqlx::query(
            "UPDATE mothers SET address = $1, port = $2, label = $3, priority = $4, enabled = $5, \
             token = $6, updated_ms = $7 WHERE id = $8",
        )
        .bind(&m.address)
        .bind(i64::from(m.port))
        .bind(&m.label)
        .bind(m.priority)
        .bind(m.enabled)
        .bind(&m.token)
        .bind(m.updated_ms)
        .bind(&m.id)
        .execute(p)
        .await?
        .rows_affected()
        });
        self.bump_config().await?;
        Ok(changed > 0)
    }

    /// Removes a mother; false when there is no such mother.
    pub async fn remove_mother(&self, id: &str) -> Result<bool, StoreError> {
        let removed = on_pool!(&self.pool, |p, Db| sqlx::query(
            "DELETE FROM mothers WHERE id = $1"
        )
        .bind(id)
        .execute(p)
        .await?
        .rows_affected());
        self.bump_config().await?;
        Ok(removed > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_count_up_from_the_bare_name() {
        assert_eq!(mother_id(1), "ai_broker_mother");
        assert_eq!(mother_id(2), "ai_broker_mother2");
        assert_eq!(number_of("ai_broker_mother"), 1);
        assert_eq!(number_of("ai_broker_mother12"), 12);
    }
}
