use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use super::accounts::append_audit;
use super::history::{precise_now, record_deletes, record_written, Actor};
use super::postgres::PgStore;
use super::rows::StoreRow;
use crate::formats::wkb;
use crate::model::{Feature, GeometryType, Layer, RawFeature};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(sqlx::Error),
    /// Another writer held the database longer than the busy timeout (or every connection was
    /// taken that long). Nothing was written; the same request may simply be sent again.
    #[error("the database is busy with another write; nothing was written, try again shortly")]
    Busy,
    /// The features of an import stopped before their end (the reader found a problem or went
    /// away): the transaction was rolled back and nothing was written.
    #[error("the import stopped before its end; nothing was written")]
    Aborted,
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
    /// An import that takes each feature once ([`Ids::Once`]) was given feature `id` of `layer`
    /// again: it was rolled back and nothing was written.
    #[error("feature id '{id}' of layer '{layer}' appears more than once in the import")]
    RepeatedId { layer: String, id: String },
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_busy(&e) {
            StoreError::Busy
        } else {
            StoreError::Db(e)
        }
    }
}

/// SQLITE_BUSY / SQLITE_LOCKED (and their extended codes), PostgreSQL's lock timeout,
/// serialization failure or deadlock, or no connection free in time.
fn is_busy(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db)
            if db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some() =>
        {
            db.code()
                .is_some_and(|c| matches!(&*c, "55P03" | "40001" | "40P01"))
        }
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| matches!(c & 0xff, 5 | 6)),
        _ => false,
    }
}

/// How the store waits for other writers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// How long a write waits for another process's (or connection's) write to finish before it
    /// gives up with [`StoreError::Busy`].
    pub busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            busy_timeout: Duration::from_secs(30),
        }
    }
}

/// How many features an import reads, numbers and writes at a time (and what the streaming
/// decoders hand over in one batch).
pub const IMPORT_BATCH: usize = 500;

/// One step of a streamed import: some features, or the word that every feature was read and
/// checked and the import may commit. A stream that ends without `Commit` rolls back.
#[derive(Debug)]
pub enum Batch {
    Features(Vec<Feature>),
    Commit,
}

/// How an import treats what the layer already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    /// Add new features; features with an id the layer has replace it (version + 1).
    Upsert,
    /// Swap the whole layer for the imported features in one transaction.
    Replace,
}

/// Whether one import may write a feature more than once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ids {
    /// A feature named again is written again, in order: its history keeps each version.
    Repeatable,
    /// Each (layer, id) at most once, as in a GeoJSON file: a repeat fails the import with
    /// [`StoreError::RepeatedId`]. The store finds repeats without keeping the ids it wrote, so
    /// the import's memory does not grow with the number of features: in a layer that held
    /// none of its features before the import, any row the import finds is one it wrote; in
    /// another layer, the ids go to a temporary table on disk (SQLite), or the row's `xmin`
    /// tells (PostgreSQL).
    Once,
}

impl ImportMode {
    /// The audit log's action for an import in this mode (both stores).
    pub(crate) fn audit_action(self) -> &'static str {
        match self {
            ImportMode::Upsert => "import",
            ImportMode::Replace => "replace",
        }
    }
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

impl ImportSummary {
    /// The counts as the audit log keeps them (both stores).
    pub(crate) fn audit_counts(&self) -> String {
        format!(
            "inserted {}, updated {}, removed {}",
            self.inserted, self.updated, self.removed
        )
    }
}

/// The layers `batch` brings that the import has not prepared yet (none of `summaries`), in
/// order of first appearance, each checked as a layer id (shared by both stores' imports).
pub(crate) fn unprepared_layers(
    batch: &[Feature],
    summaries: &[ImportSummary],
) -> Result<Vec<String>, StoreError> {
    let mut new_layers: Vec<String> = Vec::new();
    for f in batch {
        if !summaries.iter().any(|s| s.layer == f.layer) && !new_layers.contains(&f.layer) {
            if !Layer::valid_id(&f.layer) {
                return Err(StoreError::LayerId(f.layer.clone()));
            }
            new_layers.push(f.layer.clone());
        }
    }
    Ok(new_layers)
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
    pub(super) fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Insert => "insert",
            ChangeOp::Update => "update",
            ChangeOp::Delete => "delete",
            ChangeOp::Layer => "layer",
            ChangeOp::Replace => "replace",
        }
    }
}

/// The database behind the engine: a SQLite file, or PostgreSQL with PostGIS.
#[derive(Clone)]
pub struct Store {
    pub(super) db: Db,
}

/// Which database a [`Store`] writes to. Each `Store` method runs its SQLite code on the
/// pool, or hands the same call to [`PgStore`] (see `sqlite_or_pg!`).
#[derive(Clone)]
pub(super) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgStore),
}

/// A write transaction that holds SQLite's write lock from its first statement
/// (`BEGIN IMMEDIATE`): a deferred one that upgrades later fails at once with SQLITE_BUSY
/// when another writer got in first, where this one waits up to the busy timeout.
pub(super) async fn write(
    pool: &SqlitePool,
) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
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

pub(super) fn layer_from_row(row: &impl StoreRow) -> Result<(Layer, u64), sqlx::Error> {
    let schema: String = row.col("property_schema")?;
    let gt: String = row.col("geometry_type")?;
    Ok((
        Layer {
            id: row.col("id")?,
            title_zh: row.col("title_zh")?,
            title_en: row.col("title_en")?,
            description: row.col("description")?,
            geometry_type: GeometryType::parse(&gt).unwrap_or_default(),
            property_schema: serde_json::from_str(&schema).unwrap_or(serde_json::Value::Null),
        },
        row.col::<i64>("revision")? as u64,
    ))
}

pub(super) fn feature_from_row(row: &impl StoreRow) -> Result<Feature, StoreError> {
    let layer: String = row.col("layer")?;
    let id: String = row.col("id")?;
    let corrupt = |reason: String| StoreError::Corrupt {
        layer: layer.clone(),
        id: id.clone(),
        reason,
    };
    let props: String = row.col("properties")?;
    let properties = match serde_json::from_str(&props) {
        Ok(serde_json::Value::Object(m)) => m,
        Ok(_) => return Err(corrupt("properties are not a JSON object".into())),
        Err(e) => return Err(corrupt(format!("properties: {e}"))),
    };
    let blob: Option<Vec<u8>> = row.col("geometry")?;
    let geometry = match blob {
        Some(b) => Some(wkb::decode(&b).map_err(|e| corrupt(format!("geometry: {e}")))?),
        None => None,
    };
    Ok(Feature {
        admin_code: row.col("admin_code")?,
        name: row.col("name")?,
        properties,
        geometry,
        version: row.col("version")?,
        created_at: row.col("created_at")?,
        updated_at: row.col("updated_at")?,
        id: id.clone(),
        layer: layer.clone(),
    })
}

impl Store {
    /// Opens (creating it if needed) and migrates the database at `url`: a SQLite path or a
    /// `sqlite:` URL, or a `postgres://` URL (a database with PostGIS, or where it can be created).
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, &StoreOptions::default()).await
    }

    /// [`Store::open`] with explicit options.
    pub async fn open_with(url: &str, options: &StoreOptions) -> Result<Store, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pg = PgStore::open(url, options).await?;
            return Ok(Store {
                db: Db::Postgres(pg),
            });
        }
        let opts = if url.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url).map_err(|e| StoreError::Open {
                url: url.into(),
                reason: e.to_string(),
            })?
        } else if url.contains("://") {
            return Err(StoreError::Open {
                url: url.into(),
                reason: "use a SQLite file (a path or sqlite: URL) or a postgres:// URL".into(),
            });
        } else {
            SqliteConnectOptions::new().filename(url)
        };
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(options.busy_timeout);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(options.busy_timeout.max(Duration::from_secs(1)))
            .connect_with(opts)
            .await
            .map_err(|e| StoreError::Open {
                url: url.into(),
                reason: e.to_string(),
            })?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Store {
            db: Db::Sqlite(pool),
        })
    }

    /// Resolves when another process may have written to the database: on PostgreSQL a
    /// `NOTIFY` from its write (or a re-made `LISTEN` connection); never on SQLite, whose
    /// followers poll the change log.
    pub async fn changed(&self) {
        match &self.db {
            Db::Sqlite(_) => std::future::pending().await,
            Db::Postgres(pg) => pg.changed().await,
        }
    }

    /// Whether the store is PostgreSQL (shared by several processes) rather than a SQLite file.
    pub fn is_postgres(&self) -> bool {
        matches!(self.db, Db::Postgres(_))
    }

    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite(pool) => pool.close().await,
            Db::Postgres(pg) => pg.close().await,
        }
    }

    /// Connections open, of them idle, and the most the pool opens (for `/metrics`).
    pub fn pool_status(&self) -> (u32, usize, u32) {
        match &self.db {
            Db::Sqlite(pool) => (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            ),
            Db::Postgres(pg) => pg.pool_status(),
        }
    }

    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.is_empty().await);
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM layers")
            .fetch_one(pool)
            .await?;
        Ok(n == 0)
    }

    pub async fn layers(&self) -> Result<Vec<(Layer, u64)>, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.layers().await);
        let rows = sqlx::query("SELECT * FROM layers ORDER BY id")
            .fetch_all(pool)
            .await?;
        Ok(rows.iter().map(layer_from_row).collect::<Result<_, _>>()?)
    }

    pub async fn layer(&self, id: &str) -> Result<Option<(Layer, u64)>, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.layer(id).await);
        let row = sqlx::query("SELECT * FROM layers WHERE id = ?")
            .bind(id)
            .fetch_optional(pool)
            .await?;
        Ok(row.as_ref().map(layer_from_row).transpose()?)
    }

    /// Feature counts per layer, from the database (for `yizhangtu layers`).
    pub async fn counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.counts().await);
        let rows = sqlx::query(
            "SELECT l.id, (SELECT count(*) FROM features f WHERE f.layer = l.id) AS n \
             FROM layers l ORDER BY l.id",
        )
        .fetch_all(pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("n")?)))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Every feature, layer by layer in insertion order.
    pub async fn all_features(&self) -> Result<Vec<Feature>, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.all_features().await);
        decode_rows(sqlx::query("SELECT * FROM features ORDER BY layer, rowid").fetch(pool)).await
    }

    /// Every feature as stored, undecoded (see [`RawFeature`]), each layer's in insertion order
    /// (on SQLite the layers' rows interleaved, in table order), sent in chunks of `chunk` rows as they are read; stops early when `to` closes.
    pub async fn raw_features(
        &self,
        chunk: usize,
        to: tokio::sync::mpsc::Sender<Vec<RawFeature>>,
    ) -> Result<(), StoreError> {
        // The same loop over either database's rows (their row types differ).
        macro_rules! stream {
            ($order:literal, $pool:expr) => {{
                let rows = sqlx::query(concat!(
                    "SELECT layer, id, admin_code, name, properties, geometry, version, \
                     created_at, updated_at FROM features ORDER BY ",
                    $order
                ))
                .fetch($pool);
                send_raw_rows!(rows, chunk, to).map(|_| ())
            }};
        }
        match &self.db {
            // In table order: no sort. The loader takes layers' rows interleaved, each layer's
            // in rowid order as before.
            Db::Sqlite(pool) => stream!("rowid", pool),
            Db::Postgres(pg) => stream!("layer, pos", pg.pool()),
        }
    }

    /// The newest change-log sequence number (0 when empty).
    pub async fn last_change(&self) -> Result<i64, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.last_change().await);
        let n: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM changes")
            .fetch_one(pool)
            .await?;
        Ok(n.unwrap_or(0))
    }

    /// Imports features into layers in ONE transaction: all land or none. Each feature names
    /// its layer (created from `layers`, or untitled when new). Features with an empty id are
    /// numbered. The features are written [`IMPORT_BATCH`] at a time, one multi-row statement each.
    pub async fn import(
        &self,
        layers: &[Layer],
        features: Vec<Feature>,
        mode: ImportMode,
        progress: Option<&(dyn Fn(usize) + Send + Sync)>,
    ) -> Result<Vec<ImportSummary>, StoreError> {
        self.import_as(layers, features, mode, progress, &Actor::cli(None))
            .await
    }

    /// [`Store::import`] on behalf of `actor`: its name, reason and request id go into the
    /// history rows and the audit row of the import.
    pub async fn import_as(
        &self,
        layers: &[Layer],
        features: Vec<Feature>,
        mode: ImportMode,
        progress: Option<&(dyn Fn(usize) + Send + Sync)>,
        actor: &Actor,
    ) -> Result<Vec<ImportSummary>, StoreError> {
        let source = Source::Iter(features.into_iter(), false);
        self.import_source(layers, source, mode, Ids::Repeatable, progress, actor)
            .await
    }

    /// [`Store::import`] from a stream of batches, for decoders that read a file or a body as
    /// the import goes: memory stays a few batches whatever the size of the input. The import
    /// commits only when the stream sends [`Batch::Commit`]; if the sender is dropped before
    /// that, everything is rolled back and the result is [`StoreError::Aborted`].
    pub async fn import_batches(
        &self,
        layers: &[Layer],
        batches: tokio::sync::mpsc::Receiver<Batch>,
        mode: ImportMode,
        ids: Ids,
        progress: Option<&(dyn Fn(usize) + Send + Sync)>,
    ) -> Result<Vec<ImportSummary>, StoreError> {
        self.import_batches_as(layers, batches, mode, ids, progress, &Actor::cli(None))
            .await
    }

    /// [`Store::import_batches`] on behalf of `actor` (see [`Store::import_as`]).
    pub async fn import_batches_as(
        &self,
        layers: &[Layer],
        batches: tokio::sync::mpsc::Receiver<Batch>,
        mode: ImportMode,
        ids: Ids,
        progress: Option<&(dyn Fn(usize) + Send + Sync)>,
        actor: &Actor,
    ) -> Result<Vec<ImportSummary>, StoreError> {
        let source: Source<std::iter::Empty<Feature>> = Source::Channel(batches);
        self.import_source(layers, source, mode, ids, progress, actor)
            .await
    }

    async fn import_source<I: Iterator<Item = Feature> + Send>(
        &self,
        layers: &[Layer],
        mut source: Source<I>,
        mode: ImportMode,
        ids: Ids,
        progress: Option<&(dyn Fn(usize) + Send + Sync)>,
        actor: &Actor,
    ) -> Result<Vec<ImportSummary>, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.import_source(layers, source, mode, ids, progress, actor).await);
        for l in layers {
            if !Layer::valid_id(&l.id) {
                return Err(StoreError::LayerId(l.id.clone()));
            }
        }
        let mut tx = write(pool).await?;
        // A large import rewrites index pages all over the file: with SQLite's default 2 MB
        // page cache they are spilled to the WAL and read back again and again. The import's
        // connection gets IMPORT_CACHE_KIB for the transaction, and its default back (its pages
        // freed) before it returns to the pool, whatever the outcome.
        let default_cache: i64 = sqlx::query_scalar("PRAGMA cache_size")
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(&format!("PRAGMA cache_size = -{IMPORT_CACHE_KIB}"))
            .execute(&mut *tx)
            .await?;
        let written = import_in(&mut tx, layers, &mut source, mode, ids, progress, actor).await;
        let reset = sqlx::query(&format!("PRAGMA cache_size = {default_cache}"))
            .execute(&mut *tx)
            .await;
        let summaries = written?;
        reset?;
        tx.commit().await?;
        Ok(summaries)
    }

    /// Everything written after change-log position `after`, read in ONE snapshot so that the
    /// engine can apply it in one step: per layer, either all its features (when the layer was
    /// replaced or more than `reload_above` of its features changed) or the changed features
    /// and the ids of the deleted ones. `None` when nothing is newer than `after`.
    pub async fn changes_after(
        &self,
        after: i64,
        reload_above: usize,
        reload: &tokio::sync::mpsc::Sender<Vec<RawFeature>>,
    ) -> Result<Option<ChangeSet>, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.changes_after(after, reload_above, reload).await);
        // A deferred transaction only reads: in WAL mode it sees one snapshot and blocks no one.
        let mut tx = pool.begin().await?;
        let upto: i64 = sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM changes")
            .fetch_one(&mut *tx)
            .await?;
        if upto <= after {
            return Ok(None);
        }
        // Pruned past our position: the missed changes are gone, so every layer is reloaded.
        let truncated = after < super::changelog::sqlite_pruned_upto(&mut tx).await?;
        let per_layer = if truncated {
            sqlx::query("SELECT id AS layer, 0 AS n, 1 AS replaced FROM layers ORDER BY id")
                .fetch_all(&mut *tx)
                .await?
        } else {
            sqlx::query(
                "SELECT layer, count(*) AS n, max(op = 'replace') AS replaced FROM changes \
                 WHERE seq > ? AND seq <= ? GROUP BY layer ORDER BY layer",
            )
            .bind(after)
            .bind(upto)
            .fetch_all(&mut *tx)
            .await?
        };
        let mut set = ChangeSet::new(upto, after, truncated);
        for row in per_layer {
            let layer: String = row.try_get("layer")?;
            let n: i64 = row.try_get("n")?;
            let replaced: bool = row.try_get::<Option<bool>, _>("replaced")?.unwrap_or(false);
            set.changes += n as usize;
            let current = sqlx::query("SELECT * FROM layers WHERE id = ?")
                .bind(&layer)
                .fetch_optional(&mut *tx)
                .await?
                .as_ref()
                .map(layer_from_row)
                .transpose()?;
            let features = if current.is_none() {
                ChangedFeatures::Changed {
                    upserts: vec![],
                    deleted: vec![],
                }
            } else if replaced || n as usize > reload_above {
                let rows = sqlx::query(
                    "SELECT layer, id, admin_code, name, properties, geometry, version, \
                     created_at, updated_at FROM features WHERE layer = ? ORDER BY rowid",
                )
                .bind(&layer)
                .fetch(&mut *tx);
                if !send_raw_rows!(rows, RELOAD_CHUNK, reload)? {
                    // The loader stopped (a corrupt row): it tells why.
                    return Ok(None);
                }
                ChangedFeatures::Reloaded
            } else {
                let rows = sqlx::query(
                    "SELECT * FROM features WHERE layer = ?1 AND id IN \
                     (SELECT feature_id FROM changes WHERE seq > ?2 AND seq <= ?3 AND layer = ?1 \
                      AND feature_id IS NOT NULL) ORDER BY rowid",
                )
                .bind(&layer)
                .bind(after)
                .bind(upto)
                .fetch_all(&mut *tx)
                .await?;
                let deleted: Vec<String> = sqlx::query_scalar(
                    "SELECT DISTINCT c.feature_id FROM changes c WHERE c.seq > ?2 AND c.seq <= ?3 \
                     AND c.layer = ?1 AND c.feature_id IS NOT NULL AND NOT EXISTS \
                     (SELECT 1 FROM features f WHERE f.layer = ?1 AND f.id = c.feature_id)",
                )
                .bind(&layer)
                .bind(after)
                .bind(upto)
                .fetch_all(&mut *tx)
                .await?;
                ChangedFeatures::Changed {
                    upserts: rows
                        .iter()
                        .map(feature_from_row)
                        .collect::<Result<_, _>>()?,
                    deleted,
                }
            };
            set.layers.push(LayerChanges {
                layer,
                current,
                features,
            });
        }
        tx.commit().await?;
        Ok(Some(set))
    }

    /// Deletes one feature; false when it did not exist.
    pub async fn delete(&self, layer: &str, id: &str) -> Result<bool, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.delete(layer, id).await);
        let mut tx = write(pool).await?;
        let at = now();
        record_deletes(&mut tx, layer, Some(id), &Actor::cli(None), &precise_now()).await?;
        let n = sqlx::query("DELETE FROM features WHERE layer = ? AND id = ?")
            .bind(layer)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n > 0 {
            log_change(&mut tx, layer, Some(id), ChangeOp::Delete, None, &at).await?;
            let actor = Actor::cli(None);
            append_audit(
                &mut tx,
                &actor.entry("delete", Some(layer), vec![id.into()]),
            )
            .await?;
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

pub(super) async fn log_change(
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

/// Decodes features row by row as the database yields them, without holding every row first.
async fn decode_rows(
    mut rows: futures_core::stream::BoxStream<'_, Result<sqlx::sqlite::SqliteRow, sqlx::Error>>,
) -> Result<Vec<Feature>, StoreError> {
    let mut out = Vec::new();
    while let Some(row) = std::future::poll_fn(|cx| rows.as_mut().poll_next(cx)).await {
        out.push(feature_from_row(&row?)?);
    }
    Ok(out)
}

/// Where an import's features come from: an iterator (batched here) or a decoder's channel.
pub(super) enum Source<I> {
    /// The iterator and whether it has ended.
    Iter(I, bool),
    Channel(tokio::sync::mpsc::Receiver<Batch>),
}

impl<I: Iterator<Item = Feature>> Source<I> {
    pub(super) async fn next(&mut self) -> Option<Batch> {
        match self {
            Source::Iter(_, true) => None,
            Source::Iter(it, ended) => {
                let batch: Vec<Feature> = it.by_ref().take(IMPORT_BATCH).collect();
                if batch.is_empty() {
                    *ended = true;
                    Some(Batch::Commit)
                } else {
                    Some(Batch::Features(batch))
                }
            }
            Source::Channel(rx) => rx.recv().await,
        }
    }
}

/// How many rows of a reloaded layer [`Store::changes_after`] sends at a time.
pub const RELOAD_CHUNK: usize = 8192;

/// What [`Store::changes_after`] found, up to change-log position `upto`.
#[derive(Debug)]
pub struct ChangeSet {
    /// The newest change-log position the set reflects.
    pub upto: i64,
    /// How many change-log rows it covers.
    pub changes: usize,
    pub layers: Vec<LayerChanges>,
    /// The log had been pruned past the position asked for (`yizhangtu prune-changes`): the
    /// set holds every layer of the database, whole, and a layer it lacks is gone.
    pub complete: bool,
}

impl ChangeSet {
    /// An empty set from `after` to `upto`; a `complete` one counts every position between as
    /// a change (the pruned rows cannot be counted).
    pub(super) fn new(upto: i64, after: i64, complete: bool) -> ChangeSet {
        ChangeSet {
            upto,
            changes: if complete { (upto - after) as usize } else { 0 },
            layers: Vec::new(),
            complete,
        }
    }
}

/// The state of one changed layer in a [`ChangeSet`].
#[derive(Debug)]
pub struct LayerChanges {
    pub layer: String,
    /// The layer's metadata and revision; `None` when the layer no longer exists.
    pub current: Option<(Layer, u64)>,
    pub features: ChangedFeatures,
}

#[derive(Debug)]
pub enum ChangedFeatures {
    /// Every feature of the layer (it was replaced, or much of it changed), sent as stored rows
    /// to the channel given to [`Store::changes_after`], to be built into a new index and
    /// swapped in whole. A layer none of whose rows came is now empty.
    Reloaded,
    /// The features changed since the last position, as they are now, and the deleted ids.
    Changed {
        upserts: Vec<Feature>,
        deleted: Vec<String>,
    },
}

/// Creates or updates a layer's row at the start of its part of an import (and empties it for
/// a replace); adds its summary.
async fn prepare_layer(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    id: &str,
    given: Option<&Layer>,
    mode: ImportMode,
    at: &str,
    summaries: &mut Vec<ImportSummary>,
    actor: &Actor,
) -> Result<(), StoreError> {
    if summaries.iter().any(|s| s.layer == id) {
        return Ok(());
    }
    let existing: Option<i64> = sqlx::query_scalar("SELECT revision FROM layers WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    if existing.is_none() || given.is_some() {
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
        .bind(at)
        .bind(at)
        .execute(&mut **tx)
        .await?;
        log_change(tx, id, None, ChangeOp::Layer, None, at).await?;
    }
    let mut summary = ImportSummary {
        layer: id.to_string(),
        inserted: 0,
        updated: 0,
        removed: 0,
        revision: 0,
    };
    if mode == ImportMode::Replace {
        record_deletes(tx, id, None, actor, &precise_now()).await?;
        let removed = sqlx::query("DELETE FROM features WHERE layer = ?")
            .bind(id)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        summary.removed = removed as usize;
        log_change(tx, id, None, ChangeOp::Replace, None, at).await?;
    }
    summaries.push(summary);
    Ok(())
}

/// Gives the features of `batch` that have no id the layer's next free numbers, in order:
/// numbers that a stored feature or another feature of the batch already uses are skipped.
async fn number_features(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    batch: &mut [Feature],
) -> Result<(), StoreError> {
    let mut layers: Vec<&str> = Vec::new();
    for f in batch.iter().filter(|f| f.id.is_empty()) {
        if !layers.contains(&f.layer.as_str()) {
            layers.push(&f.layer);
        }
    }
    let layers: Vec<String> = layers.into_iter().map(str::to_string).collect();
    for layer in layers {
        let wanted = batch
            .iter()
            .filter(|f| f.layer == layer && f.id.is_empty())
            .count();
        let given: HashSet<&str> = batch
            .iter()
            .filter(|f| f.layer == layer && !f.id.is_empty())
            .map(|f| f.id.as_str())
            .collect();
        let mut ids: Vec<String> = Vec::with_capacity(wanted);
        while ids.len() < wanted {
            let need = (wanted - ids.len()) as i64;
            let start: i64 = sqlx::query_scalar(
                "UPDATE layers SET next_id = next_id + ?1 WHERE id = ?2 RETURNING next_id - ?1",
            )
            .bind(need)
            .bind(&layer)
            .fetch_one(&mut **tx)
            .await?;
            let candidates: Vec<String> = (start..start + need).map(|n| n.to_string()).collect();
            let taken: HashSet<String> = sqlx::query_scalar(
                "SELECT id FROM features WHERE layer = ? AND id IN (SELECT value FROM json_each(?))",
            )
            .bind(&layer)
            .bind(serde_json::to_string(&candidates).unwrap_or_default())
            .fetch_all(&mut **tx)
            .await?
            .into_iter()
            .collect();
            ids.extend(
                candidates
                    .into_iter()
                    .filter(|c| !taken.contains(c) && !given.contains(c.as_str())),
            );
        }
        let mut ids = ids.into_iter();
        for f in batch
            .iter_mut()
            .filter(|f| f.layer == layer && f.id.is_empty())
        {
            f.id = ids.next().unwrap_or_default();
        }
    }
    Ok(())
}

/// The page cache (KiB) the import's connection keeps while it writes: index pages stay
/// in memory instead of going through the WAL and back (issue 15: peak RSS of a 1M-parcel
/// import stays well under 500 MB).
const IMPORT_CACHE_KIB: i64 = 128 * 1024;

/// The body of [`Store::import_source`] on SQLite, inside its transaction (which the caller
/// commits only on `Ok`).
async fn import_in<I: Iterator<Item = Feature> + Send>(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    layers: &[Layer],
    source: &mut Source<I>,
    mode: ImportMode,
    ids: Ids,
    progress: Option<&(dyn Fn(usize) + Send + Sync)>,
    actor: &Actor,
) -> Result<Vec<ImportSummary>, StoreError> {
    let at = now();
    let mut summaries: Vec<ImportSummary> = Vec::new();
    let mut once = (ids == Ids::Once).then(Once::default);
    for l in layers {
        prepare_layer(tx, &l.id, Some(l), mode, &at, &mut summaries, actor).await?;
        if let Some(once) = &mut once {
            once.prepared(tx, &l.id).await?;
        }
    }
    let mut done = 0usize;
    let committed = loop {
        match source.next().await {
            None => break false,
            Some(Batch::Commit) => break true,
            Some(Batch::Features(mut batch)) => {
                for id in &unprepared_layers(&batch, &summaries)? {
                    prepare_layer(tx, id, None, mode, &at, &mut summaries, actor).await?;
                    if let Some(once) = &mut once {
                        once.prepared(tx, id).await?;
                    }
                }
                number_features(tx, &mut batch).await?;
                for chunk in batch.chunks(IMPORT_BATCH) {
                    write_features(tx, chunk, &at, &mut summaries, actor, once.as_mut()).await?;
                }
                done += batch.len();
                if let Some(report) = progress {
                    report(done);
                }
            }
        }
    };
    if !committed {
        // Dropping the transaction rolls it back.
        return Err(StoreError::Aborted);
    }
    if let Some(once) = once {
        once.finish(tx).await?;
    }
    for s in &mut summaries {
        let rev: i64 = sqlx::query_scalar(
            "UPDATE layers SET revision = revision + 1, updated_at = ? WHERE id = ? RETURNING revision",
        )
        .bind(&at)
        .bind(&s.layer)
        .fetch_one(&mut **tx)
        .await?;
        s.revision = rev as u64;
    }
    for s in &summaries {
        let entry = actor.entry(mode.audit_action(), Some(&s.layer), vec![s.audit_counts()]);
        append_audit(tx, &entry).await?;
    }
    Ok(summaries)
}

/// Writes up to [`IMPORT_BATCH`] features as a few multi-row upserts, a chunk that names a
/// feature again cut before the repeat: in one statement the repeat would update the row the
/// statement itself inserted, and the history, written once per statement from the stored
/// rows, would keep only the last of the two versions (PostgreSQL's path cuts for the same
/// reason, as it refuses such a statement).
async fn write_features(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    chunk: &[Feature],
    at: &str,
    summaries: &mut [ImportSummary],
    actor: &Actor,
    mut once: Option<&mut Once>,
) -> Result<(), StoreError> {
    let runs = distinct_runs(chunk);
    if once.is_some() {
        refuse_repeat_within(chunk, &runs)?;
    }
    for run in runs {
        write_distinct(tx, &chunk[run], at, summaries, actor, once.as_deref_mut()).await?;
    }
    Ok(())
}

/// [`StoreError::RepeatedId`] for the feature that starts the second of `runs` (see
/// [`distinct_runs`]), if there is one: a batch that names a feature twice. Shared with
/// PostgreSQL's import.
pub(super) fn refuse_repeat_within(
    features: &[Feature],
    runs: &[std::ops::Range<usize>],
) -> Result<(), StoreError> {
    match runs.get(1).and_then(|r| features.get(r.start)) {
        Some(f) => Err(repeated(f)),
        None => Ok(()),
    }
}

fn repeated(f: &Feature) -> StoreError {
    StoreError::RepeatedId {
        layer: f.layer.clone(),
        id: f.id.clone(),
    }
}

/// How a SQLite import that takes each feature once ([`Ids::Once`]) finds a repeat, keeping no
/// id in memory. A layer that held none of its features once prepared (new, replaced or empty)
/// is fresh: a row found there was written by this import (the import holds SQLite's one write
/// lock, so no one else writes meanwhile), and finding rows is what the upsert does anyway.
/// The ids written to other layers go to a temporary table (on disk, as SQLite keeps temporary
/// tables by default), which the transaction drops.
#[derive(Default)]
struct Once {
    fresh: HashSet<String>,
    keys_table: bool,
}

impl Once {
    /// Notes whether layer `id`, just prepared, is fresh.
    async fn prepared(
        &mut self,
        tx: &mut sqlx::Transaction<'_, Sqlite>,
        id: &str,
    ) -> Result<(), StoreError> {
        let held: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM features WHERE layer = ?)")
                .bind(id)
                .fetch_one(&mut **tx)
                .await?;
        if !held {
            self.fresh.insert(id.to_string());
        }
        Ok(())
    }

    /// Fails with [`StoreError::RepeatedId`] when a feature of `chunk` (distinct among
    /// themselves) was written before by this import; `existing` are the chunk's keys that have
    /// a row.
    async fn check(
        &mut self,
        tx: &mut sqlx::Transaction<'_, Sqlite>,
        chunk: &[Feature],
        existing: &HashSet<(String, String)>,
    ) -> Result<(), StoreError> {
        // Rows are rare in an import into a fresh layer: look for the feature only when one is.
        if existing.iter().any(|(layer, _)| self.fresh.contains(layer)) {
            let again = chunk.iter().find(|f| {
                self.fresh.contains(&f.layer) && existing.contains(&(f.layer.clone(), f.id.clone()))
            });
            if let Some(f) = again {
                return Err(repeated(f));
            }
        }
        let elsewhere: Vec<(&str, &str)> = chunk
            .iter()
            .filter(|f| !self.fresh.contains(&f.layer))
            .map(|f| (f.layer.as_str(), f.id.as_str()))
            .collect();
        if elsewhere.is_empty() {
            return Ok(());
        }
        if !self.keys_table {
            sqlx::query(
                "CREATE TEMP TABLE IF NOT EXISTS import_keys (layer TEXT NOT NULL, \
                 id TEXT NOT NULL, PRIMARY KEY (layer, id)) WITHOUT ROWID",
            )
            .execute(&mut **tx)
            .await?;
            sqlx::query("DELETE FROM temp.import_keys")
                .execute(&mut **tx)
                .await?;
            self.keys_table = true;
        }
        let keys = serde_json::to_string(&elsewhere).unwrap_or_else(|_| "[]".into());
        // The WHERE resolves the parse ambiguity of an upsert on a SELECT.
        let added: HashSet<(String, String)> = sqlx::query_as(
            "INSERT INTO temp.import_keys (layer, id) \
             SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?) \
             WHERE true ON CONFLICT DO NOTHING RETURNING layer, id",
        )
        .bind(&keys)
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .collect();
        if added.len() < elsewhere.len() {
            if let Some(f) = chunk.iter().find(|f| {
                !self.fresh.contains(&f.layer) && !added.contains(&(f.layer.clone(), f.id.clone()))
            }) {
                return Err(repeated(f));
            }
        }
        Ok(())
    }

    /// Drops the keys table, if the import made one.
    async fn finish(self, tx: &mut sqlx::Transaction<'_, Sqlite>) -> Result<(), StoreError> {
        if self.keys_table {
            sqlx::query("DROP TABLE temp.import_keys")
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}

/// `features` cut into runs in which no (layer, id) comes twice, each cut made before a
/// repeat; one run (or none, for no features) when nothing repeats. Shared with PostgreSQL's
/// import.
pub(super) fn distinct_runs(features: &[Feature]) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::with_capacity(1);
    let mut start = 0;
    let mut keys: HashSet<(&str, &str)> = HashSet::with_capacity(features.len());
    for (i, f) in features.iter().enumerate() {
        if !keys.insert((&f.layer, &f.id)) {
            runs.push(start..i);
            start = i;
            keys.clear();
            keys.insert((&f.layer, &f.id));
        }
    }
    if start < features.len() {
        runs.push(start..features.len());
    }
    runs
}

/// Writes features with distinct ids with one multi-row upsert (a stored feature with the same
/// id gets version + 1), their history rows and their change-log rows.
async fn write_distinct(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    chunk: &[Feature],
    at: &str,
    summaries: &mut [ImportSummary],
    actor: &Actor,
    once: Option<&mut Once>,
) -> Result<(), StoreError> {
    if chunk.is_empty() {
        return Ok(());
    }
    // Which of the chunk's features exist already: those are updates, the others insertions
    // (whose version continues a deleted feature's history, if it had one).
    let keys: Vec<(&str, &str)> = chunk
        .iter()
        .map(|f| (f.layer.as_str(), f.id.as_str()))
        .collect();
    let keys = serde_json::to_string(&keys).unwrap_or_else(|_| "[]".into());
    let existing: HashSet<(String, String)> = sqlx::query_as(
        "SELECT layer, id FROM features WHERE (layer, id) IN \
         (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))",
    )
    .bind(&keys)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect();
    if let Some(once) = once {
        once.check(tx, chunk, &existing).await?;
    }
    // The last version in the history of each key (a deleted feature's, for an insertion),
    // read with one query: a subquery in each row of the upsert would keep a cursor open for
    // every row, and SQLite walks the open cursors each time it opens one.
    let prior: HashMap<(String, String), i64> = sqlx::query_as(
        "SELECT h.layer, h.feature_id, max(h.version) FROM feature_history h \
         JOIN (SELECT json_extract(value, '$[0]') AS layer, json_extract(value, '$[1]') AS id \
         FROM json_each(?)) k ON h.layer = k.layer AND h.feature_id = k.id \
         GROUP BY h.layer, h.feature_id",
    )
    .bind(&keys)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|(layer, id, version)| ((layer, id), version))
    .collect();
    // Per feature: properties as JSON text, geometry as WKB, bounding box.
    type Encoded = (String, Option<Vec<u8>>, Option<geo::Rect<f64>>);
    let encoded: Vec<Encoded> = chunk
        .iter()
        .map(|f| {
            (
                serde_json::to_string(&f.properties).unwrap_or_else(|_| "{}".into()),
                f.geometry.as_ref().map(wkb::encode),
                f.bbox(),
            )
        })
        .collect();
    let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
        "INSERT INTO features (layer, id, admin_code, name, properties, geometry, \
         min_x, min_y, max_x, max_y, version, created_at, updated_at) ",
    );
    insert.push_values(
        chunk.iter().zip(&encoded),
        |mut row, (f, (props, wkb, bbox))| {
            row.push_bind(&f.layer)
                .push_bind(&f.id)
                .push_bind(&f.admin_code)
                .push_bind(&f.name)
                .push_bind(props)
                .push_bind(wkb)
                .push_bind(bbox.map(|r| r.min().x))
                .push_bind(bbox.map(|r| r.min().y))
                .push_bind(bbox.map(|r| r.max().x))
                .push_bind(bbox.map(|r| r.max().y))
                .push_bind(if prior.is_empty() {
                    1
                } else {
                    prior
                        .get(&(f.layer.clone(), f.id.clone()))
                        .map_or(1, |v| v + 1)
                })
                .push_bind(at)
                .push_bind(at);
        },
    );
    insert.push(
        " ON CONFLICT(layer, id) DO UPDATE SET admin_code = excluded.admin_code, \
         name = excluded.name, properties = excluded.properties, \
         geometry = excluded.geometry, min_x = excluded.min_x, min_y = excluded.min_y, \
         max_x = excluded.max_x, max_y = excluded.max_y, version = features.version + 1, \
         updated_at = excluded.updated_at \
         RETURNING layer, id, version",
    );
    let written: Vec<(String, String, i64)> = insert.build_query_as().fetch_all(&mut **tx).await?;
    let mut history: Vec<(String, String, &'static str)> = Vec::with_capacity(written.len());
    for (layer, id, _) in &written {
        let existed = existing.contains(&(layer.clone(), id.clone()));
        if let Some(s) = summaries.iter_mut().find(|s| &s.layer == layer) {
            if existed {
                s.updated += 1;
            } else {
                s.inserted += 1;
            }
        }
        history.push((
            layer.clone(),
            id.clone(),
            if existed { "update" } else { "insert" },
        ));
    }
    record_written(tx, &history, actor, &precise_now()).await?;
    let mut log: QueryBuilder<Sqlite> =
        QueryBuilder::new("INSERT INTO changes (layer, feature_id, op, version, at) ");
    log.push_values(&written, |mut row, (layer, id, version)| {
        let op = if existing.contains(&(layer.clone(), id.clone())) {
            ChangeOp::Update
        } else {
            ChangeOp::Insert
        };
        row.push_bind(layer)
            .push_bind(id)
            .push_bind(op.as_str())
            .push_bind(*version)
            .push_bind(at);
    });
    log.build().execute(&mut **tx).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_cut_before_each_repeat_of_a_layer_and_id() {
        let f = |layer: &str, id: &str| {
            Feature::from_parts(layer, id.to_string(), serde_json::Map::new(), None)
        };
        let features = [
            f("a", "1"),
            f("a", "2"),
            f("b", "1"),
            f("a", "1"),
            f("a", "3"),
            f("a", "2"),
            f("a", "2"),
        ];
        assert_eq!(distinct_runs(&features), vec![0..3, 3..6, 6..7]);
        assert_eq!(distinct_runs(&features[..3]), vec![0..3]);
        assert!(distinct_runs(&[]).is_empty());
    }
}
