//! The store on PostgreSQL with PostGIS: the same calls as the SQLite store, for a database that
//! several yizhangtu processes (and QGIS, `ogr2ogr PG:`, SQL users) share.
//!
//! Why a second implementation behind an enum rather than `sqlx::Any`: Any cannot read PostGIS
//! columns or bind arrays, does not translate placeholders, and would put SQLite (the default,
//! and the engine's start-up path) behind a conversion layer. The SQL that differs is most of it
//! anyway (`unnest` for `json_each`, advisory locks for `BEGIN IMMEDIATE`, identity columns for
//! rowid, views per layer), so each database gets its own statements and the `Store` methods
//! choose (`sqlite_or_pg!`).
//!
//! Writes are serialised by one transaction-scoped advisory lock, as SQLite serialises its
//! writers: change-log numbers then commit in order (a follower reading `seq > n` never skips a
//! row that commits later), the audit chain cannot fork, and a write that waits longer than the
//! busy timeout is [`StoreError::Busy`]. Every write that appends to the change log also
//! `NOTIFY`s [`CHANNEL`], delivered when it commits.

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder};
use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use super::accounts::{
    audit_from_row, chain_hash, user_from_row, AuditEntry, AuditFilter, AuditRow, BrokenRow,
    UserRow, GENESIS,
};
use super::history::{
    history_from_row, precise_now, Actor, EditError, HistoryEntry, HISTORY_AS_FEATURE,
};
use super::indicators::{
    direction_str, indicator_from_row, observation_from_row, plan_from_row, progress_from_row,
};
use super::sqlite::{
    feature_from_row, layer_from_row, now, Batch, ChangeOp, ChangeSet, ChangedFeatures, Ids,
    ImportMode, ImportSummary, LayerChanges, Source, StoreError, StoreOptions,
};
use crate::formats::wkb;
use crate::model::{Feature, Layer};
use crate::monitor::indicators::{Indicator, Observation};
use crate::monitor::lifecycle::Progress;
use crate::monitor::plans::Plan;

/// The channel every change-log write notifies (payload empty: followers read the log itself).
pub const CHANNEL: &str = "yizhangtu_changes";

/// The advisory lock all writers take for the length of their transaction.
const WRITE_LOCK: i64 = 0x7969_7a68_616e_6774; // "yizhangt"

type Tx = sqlx::Transaction<'static, Postgres>;

/// The columns [`feature_from_row`] reads (never `geom`: yizhangtu reads its own WKB).
const FEATURE_COLUMNS: &str =
    "layer, id, admin_code, name, properties, geometry, version, created_at, updated_at";

#[derive(Clone)]
pub(super) struct PgStore {
    pool: PgPool,
    busy_timeout: Duration,
    changed: Arc<Changed>,
}

/// Notifications of [`CHANNEL`], heard by one `LISTEN` connection started on first use.
#[derive(Default)]
struct Changed {
    notify: tokio::sync::Notify,
    listening: std::sync::OnceLock<()>,
}

fn open_error(url: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Open {
        url: redact(url),
        reason: reason.into(),
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let user_info = &url[s + 3..at];
            match user_info.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl PgStore {
    /// Connects, makes sure PostGIS is there (creating the extension when the server has it)
    /// and migrates.
    pub(super) async fn open(url: &str, options: &StoreOptions) -> Result<PgStore, StoreError> {
        let opts = PgConnectOptions::from_str(url).map_err(|e| open_error(url, e.to_string()))?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(options.busy_timeout.max(Duration::from_secs(1)))
            .connect_with(opts)
            .await
            .map_err(|e| open_error(url, e.to_string()))?;
        ensure_postgis(&pool)
            .await
            .map_err(|reason| open_error(url, reason))?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PgStore {
            pool,
            busy_timeout: options.busy_timeout,
            changed: Arc::default(),
        })
    }

    /// Resolves when another process may have written: a `NOTIFY` on [`CHANNEL`] arrived, or
    /// the `LISTEN` connection was lost and re-made (notifications may have been missed, so
    /// the follower should look at the log). The first call starts listening.
    pub(super) async fn changed(&self) {
        let changed = Arc::clone(&self.changed);
        self.changed.listening.get_or_init(|| {
            tokio::spawn(listen(self.pool.clone(), changed));
        });
        self.changed.notify.notified().await;
    }

    pub(super) async fn close(&self) {
        self.pool.close().await;
    }

    /// The connection pool (for reads that stream rows, shared with the SQLite code).
    pub(super) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Connections open, of them idle, and the most the pool opens.
    pub(super) fn pool_status(&self) -> (u32, usize, u32) {
        let max = self.pool.options().get_max_connections();
        (self.pool.size(), self.pool.num_idle(), max)
    }

    /// A write transaction holding the writers' advisory lock (waiting up to the busy timeout).
    pub(super) async fn write_transaction(&self) -> Result<Tx, StoreError> {
        self.write().await
    }

    async fn write(&self) -> Result<Tx, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "SET LOCAL lock_timeout = {}",
            self.busy_timeout.as_millis().max(1)
        ))
        .execute(&mut *tx)
        .await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    pub(super) async fn is_empty(&self) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM layers")
            .fetch_one(&self.pool)
            .await?;
        Ok(n == 0)
    }

    pub(super) async fn layers(&self) -> Result<Vec<(Layer, u64)>, StoreError> {
        let rows = sqlx::query("SELECT * FROM layers ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(layer_from_row).collect::<Result<_, _>>()?)
    }

    pub(super) async fn layer(&self, id: &str) -> Result<Option<(Layer, u64)>, StoreError> {
        let row = sqlx::query("SELECT * FROM layers WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(layer_from_row).transpose()?)
    }

    pub(super) async fn counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT l.id, (SELECT count(*) FROM features f WHERE f.layer = l.id) AS n \
             FROM layers l ORDER BY l.id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    pub(super) async fn all_features(&self) -> Result<Vec<Feature>, StoreError> {
        let sql = format!("SELECT {FEATURE_COLUMNS} FROM features ORDER BY layer, pos");
        decode_rows(sqlx::query(&sql).fetch(&self.pool)).await
    }

    /// [`super::Store::prune_changes`] on PostgreSQL.
    pub(super) async fn prune_changes(
        &self,
        keep: u64,
        actor: &Actor,
    ) -> Result<super::changelog::Pruned, StoreError> {
        let mut tx = self.write().await?;
        let newest: i64 = sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM changes")
            .fetch_one(&mut *tx)
            .await?;
        let before = pg_pruned_upto(&mut tx).await?;
        let upto = super::changelog::prune_point(newest, keep);
        let mut deleted = 0;
        if upto > before {
            deleted = sqlx::query("DELETE FROM changes WHERE seq <= $1")
                .bind(upto)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query(
                "INSERT INTO changes_pruned (id, pruned_upto, at) VALUES (1, $1, $2) \
                 ON CONFLICT (id) DO UPDATE SET pruned_upto = $1, at = $2",
            )
            .bind(upto)
            .bind(now())
            .execute(&mut *tx)
            .await?;
            append_audit(
                &mut tx,
                &super::changelog::prune_audit(actor, upto, deleted),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(super::changelog::Pruned {
            deleted,
            pruned_upto: upto.max(before),
            newest,
        })
    }

    pub(super) async fn last_change(&self) -> Result<i64, StoreError> {
        let n: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM changes")
            .fetch_one(&self.pool)
            .await?;
        Ok(n.unwrap_or(0))
    }

    pub(super) async fn import_source<I: Iterator<Item = Feature> + Send>(
        &self,
        layers: &[Layer],
        mut source: Source<I>,
        mode: ImportMode,
        ids: Ids,
        progress: Option<&(dyn Fn(usize) + Send + Sync)>,
        actor: &Actor,
    ) -> Result<Vec<ImportSummary>, StoreError> {
        for l in layers {
            if !Layer::valid_id(&l.id) {
                return Err(StoreError::LayerId(l.id.clone()));
            }
        }
        let mut tx = self.write().await?;
        let at = now();
        let mut summaries: Vec<ImportSummary> = Vec::new();
        for l in layers {
            prepare_layer(&mut tx, &l.id, Some(l), mode, &at, &mut summaries, actor).await?;
        }
        let mut done = 0usize;
        let committed = loop {
            match source.next().await {
                None => break false,
                Some(Batch::Commit) => break true,
                Some(Batch::Features(mut batch)) => {
                    for id in &super::sqlite::unprepared_layers(&batch, &summaries)? {
                        prepare_layer(&mut tx, id, None, mode, &at, &mut summaries, actor).await?;
                    }
                    number_features(&mut tx, &mut batch).await?;
                    write_features(&mut tx, &batch, &at, &mut summaries, actor, ids).await?;
                    done += batch.len();
                    if let Some(p) = progress {
                        p(done);
                    }
                }
            }
        };
        if !committed {
            return Err(StoreError::Aborted);
        }
        for s in &mut summaries {
            let rev: i64 = sqlx::query_scalar(
                "UPDATE layers SET revision = revision + 1, updated_at = $1 WHERE id = $2 \
                 RETURNING revision",
            )
            .bind(&at)
            .bind(&s.layer)
            .fetch_one(&mut *tx)
            .await?;
            s.revision = rev as u64;
            refresh_view(&mut tx, &s.layer).await?;
        }
        for s in &summaries {
            let entry = actor.entry(mode.audit_action(), Some(&s.layer), vec![s.audit_counts()]);
            append_audit(&mut tx, &entry).await?;
        }
        tx.commit().await?;
        Ok(summaries)
    }

    pub(super) async fn changes_after(
        &self,
        after: i64,
        reload_above: usize,
        reload: &tokio::sync::mpsc::Sender<Vec<crate::model::RawFeature>>,
    ) -> Result<Option<ChangeSet>, StoreError> {
        // One snapshot for the whole set: REPEATABLE READ, read only (blocks no writer).
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let upto: i64 = sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM changes")
            .fetch_one(&mut *tx)
            .await?;
        if upto <= after {
            return Ok(None);
        }
        // Pruned past our position: the missed changes are gone, so every layer is reloaded.
        let truncated = after < pg_pruned_upto(&mut tx).await?;
        let per_layer: Vec<(String, i64, bool)> = if truncated {
            sqlx::query_as("SELECT id, 0::bigint, true FROM layers ORDER BY id")
                .fetch_all(&mut *tx)
                .await?
        } else {
            sqlx::query_as(
                "SELECT layer, count(*), bool_or(op = 'replace') FROM changes \
                 WHERE seq > $1 AND seq <= $2 GROUP BY layer ORDER BY layer",
            )
            .bind(after)
            .bind(upto)
            .fetch_all(&mut *tx)
            .await?
        };
        let mut set = ChangeSet::new(upto, after, truncated);
        for (layer, n, replaced) in per_layer {
            set.changes += n as usize;
            let current = sqlx::query("SELECT * FROM layers WHERE id = $1")
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
                let sql =
                    format!("SELECT {FEATURE_COLUMNS} FROM features WHERE layer = $1 ORDER BY pos");
                let rows = sqlx::query(&sql).bind(&layer).fetch(&mut *tx);
                if !send_raw_rows!(rows, super::sqlite::RELOAD_CHUNK, reload)? {
                    // The loader stopped (a corrupt row): it tells why.
                    return Ok(None);
                }
                ChangedFeatures::Reloaded
            } else {
                let sql = format!(
                    "SELECT {FEATURE_COLUMNS} FROM features WHERE layer = $1 AND id IN \
                     (SELECT feature_id FROM changes WHERE seq > $2 AND seq <= $3 AND layer = $1 \
                      AND feature_id IS NOT NULL) ORDER BY pos"
                );
                let rows = sqlx::query(&sql)
                    .bind(&layer)
                    .bind(after)
                    .bind(upto)
                    .fetch_all(&mut *tx)
                    .await?;
                let deleted: Vec<String> = sqlx::query_scalar(
                    "SELECT DISTINCT c.feature_id FROM changes c WHERE c.seq > $2 AND c.seq <= $3 \
                     AND c.layer = $1 AND c.feature_id IS NOT NULL AND NOT EXISTS \
                     (SELECT 1 FROM features f WHERE f.layer = $1 AND f.id = c.feature_id)",
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

    pub(super) async fn delete(&self, layer: &str, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let at = now();
        let actor = Actor::cli(None);
        record_deletes(&mut tx, layer, Some(id), &actor, &precise_now()).await?;
        let n = sqlx::query("DELETE FROM features WHERE layer = $1 AND id = $2")
            .bind(layer)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n > 0 {
            finish_edit(&mut tx, layer, id, ChangeOp::Delete, None, &at).await?;
            append_audit(
                &mut tx,
                &actor.entry("delete", Some(layer), vec![id.into()]),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    // Feature history and version-checked edits (store/history.rs on SQLite).

    pub(super) async fn current_feature(
        &self,
        layer: &str,
        id: &str,
    ) -> Result<Option<Feature>, StoreError> {
        let sql = format!("SELECT {FEATURE_COLUMNS} FROM features WHERE layer = $1 AND id = $2");
        let row = sqlx::query(&sql)
            .bind(layer)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(feature_from_row).transpose()
    }

    pub(super) async fn replace_feature(
        &self,
        f: &Feature,
        expected: i64,
        actor: &Actor,
        action: &str,
    ) -> Result<i64, EditError> {
        let mut tx = self.write().await?;
        let at = now();
        let bbox = f.bbox();
        let version: Option<i64> = sqlx::query_scalar(
            "UPDATE features SET admin_code = $1, name = $2, properties = $3, geometry = $4, \
             min_x = $5, min_y = $6, max_x = $7, max_y = $8, version = version + 1, \
             updated_at = $9 WHERE layer = $10 AND id = $11 AND version = $12 RETURNING version",
        )
        .bind(&f.admin_code)
        .bind(&f.name)
        .bind(serde_json::to_string(&f.properties).unwrap_or_else(|_| "{}".into()))
        .bind(f.geometry.as_ref().map(wkb::encode))
        .bind(bbox.map(|r| r.min().x))
        .bind(bbox.map(|r| r.min().y))
        .bind(bbox.map(|r| r.max().x))
        .bind(bbox.map(|r| r.max().y))
        .bind(&at)
        .bind(&f.layer)
        .bind(&f.id)
        .bind(expected)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(version) = version else {
            return Err(why_not(&mut tx, &f.layer, &f.id).await);
        };
        record_written(
            &mut tx,
            &[(f.layer.clone(), f.id.clone(), "update")],
            actor,
            &precise_now(),
        )
        .await?;
        finish_edit(
            &mut tx,
            &f.layer,
            &f.id,
            ChangeOp::Update,
            Some(version),
            &at,
        )
        .await?;
        if view_lacks_keys(&mut tx, &f.layer, &f.properties).await? {
            refresh_view(&mut tx, &f.layer).await?;
        }
        append_audit(
            &mut tx,
            &actor.entry(action, Some(&f.layer), vec![f.id.clone()]),
        )
        .await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(version)
    }

    pub(super) async fn delete_feature(
        &self,
        layer: &str,
        id: &str,
        expected: i64,
        actor: &Actor,
    ) -> Result<i64, EditError> {
        let mut tx = self.write().await?;
        let at = now();
        let current: Option<i64> =
            sqlx::query_scalar("SELECT version FROM features WHERE layer = $1 AND id = $2")
                .bind(layer)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        match current {
            None => return Err(EditError::NotFound),
            Some(v) if v != expected => return Err(EditError::Stale { current: v }),
            Some(_) => {}
        }
        record_deletes(&mut tx, layer, Some(id), actor, &precise_now()).await?;
        sqlx::query("DELETE FROM features WHERE layer = $1 AND id = $2")
            .bind(layer)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        finish_edit(
            &mut tx,
            layer,
            id,
            ChangeOp::Delete,
            Some(expected + 1),
            &at,
        )
        .await?;
        append_audit(
            &mut tx,
            &actor.entry("delete", Some(layer), vec![id.into()]),
        )
        .await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(expected + 1)
    }

    pub(super) async fn history(
        &self,
        layer: &str,
        id: &str,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {HISTORY_AS_FEATURE} FROM feature_history WHERE layer = $1 \
             AND feature_id = $2 ORDER BY version"
        ))
        .bind(layer)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(history_from_row).collect()
    }

    pub(super) async fn history_version(
        &self,
        layer: &str,
        id: &str,
        version: i64,
    ) -> Result<Option<HistoryEntry>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {HISTORY_AS_FEATURE} FROM feature_history WHERE layer = $1 \
             AND feature_id = $2 AND version = $3"
        ))
        .bind(layer)
        .bind(id)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(history_from_row).transpose()
    }

    pub(super) async fn layer_as_of(
        &self,
        layer: &str,
        at: &str,
    ) -> Result<Vec<Feature>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {HISTORY_AS_FEATURE} FROM feature_history h WHERE layer = $1 AND at <= $2 \
             AND version = (SELECT max(version) FROM feature_history h2 WHERE h2.layer = $1 \
             AND h2.feature_id = h.feature_id AND h2.at <= $2) AND op != 'delete' \
             ORDER BY feature_id"
        ))
        .bind(layer)
        .bind(at)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| history_from_row(r).map(|h| h.feature))
            .collect()
    }

    // Users and the audit log (store/accounts.rs on SQLite).

    pub(super) async fn add_user(
        &self,
        name: &str,
        role: &str,
        scope: &[String],
        token_id: &str,
        token_hash: &str,
        audit: &AuditEntry,
    ) -> Result<Option<UserRow>, StoreError> {
        let mut tx = self.write().await?;
        let at = now();
        let row = sqlx::query(
            "INSERT INTO users (name, role, scope, token_id, token_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (name) DO NOTHING RETURNING *",
        )
        .bind(name)
        .bind(role)
        .bind(scope.join(","))
        .bind(token_id)
        .bind(token_hash)
        .bind(&at)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        append_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(Some(user_from_row(&row)?))
    }

    pub(super) async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM users ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(user_from_row).collect::<Result<_, _>>()?)
    }

    pub(super) async fn has_active_users(&self) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE revoked_at IS NULL")
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    pub(super) async fn user_by_token_id(
        &self,
        token_id: &str,
    ) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM users WHERE token_id = $1")
            .bind(token_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    pub(super) async fn revoke_user(
        &self,
        name: &str,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let n = sqlx::query(
            "UPDATE users SET revoked_at = $1, updated_at = $1, token_id = NULL, \
             token_hash = NULL WHERE name = $2 AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(name)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            append_audit(&mut tx, audit).await?;
            tx.commit().await?;
        }
        Ok(n > 0)
    }

    pub(super) async fn set_token(
        &self,
        name: &str,
        token_id: &str,
        token_hash: &str,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let n = sqlx::query(
            "UPDATE users SET token_id = $1, token_hash = $2, updated_at = $3 \
             WHERE name = $4 AND revoked_at IS NULL",
        )
        .bind(token_id)
        .bind(token_hash)
        .bind(now())
        .bind(name)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            append_audit(&mut tx, audit).await?;
            tx.commit().await?;
        }
        Ok(n > 0)
    }

    pub(super) async fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        append_audit(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn audit_rows(
        &self,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM audit WHERE ($1::text IS NULL OR at >= $1) \
             AND ($2::text IS NULL OR user_name = $2) AND ($3::text IS NULL OR layer = $3) \
             ORDER BY seq LIMIT $4",
        )
        .bind(&filter.since)
        .bind(&filter.user)
        .bind(&filter.layer)
        .bind(filter.limit.min(i64::MAX as usize) as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(audit_from_row).collect::<Result<_, _>>()?)
    }

    pub(super) async fn verify_audit(&self) -> Result<Result<usize, BrokenRow>, StoreError> {
        let mut rows = sqlx::query("SELECT * FROM audit ORDER BY seq").fetch(&self.pool);
        let mut prev = GENESIS.to_string();
        let mut prev_seq = 0i64;
        let mut n = 0usize;
        while let Some(r) = std::future::poll_fn(|cx| rows.as_mut().poll_next(cx)).await {
            let row = audit_from_row(&r?)?;
            let broken = |why: String| Ok(Err(BrokenRow { seq: row.seq, why }));
            if row.seq != prev_seq + 1 {
                return broken(format!(
                    "rows {} to {} are missing (deleted)",
                    prev_seq + 1,
                    row.seq - 1
                ));
            }
            if row.prev_hash != prev {
                return broken("its prev_hash is not the previous row's hash".into());
            }
            if row.hash != chain_hash(&prev, row.seq, &row.at, &row.entry) {
                return broken("its content does not match its hash (the row was changed)".into());
            }
            prev = row.hash;
            prev_seq = row.seq;
            n += 1;
        }
        drop(rows);
        let max_ever: i64 = sqlx::query_scalar("SELECT seq FROM audit_head")
            .fetch_one(&self.pool)
            .await?;
        if max_ever > prev_seq {
            return Ok(Err(BrokenRow {
                seq: prev_seq + 1,
                why: format!("rows {} to {max_ever} are missing (deleted)", prev_seq + 1),
            }));
        }
        Ok(Ok(n))
    }

    // Plans, indicators, observations, progress (store/indicators.rs on SQLite).

    pub(super) async fn plans_empty(&self) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM plans")
            .fetch_one(&self.pool)
            .await?;
        Ok(n == 0)
    }

    pub(super) async fn seed_plans(
        &self,
        plans: &[Plan],
        indicators: &[Indicator],
        progress: &[Progress],
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        for p in plans {
            sqlx::query(
                "INSERT INTO plans (id, title, issuer, doc_number, issued, period_start, \
                 period_end, period_text, district, district_code, focus_unit, focus_code, \
                 document) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(&p.id)
            .bind(&p.title)
            .bind(&p.issuer)
            .bind(&p.doc_number)
            .bind(&p.date)
            .bind(p.period.start)
            .bind(p.period.end)
            .bind(&p.period.as_written)
            .bind(&p.district)
            .bind(&p.district_code)
            .bind(&p.focus_unit)
            .bind(&p.focus_code)
            .bind(&p.document)
            .execute(&mut *tx)
            .await?;
        }
        for i in indicators {
            sqlx::query(
                "INSERT INTO indicators (id, plan, name, scope_code, scope_text, unit, \
                 baseline_value, baseline_year, target_value, target_year, binding, direction, \
                 category, quote, catalog) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            )
            .bind(&i.id)
            .bind(&i.plan)
            .bind(&i.name)
            .bind(&i.scope_code)
            .bind(&i.scope_text)
            .bind(&i.unit)
            .bind(i.baseline_value)
            .bind(i.baseline_year)
            .bind(i.target_value)
            .bind(i.target_year)
            .bind(&i.binding)
            .bind(direction_str(i.direction))
            .bind(&i.category)
            .bind(&i.quote)
            .bind(&i.catalog)
            .execute(&mut *tx)
            .await?;
        }
        let at = now();
        for p in progress {
            insert_progress(&mut tx, p, &at).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn plans(&self) -> Result<Vec<Plan>, StoreError> {
        let rows = sqlx::query("SELECT * FROM plans ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(plan_from_row)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    pub(super) async fn indicators(&self) -> Result<Vec<Indicator>, StoreError> {
        let rows = sqlx::query("SELECT * FROM indicators ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(indicator_from_row)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    pub(super) async fn observations(&self) -> Result<Vec<Observation>, StoreError> {
        let rows = sqlx::query("SELECT * FROM observations ORDER BY seq")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(observation_from_row)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    pub(super) async fn add_observations(
        &self,
        observations: &[Observation],
        recorded_by: &str,
    ) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.write().await?;
        let at = now();
        let mut seqs = Vec::with_capacity(observations.len());
        for o in observations {
            let seq: i64 = sqlx::query_scalar(
                "INSERT INTO observations (indicator, value, observed_on, source, note, \
                 recorded_by, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq",
            )
            .bind(&o.indicator)
            .bind(o.value)
            .bind(&o.date)
            .bind(&o.source)
            .bind(&o.note)
            .bind(recorded_by)
            .bind(&at)
            .fetch_one(&mut *tx)
            .await?;
            seqs.push(seq);
        }
        tx.commit().await?;
        Ok(seqs)
    }

    pub(super) async fn add_progress(&self, p: &Progress) -> Result<i64, StoreError> {
        let mut tx = self.write().await?;
        let seq = insert_progress(&mut tx, p, &now()).await?;
        tx.commit().await?;
        Ok(seq)
    }

    pub(super) async fn progress_history(
        &self,
        layer: &str,
        feature_id: &str,
    ) -> Result<Vec<Progress>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM project_progress WHERE layer = $1 AND feature_id = $2 ORDER BY seq",
        )
        .bind(layer)
        .bind(feature_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(progress_from_row).collect()
    }

    pub(super) async fn all_progress(&self) -> Result<Vec<Progress>, StoreError> {
        let rows = sqlx::query("SELECT * FROM project_progress ORDER BY seq")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(progress_from_row).collect()
    }
}

/// Keeps one `LISTEN` connection open (made again after a loss, once a second at most) and
/// wakes the follower on every notification and every reconnection; ends with the pool.
async fn listen(pool: PgPool, changed: Arc<Changed>) {
    while !pool.is_closed() {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot LISTEN for changes; following by polling");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "cannot LISTEN for changes; following by polling");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // Anything written while not listening is in the log: look now.
        changed.notify.notify_one();
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => changed.notify.notify_one(),
                // The connection was lost; the next try_recv makes it again.
                Ok(None) => changed.notify.notify_one(),
                Err(e) => {
                    tracing::warn!(error = %e, "lost the LISTEN connection; reconnecting");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// How far the change log has been pruned (0: never), read in the caller's snapshot.
async fn pg_pruned_upto(tx: &mut Tx) -> Result<i64, StoreError> {
    let n: Option<i64> = sqlx::query_scalar("SELECT max(pruned_upto) FROM changes_pruned")
        .fetch_one(&mut **tx)
        .await?;
    Ok(n.unwrap_or(0))
}

/// What to do on a server of PostgreSQL `major` that has no PostGIS to create.
fn no_postgis(major: u32) -> String {
    format!(
        "this PostgreSQL server has no PostGIS extension, which yizhangtu needs for its \
         geometry columns; install it on the database server (Debian/Ubuntu: \
         `apt install postgresql-{major}-postgis-3`), then run `CREATE EXTENSION postgis;` \
         in the database (or let yizhangtu create it as a user allowed to)"
    )
}

/// PostGIS in the database, or an error that says how to get it: created when the server has
/// the extension (and the user may create it), else the packages to install.
async fn ensure_postgis(pool: &PgPool) -> Result<(), String> {
    let installed: Option<String> =
        sqlx::query_scalar("SELECT extversion FROM pg_extension WHERE extname = 'postgis'")
            .fetch_optional(pool)
            .await
            .map_err(|e| e.to_string())?;
    if installed.is_some() {
        return Ok(());
    }
    let available: Option<String> = sqlx::query_scalar(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'postgis'",
    )
    .fetch_optional(pool)
    .await
    .map_err(|e| e.to_string())?;
    if available.is_none() {
        let version: String = sqlx::query_scalar("SHOW server_version_num")
            .fetch_one(pool)
            .await
            .map_err(|e| e.to_string())?;
        let major = version.parse::<u32>().map(|v| v / 10000).unwrap_or(15);
        return Err(no_postgis(major));
    }
    sqlx::query("CREATE EXTENSION IF NOT EXISTS postgis")
        .execute(pool)
        .await
        .map_err(|e| {
            format!(
                "PostGIS is installed on the server but not in this database, and creating it \
                 failed ({e}); run `CREATE EXTENSION postgis;` in the database as its owner or a \
                 superuser"
            )
        })?;
    Ok(())
}

async fn decode_rows(
    mut rows: futures_core::stream::BoxStream<'_, Result<PgRow, sqlx::Error>>,
) -> Result<Vec<Feature>, StoreError> {
    let mut out = Vec::new();
    while let Some(row) = std::future::poll_fn(|cx| rows.as_mut().poll_next(cx)).await {
        out.push(feature_from_row(&row?)?);
    }
    Ok(out)
}

async fn insert_progress(tx: &mut Tx, p: &Progress, at: &str) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO project_progress (layer, feature_id, status, start_date, end_date, \
         progress_percent, investment_done_wan_yuan, reported_on, source, note, recorded_by, \
         recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING seq",
    )
    .bind(&p.layer)
    .bind(&p.feature_id)
    .bind(p.status.as_str())
    .bind(&p.start_date)
    .bind(&p.end_date)
    .bind(p.progress_percent)
    .bind(p.investment_done_wan_yuan)
    .bind(&p.reported_on)
    .bind(&p.source)
    .bind(&p.note)
    .bind(&p.recorded_by)
    .bind(at)
    .fetch_one(&mut **tx)
    .await?)
}

/// Appends one audit row; the writers' lock the transaction holds keeps the chain from forking.
async fn append_audit(tx: &mut Tx, entry: &AuditEntry) -> Result<(), StoreError> {
    let last: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?;
    let (prev_seq, prev) = last.unwrap_or((0, GENESIS.to_string()));
    let max_ever: i64 = sqlx::query_scalar("SELECT seq FROM audit_head")
        .fetch_one(&mut **tx)
        .await?;
    let seq = prev_seq.max(max_ever) + 1;
    let at = precise_now();
    let hash = chain_hash(&prev, seq, &at, entry);
    sqlx::query(
        "INSERT INTO audit (seq, at, user_name, role, address, action, layer, ids, reason, \
         request_id, outcome, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(seq)
    .bind(&at)
    .bind(&entry.user)
    .bind(&entry.role)
    .bind(&entry.address)
    .bind(&entry.action)
    .bind(&entry.layer)
    .bind(serde_json::to_string(&entry.ids).unwrap_or_else(|_| "[]".into()))
    .bind(&entry.reason)
    .bind(&entry.request_id)
    .bind(&entry.outcome)
    .bind(&prev)
    .bind(&hash)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE audit_head SET seq = $1")
        .bind(seq)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn why_not(tx: &mut Tx, layer: &str, id: &str) -> EditError {
    let current: Result<Option<i64>, _> =
        sqlx::query_scalar("SELECT version FROM features WHERE layer = $1 AND id = $2")
            .bind(layer)
            .bind(id)
            .fetch_optional(&mut **tx)
            .await;
    match current {
        Ok(Some(v)) => EditError::Stale { current: v },
        Ok(None) => EditError::NotFound,
        Err(e) => e.into(),
    }
}

/// Tells followers (`LISTEN yizhangtu_changes`) at commit that the change log grew; several
/// notifications of one transaction arrive as one.
async fn notify(tx: &mut Tx) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn log_change(
    tx: &mut Tx,
    layer: &str,
    feature_id: Option<&str>,
    op: ChangeOp,
    version: Option<i64>,
    at: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO changes (layer, feature_id, op, version, at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(layer)
    .bind(feature_id)
    .bind(op.as_str())
    .bind(version)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    notify(tx).await
}

/// The change-log row and layer revision of a single-feature edit.
async fn finish_edit(
    tx: &mut Tx,
    layer: &str,
    id: &str,
    op: ChangeOp,
    version: Option<i64>,
    at: &str,
) -> Result<(), StoreError> {
    log_change(tx, layer, Some(id), op, version, at).await?;
    sqlx::query("UPDATE layers SET revision = revision + 1, updated_at = $1 WHERE id = $2")
        .bind(at)
        .bind(layer)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn record_written(
    tx: &mut Tx,
    keys: &[(String, String, &'static str)],
    actor: &Actor,
    at: &str,
) -> Result<(), StoreError> {
    if keys.is_empty() {
        return Ok(());
    }
    let layers: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
    let ids: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
    let ops: Vec<&str> = keys.iter().map(|k| k.2).collect();
    sqlx::query(
        "INSERT INTO feature_history (layer, feature_id, version, op, admin_code, name, \
         properties, geometry, at, user_name, reason, request_id) \
         SELECT f.layer, f.id, f.version, k.op, f.admin_code, f.name, f.properties, f.geometry, \
         $4, $5, $6, $7 FROM unnest($1::text[], $2::text[], $3::text[]) AS k(layer, id, op) \
         JOIN features f ON f.layer = k.layer AND f.id = k.id",
    )
    .bind(&layers)
    .bind(&ids)
    .bind(&ops)
    .bind(at)
    .bind(&actor.user)
    .bind(&actor.reason)
    .bind(&actor.request_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn record_deletes(
    tx: &mut Tx,
    layer: &str,
    id: Option<&str>,
    actor: &Actor,
    at: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO feature_history (layer, feature_id, version, op, admin_code, name, \
         properties, geometry, at, user_name, reason, request_id) \
         SELECT layer, id, version + 1, 'delete', admin_code, name, properties, geometry, \
         $3, $4, $5, $6 FROM features WHERE layer = $1 AND ($2::text IS NULL OR id = $2)",
    )
    .bind(layer)
    .bind(id)
    .bind(at)
    .bind(&actor.user)
    .bind(&actor.reason)
    .bind(&actor.request_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn prepare_layer(
    tx: &mut Tx,
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
    let existing: Option<i64> = sqlx::query_scalar("SELECT revision FROM layers WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    if existing.is_none() || given.is_some() {
        let l = given.cloned().unwrap_or_else(|| Layer::untitled(id));
        sqlx::query(
            "INSERT INTO layers (id, title_zh, title_en, description, geometry_type, \
             property_schema, revision, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7) \
             ON CONFLICT (id) DO UPDATE SET title_zh = excluded.title_zh, \
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
        let removed = sqlx::query("DELETE FROM features WHERE layer = $1")
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

/// Numbers the features of `batch` without an id (see the SQLite store's `number_features`).
async fn number_features(tx: &mut Tx, batch: &mut [Feature]) -> Result<(), StoreError> {
    let mut layers: Vec<String> = Vec::new();
    for f in batch.iter().filter(|f| f.id.is_empty()) {
        if !layers.contains(&f.layer) {
            layers.push(f.layer.clone());
        }
    }
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
                "UPDATE layers SET next_id = next_id + $1 WHERE id = $2 RETURNING next_id - $1",
            )
            .bind(need)
            .bind(&layer)
            .fetch_one(&mut **tx)
            .await?;
            let candidates: Vec<String> = (start..start + need).map(|n| n.to_string()).collect();
            let taken: HashSet<String> =
                sqlx::query_scalar("SELECT id FROM features WHERE layer = $1 AND id = ANY($2)")
                    .bind(&layer)
                    .bind(&candidates)
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

/// Writes a batch as a few multi-row upserts: PostgreSQL refuses one statement that upserts the
/// same row twice, so a batch that names a feature again is cut before the repeat (or, with
/// [`Ids::Once`], refused).
async fn write_features(
    tx: &mut Tx,
    batch: &[Feature],
    at: &str,
    summaries: &mut [ImportSummary],
    actor: &Actor,
    ids: Ids,
) -> Result<(), StoreError> {
    let runs = super::sqlite::distinct_runs(batch);
    if ids == Ids::Once {
        super::sqlite::refuse_repeat_within(batch, &runs)?;
    }
    for run in runs {
        write_distinct(tx, &batch[run], at, summaries, actor, ids).await?;
    }
    Ok(())
}

/// One multi-row upsert of features with distinct ids, their history and change-log rows.
/// With [`Ids::Once`], a feature whose row this transaction wrote (its `xmin` is the
/// transaction's id) fails the import with [`StoreError::RepeatedId`].
async fn write_distinct(
    tx: &mut Tx,
    chunk: &[Feature],
    at: &str,
    summaries: &mut [ImportSummary],
    actor: &Actor,
    once: Ids,
) -> Result<(), StoreError> {
    if chunk.is_empty() {
        return Ok(());
    }
    let layers: Vec<&str> = chunk.iter().map(|f| f.layer.as_str()).collect();
    let ids: Vec<&str> = chunk.iter().map(|f| f.id.as_str()).collect();
    let found: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT f.layer, f.id, f.xmin = pg_current_xact_id()::xid FROM features f \
         JOIN unnest($1::text[], $2::text[]) AS k(layer, id) ON f.layer = k.layer AND f.id = k.id",
    )
    .bind(&layers)
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await?;
    if once == Ids::Once {
        if let Some((layer, id, _)) = found.iter().find(|(_, _, ours)| *ours) {
            return Err(StoreError::RepeatedId {
                layer: layer.clone(),
                id: id.clone(),
            });
        }
    }
    let existing: HashSet<(String, String)> = found
        .into_iter()
        .map(|(layer, id, _)| (layer, id))
        .collect();
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
    let mut insert: QueryBuilder<Postgres> = QueryBuilder::new(
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
                .push(
                    "(SELECT coalesce(max(h.version), 0) + 1 FROM feature_history h \
                     WHERE h.layer = ",
                )
                .push_bind_unseparated(&f.layer)
                .push_unseparated(" AND h.feature_id = ")
                .push_bind_unseparated(&f.id)
                .push_unseparated(")")
                .push_bind(at)
                .push_bind(at);
        },
    );
    insert.push(
        " ON CONFLICT (layer, id) DO UPDATE SET admin_code = excluded.admin_code, \
         name = excluded.name, properties = excluded.properties, \
         geometry = excluded.geometry, min_x = excluded.min_x, min_y = excluded.min_y, \
         max_x = excluded.max_x, max_y = excluded.max_y, version = features.version + 1, \
         updated_at = excluded.updated_at \
         RETURNING layer, id, version",
    );
    let written: Vec<(String, String, i64)> = insert.build_query_as().fetch_all(&mut **tx).await?;
    let mut history: Vec<(String, String, &'static str)> = Vec::with_capacity(written.len());
    let mut log: Vec<(&str, &str, &'static str, i64)> = Vec::with_capacity(written.len());
    for (layer, id, version) in &written {
        let existed = existing.contains(&(layer.clone(), id.clone()));
        if let Some(s) = summaries.iter_mut().find(|s| &s.layer == layer) {
            if existed {
                s.updated += 1;
            } else {
                s.inserted += 1;
            }
        }
        let op = if existed {
            ChangeOp::Update
        } else {
            ChangeOp::Insert
        };
        history.push((layer.clone(), id.clone(), op.as_str()));
        log.push((layer, id, op.as_str(), *version));
    }
    record_written(tx, &history, actor, &precise_now()).await?;
    sqlx::query(
        "INSERT INTO changes (layer, feature_id, op, version, at) \
         SELECT layer, id, op, version, $5 \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS k(layer, id, op, version)",
    )
    .bind(log.iter().map(|l| l.0).collect::<Vec<_>>())
    .bind(log.iter().map(|l| l.1).collect::<Vec<_>>())
    .bind(log.iter().map(|l| l.2).collect::<Vec<_>>())
    .bind(log.iter().map(|l| l.3).collect::<Vec<_>>())
    .bind(at)
    .execute(&mut **tx)
    .await?;
    notify(tx).await
}

/// How a property is typed in a layer's view: the one JSON type all its values share (numbers
/// that are all integers become `bigint`), else `jsonb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColumnType {
    BigInt,
    Double,
    Boolean,
    Text,
    Json,
}

/// Columns of every view besides the properties (a property of the same name is left out).
const VIEW_BASE_COLUMNS: [&str; 7] = [
    "ogc_fid",
    "id",
    "admin_code",
    "name",
    "version",
    "updated_at",
    "geom",
];

/// Whether a property key can be a view column: PostgreSQL cuts names at 63 bytes, which could
/// make two keys one column.
fn viewable_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 63 && !VIEW_BASE_COLUMNS.contains(&key)
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The SQL of one typed view column read from `p` (the properties as jsonb).
fn view_column(key: &str, ty: ColumnType) -> String {
    let k = quote_literal(key);
    let expr = match ty {
        ColumnType::BigInt => format!(
            "CASE WHEN jsonb_typeof(p -> {k}) = 'number' AND (p ->> {k}) ~ '^-?[0-9]{{1,18}}$' \
             THEN (p ->> {k})::bigint END"
        ),
        ColumnType::Double => format!(
            "CASE WHEN jsonb_typeof(p -> {k}) = 'number' THEN (p ->> {k})::double precision END"
        ),
        ColumnType::Boolean => {
            format!("CASE WHEN jsonb_typeof(p -> {k}) = 'boolean' THEN (p ->> {k})::boolean END")
        }
        ColumnType::Text => format!("p ->> {k}"),
        ColumnType::Json => format!("p -> {k}"),
    };
    format!("{expr} AS {}", quote_ident(key))
}

/// (Re)creates `layer.<id>`: the layer's features with their properties as typed columns and
/// the PostGIS geometry, for QGIS, GDAL and SQL. Columns follow the properties' first appearance.
pub(super) async fn refresh_view(tx: &mut Tx, layer: &str) -> Result<(), StoreError> {
    let keys: Vec<(String, bool, bool, bool, bool)> = sqlx::query_as(
        "SELECT e.key, \
         bool_and(jsonb_typeof(e.value) IN ('number', 'null') AND (jsonb_typeof(e.value) = 'null' \
                  OR e.value::text ~ '^-?[0-9]{1,18}$')), \
         bool_and(jsonb_typeof(e.value) IN ('number', 'null')), \
         bool_and(jsonb_typeof(e.value) IN ('boolean', 'null')), \
         bool_and(jsonb_typeof(e.value) IN ('string', 'null')) \
         FROM features f, jsonb_each(f.properties::jsonb) e WHERE f.layer = $1 \
         GROUP BY e.key ORDER BY min(f.pos), e.key",
    )
    .bind(layer)
    .fetch_all(&mut **tx)
    .await?;
    let mut columns = vec![
        "f.pos AS ogc_fid".to_string(),
        "f.id".into(),
        "f.admin_code".into(),
        "f.name".into(),
    ];
    for (key, int, num, boolean, text) in keys.iter().take(1500) {
        if !viewable_key(key) {
            continue;
        }
        let ty = match (int, num, boolean, text) {
            (true, _, true, _) => ColumnType::Text, // only nulls
            (true, _, _, _) => ColumnType::BigInt,
            (_, true, _, _) => ColumnType::Double,
            (_, _, true, _) => ColumnType::Boolean,
            (_, _, _, true) => ColumnType::Text,
            _ => ColumnType::Json,
        };
        columns.push(view_column(key, ty));
    }
    columns.extend(["f.version".into(), "f.updated_at".into(), "f.geom".into()]);
    let name = format!("layer.{}", quote_ident(layer));
    sqlx::query(&format!("DROP VIEW IF EXISTS {name}"))
        .execute(&mut **tx)
        .await?;
    sqlx::query(&format!(
        "CREATE VIEW {name} AS SELECT {} FROM features f, \
         LATERAL (SELECT f.properties::jsonb AS p) j WHERE f.layer = {}",
        columns.join(", "),
        quote_literal(layer)
    ))
    .execute(&mut **tx)
    .await?;
    sqlx::query(&format!(
        "COMMENT ON VIEW {name} IS {}",
        quote_literal(&format!(
            "yizhangtu layer {layer}: one row per feature, properties as columns (read only)"
        ))
    ))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Whether `properties` has a key the layer's view has no column for (or the view is missing).
async fn view_lacks_keys(
    tx: &mut Tx,
    layer: &str,
    properties: &serde_json::Map<String, serde_json::Value>,
) -> Result<bool, StoreError> {
    let columns: HashSet<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns \
         WHERE table_schema = 'layer' AND table_name = $1",
    )
    .bind(layer)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect();
    Ok(columns.is_empty()
        || properties
            .keys()
            .any(|k| viewable_key(k) && !columns.contains(k)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_left_out_of_messages() {
        assert_eq!(
            redact("postgres://ann:secret@db:5432/x"),
            "postgres://ann:***@db:5432/x"
        );
        assert_eq!(redact("postgres://ann@db/x"), "postgres://ann@db/x");
    }

    #[test]
    fn a_server_without_postgis_is_told_what_to_install() {
        let m = no_postgis(15);
        assert!(m.contains("apt install postgresql-15-postgis-3"), "{m}");
        assert!(m.contains("CREATE EXTENSION postgis"), "{m}");
    }

    #[test]
    fn view_columns_quote_keys() {
        let c = view_column("a'b\"c", ColumnType::Text);
        assert_eq!(c, "p ->> 'a''b\"c' AS \"a'b\"\"c\"");
        assert!(!viewable_key("id"));
        assert!(!viewable_key(&"x".repeat(64)));
    }
}
