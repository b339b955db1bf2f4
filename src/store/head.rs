//! Where the change log stands, for an engine snapshot (src/engine/snapshot.rs): the database's
//! identity, its newest position, and a fingerprint of the entry at a position, so that a
//! snapshot is used only on the database and history it was written from.

use sqlx::Row;

use super::sqlite::{Db, Store, StoreError};

/// The change log's newest position and what identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogHead {
    /// The database's identity (drawn at creation, table `instance`).
    pub instance: String,
    /// The newest change-log position (0: empty log).
    pub seq: i64,
    /// The entry at `seq`, as text ("" for position 0).
    pub fingerprint: String,
}

impl Store {
    /// The database's identity and the change log's newest entry, read in one transaction.
    pub async fn log_head(&self) -> Result<LogHead, StoreError> {
        macro_rules! read {
            ($pool:expr) => {{
                let mut tx = $pool.begin().await?;
                let instance: String = sqlx::query_scalar("SELECT uuid FROM instance WHERE id = 1")
                    .fetch_one(&mut *tx)
                    .await?;
                let row = sqlx::query(
                    "SELECT seq, layer, feature_id, op, version, at FROM changes \
                     ORDER BY seq DESC LIMIT 1",
                )
                .fetch_optional(&mut *tx)
                .await?;
                tx.commit().await?;
                let (seq, fingerprint) = match row {
                    None => (0, String::new()),
                    Some(r) => {
                        let seq: i64 = r.try_get("seq")?;
                        let layer: String = r.try_get("layer")?;
                        let id: Option<String> = r.try_get("feature_id")?;
                        let op: String = r.try_get("op")?;
                        let version: Option<i64> = r.try_get("version")?;
                        let at: String = r.try_get("at")?;
                        (seq, fingerprint(&layer, id.as_deref(), &op, version, &at))
                    }
                };
                Ok(LogHead {
                    instance,
                    seq,
                    fingerprint,
                })
            }};
        }
        match &self.db {
            Db::Sqlite(pool) => read!(pool),
            Db::Postgres(pg) => read!(pg.pool()),
        }
    }

    /// The fingerprint of the change-log entry at `seq` ("" for 0), or `None` when it is not
    /// (or no longer) in the log.
    pub async fn change_fingerprint(&self, seq: i64) -> Result<Option<String>, StoreError> {
        if seq == 0 {
            return Ok(Some(String::new()));
        }
        macro_rules! read {
            ($pool:expr, $sql:literal) => {{
                let row = sqlx::query($sql).bind(seq).fetch_optional($pool).await?;
                match row {
                    None => Ok(None),
                    Some(r) => {
                        let layer: String = r.try_get("layer")?;
                        let id: Option<String> = r.try_get("feature_id")?;
                        let op: String = r.try_get("op")?;
                        let version: Option<i64> = r.try_get("version")?;
                        let at: String = r.try_get("at")?;
                        Ok(Some(fingerprint(&layer, id.as_deref(), &op, version, &at)))
                    }
                }
            }};
        }
        match &self.db {
            Db::Sqlite(pool) => read!(
                pool,
                "SELECT layer, feature_id, op, version, at FROM changes WHERE seq = ?"
            ),
            Db::Postgres(pg) => read!(
                pg.pool(),
                "SELECT layer, feature_id, op, version, at FROM changes WHERE seq = $1"
            ),
        }
    }
}

impl Store {
    /// Copies SQLite's write-ahead log into the database file and empties it (nothing on
    /// PostgreSQL). After a large import the log holds the whole layer; left there, every later
    /// open of the file would first read and checksum all of it.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        if let Db::Sqlite(pool) = &self.db {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(pool)
                .await?;
        }
        Ok(())
    }
}

fn fingerprint(layer: &str, id: Option<&str>, op: &str, version: Option<i64>, at: &str) -> String {
    format!(
        "{layer}\u{1f}{}\u{1f}{op}\u{1f}{}\u{1f}{at}",
        id.unwrap_or("\u{0}"),
        version.map_or_else(|| "-".to_string(), |v| v.to_string())
    )
}
