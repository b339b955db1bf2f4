use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

use crate::formats::wkb;
use crate::model::{Feature, GeometryType, Layer};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot open database {url}: {reason}")]
    Open { url: String, reason: String },
    #[error("stored feature {layer}/{id} is unreadable: {reason}")]
    Corrupt {
        layer: String,
        id: String,
        reason: String,
    },
    #[error("invalid layer id '{0}': use lower-case letters, digits, '_' or '-' (at most 64)")]
    LayerId(String),
}

/// How an import treats what the layer already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    /// Add new features; features with an id the layer has replace it (version + 1).
    Upsert,
    /// Swap the whole layer for the imported features in one transaction.
    Replace,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub layer: String,
    pub inserted: usize,
    pub updated: usize,
    pub removed: usize,
    /// The layer's revision after the import.
    pub revision: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    Insert,
    Update,
    Delete,
    Layer,
    Replace,
}

impl ChangeOp {
    fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Insert => "insert",
            ChangeOp::Update => "update",
            ChangeOp::Delete => "delete",
            ChangeOp::Layer => "layer",
            ChangeOp::Replace => "replace",
        }
    }

    fn parse(s: &str) -> Option<ChangeOp> {
        Some(match s {
            "insert" => ChangeOp::Insert,
            "update" => ChangeOp::Update,
            "delete" => ChangeOp::Delete,
            "layer" => ChangeOp::Layer,
            "replace" => ChangeOp::Replace,
            _ => return None,
        })
    }
}

/// One row of the change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: i64,
    pub layer: String,
    pub feature_id: Option<String>,
    pub op: ChangeOp,
}

/// The database behind the engine.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

/// The current UTC time as RFC 3339, to the second.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn layer_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<(Layer, u64), sqlx::Error> {
    let schema: String = row.try_get("property_schema")?;
    let gt: String = row.try_get("geometry_type")?;
    Ok((
        Layer {
            id: row.try_get("id")?,
            title_zh: row.try_get("title_zh")?,
            title_en: row.try_get("title_en")?,
            description: row.try_get("description")?,
            geometry_type: GeometryType::parse(&gt).unwrap_or_default(),
            property_schema: serde_json::from_str(&schema).unwrap_or(serde_json::Value::Null),
        },
        row.try_get::<i64, _>("revision")? as u64,
    ))
}

fn feature_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Feature, StoreError> {
    let layer: String = row.try_get("layer")?;
    let id: String = row.try_get("id")?;
    let corrupt = |reason: String| StoreError::Corrupt {
        layer: layer.clone(),
        id: id.clone(),
        reason,
    };
    let props: String = row.try_get("properties")?;
    let properties = match serde_json::from_str(&props) {
        Ok(serde_json::Value::Object(m)) => m,
        Ok(_) => return Err(corrupt("properties are not a JSON object".into())),
        Err(e) => return Err(corrupt(format!("properties: {e}"))),
    };
    let blob: Option<Vec<u8>> = row.try_get("geometry")?;
    let geometry = match blob {
        Some(b) => Some(wkb::decode(&b).map_err(|e| corrupt(format!("geometry: {e}")))?),
        None => None,
    };
    Ok(Feature {
        admin_code: row.try_get("admin_code")?,
        name: row.try_get("name")?,
        properties,
        geometry,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        id: id.clone(),
        layer: layer.clone(),
    })
}

impl Store {
    /// Opens (creating it if needed) and migrates the database at `url`: a SQLite path or a
    /// `sqlite:` URL.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let opts = if url.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url).map_err(|e| StoreError::Open {
                url: url.into(),
                reason: e.to_string(),
            })?
        } else if url.contains("://") {
            return Err(StoreError::Open {
                url: url.into(),
                reason: "only SQLite files (a path or sqlite: URL) are supported in this version"
                    .into(),
            });
        } else {
            SqliteConnectOptions::new().filename(url)
        };
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(|e| StoreError::Open {
                url: url.into(),
                reason: e.to_string(),
            })?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Store { pool })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM layers")
            .fetch_one(&self.pool)
            .await?;
        Ok(n == 0)
    }

    pub async fn layers(&self) -> Result<Vec<(Layer, u64)>, StoreError> {
        let rows = sqlx::query("SELECT * FROM layers ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(layer_from_row).collect::<Result<_, _>>()?)
    }

    pub async fn layer(&self, id: &str) -> Result<Option<(Layer, u64)>, StoreError> {
        let row = sqlx::query("SELECT * FROM layers WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(layer_from_row).transpose()?)
    }

    /// Feature counts per layer, from the database (for `yizhangtu layers`).
    pub async fn counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT l.id, (SELECT count(*) FROM features f WHERE f.layer = l.id) AS n \
             FROM layers l ORDER BY l.id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("n")?)))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Every feature, layer by layer in insertion order.
    pub async fn all_features(&self) -> Result<Vec<Feature>, StoreError> {
        let rows = sqlx::query("SELECT * FROM features ORDER BY layer, rowid")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(feature_from_row).collect()
    }

    pub async fn features_of(&self, layer: &str) -> Result<Vec<Feature>, StoreError> {
        let rows = sqlx::query("SELECT * FROM features WHERE layer = ? ORDER BY rowid")
            .bind(layer)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(feature_from_row).collect()
    }

    pub async fn feature(&self, layer: &str, id: &str) -> Result<Option<Feature>, StoreError> {
        let row = sqlx::query("SELECT * FROM features WHERE layer = ? AND id = ?")
            .bind(layer)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(feature_from_row).transpose()
    }

    /// The newest change-log sequence number (0 when empty).
    pub async fn last_change(&self) -> Result<i64, StoreError> {
        let n: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM changes")
            .fetch_one(&self.pool)
            .await?;
        Ok(n.unwrap_or(0))
    }

    /// Changes after `seq`, oldest first, at most `limit`.
    pub async fn changes_since(&self, seq: i64, limit: i64) -> Result<Vec<Change>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, layer, feature_id, op FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .filter_map(|r| {
                let op: String = match r.try_get("op") {
                    Ok(op) => op,
                    Err(e) => return Some(Err(e.into())),
                };
                let op = ChangeOp::parse(&op)?;
                Some(Ok(Change {
                    seq: r.try_get("seq").ok()?,
                    layer: r.try_get("layer").ok()?,
                    feature_id: r.try_get("feature_id").ok()?,
                    op,
                }))
            })
            .collect()
    }

    /// Imports features into layers in ONE transaction: all land or none. Each entry names its
    /// layer (created from `layers` or untitled when new). Features with an empty id are numbered.
    pub async fn import(
        &self,
        layers: &[Layer],
        features: Vec<Feature>,
        mode: ImportMode,
        progress: Option<&(dyn Fn(usize) + Send + Sync)>,
    ) -> Result<Vec<ImportSummary>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let at = now();
        let mut summaries: Vec<ImportSummary> = Vec::new();
        let mut layer_ids: Vec<String> = layers.iter().map(|l| l.id.clone()).collect();
        for f in &features {
            if !layer_ids.contains(&f.layer) {
                layer_ids.push(f.layer.clone());
            }
        }
        for id in &layer_ids {
            if !Layer::valid_id(id) {
                return Err(StoreError::LayerId(id.clone()));
            }
            let given = layers.iter().find(|l| &l.id == id);
            let existing: Option<i64> =
                sqlx::query_scalar("SELECT revision FROM layers WHERE id = ?")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            match (existing, given) {
                (None, _) | (Some(_), Some(_)) => {
                    let l = given.cloned().unwrap_or_else(|| Layer::untitled(id));
                    sqlx::query(
                        "INSERT INTO layers (id, title_zh, title_en, description, geometry_type, \
                         property_schema, revision, created_at, updated_at) \
                         VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?) \
                         ON CONFLICT(id) DO UPDATE SET title_zh = excluded.title_zh, \
                         title_en = excluded.title_en, description = excluded.description, \
                         geometry_type = excluded.geometry_type, \
                         property_schema = excluded.property_schema, updated_at = excluded.updated_at",
                    )
                    .bind(&l.id)
                    .bind(&l.title_zh)
                    .bind(&l.title_en)
                    .bind(&l.description)
                    .bind(l.geometry_type.as_str())
                    .bind(l.property_schema.to_string())
                    .bind(&at)
                    .bind(&at)
                    .execute(&mut *tx)
                    .await?;
                    log_change(&mut tx, id, None, ChangeOp::Layer, None, &at).await?;
                }
                (Some(_), None) => {}
            }
            let mut summary = ImportSummary {
                layer: id.clone(),
                inserted: 0,
                updated: 0,
                removed: 0,
                revision: 0,
            };
            if mode == ImportMode::Replace {
                let removed = sqlx::query("DELETE FROM features WHERE layer = ?")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                summary.removed = removed as usize;
                log_change(&mut tx, id, None, ChangeOp::Replace, None, &at).await?;
            }
            summaries.push(summary);
        }

        for (done, mut f) in features.into_iter().enumerate() {
            if let Some(report) = progress {
                if done % 256 == 0 {
                    report(done);
                }
            }
            if f.id.is_empty() {
                let n: i64 = sqlx::query_scalar(
                    "UPDATE layers SET next_id = next_id + 1 WHERE id = ? RETURNING next_id - 1",
                )
                .bind(&f.layer)
                .fetch_one(&mut *tx)
                .await?;
                f.id = n.to_string();
                // Skip numbers a user's own ids already took.
                while sqlx::query_scalar::<_, i64>(
                    "SELECT 1 FROM features WHERE layer = ? AND id = ?",
                )
                .bind(&f.layer)
                .bind(&f.id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some()
                {
                    let n: i64 = sqlx::query_scalar(
                        "UPDATE layers SET next_id = next_id + 1 WHERE id = ? RETURNING next_id - 1",
                    )
                    .bind(&f.layer)
                    .fetch_one(&mut *tx)
                    .await?;
                    f.id = n.to_string();
                }
            }
            let previous: Option<i64> =
                sqlx::query_scalar("SELECT version FROM features WHERE layer = ? AND id = ?")
                    .bind(&f.layer)
                    .bind(&f.id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let version = previous.map_or(1, |v| v + 1);
            let bbox = f.bbox();
            sqlx::query(
                "INSERT INTO features (layer, id, admin_code, name, properties, geometry, \
                 min_x, min_y, max_x, max_y, version, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT(layer, id) DO UPDATE SET admin_code = excluded.admin_code, \
                 name = excluded.name, properties = excluded.properties, \
                 geometry = excluded.geometry, min_x = excluded.min_x, min_y = excluded.min_y, \
                 max_x = excluded.max_x, max_y = excluded.max_y, version = excluded.version, \
                 updated_at = excluded.updated_at",
            )
            .bind(&f.layer)
            .bind(&f.id)
            .bind(&f.admin_code)
            .bind(&f.name)
            .bind(serde_json::Value::Object(std::mem::take(&mut f.properties)).to_string())
            .bind(f.geometry.as_ref().map(wkb::encode))
            .bind(bbox.map(|r| r.min().x))
            .bind(bbox.map(|r| r.min().y))
            .bind(bbox.map(|r| r.max().x))
            .bind(bbox.map(|r| r.max().y))
            .bind(version)
            .bind(&at)
            .bind(&at)
            .execute(&mut *tx)
            .await?;
            let op = if previous.is_some() {
                ChangeOp::Update
            } else {
                ChangeOp::Insert
            };
            log_change(&mut tx, &f.layer, Some(&f.id), op, Some(version), &at).await?;
            if let Some(s) = summaries.iter_mut().find(|s| s.layer == f.layer) {
                match op {
                    ChangeOp::Update => s.updated += 1,
                    _ => s.inserted += 1,
                }
            }
        }

        for s in &mut summaries {
            let rev: i64 = sqlx::query_scalar(
                "UPDATE layers SET revision = revision + 1, updated_at = ? WHERE id = ? RETURNING revision",
            )
            .bind(&at)
            .bind(&s.layer)
            .fetch_one(&mut *tx)
            .await?;
            s.revision = rev as u64;
        }
        tx.commit().await?;
        Ok(summaries)
    }

    /// Deletes one feature; false when it did not exist.
    pub async fn delete(&self, layer: &str, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let at = now();
        let n = sqlx::query("DELETE FROM features WHERE layer = ? AND id = ?")
            .bind(layer)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n > 0 {
            log_change(&mut tx, layer, Some(id), ChangeOp::Delete, None, &at).await?;
            sqlx::query("UPDATE layers SET revision = revision + 1, updated_at = ? WHERE id = ?")
                .bind(&at)
                .bind(layer)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }
}

async fn log_change(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    layer: &str,
    feature_id: Option<&str>,
    op: ChangeOp,
    version: Option<i64>,
    at: &str,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO changes (layer, feature_id, op, version, at) VALUES (?, ?, ?, ?, ?)")
        .bind(layer)
        .bind(feature_id)
        .bind(op.as_str())
        .bind(version)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
