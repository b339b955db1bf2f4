//! Feature history (强制留痕): every version of every feature, written in the same transaction
//! as the change, and the single-feature edits (replace, delete) that check the version.

use sqlx::Sqlite;

use super::accounts::{append_audit, AuditEntry};
use super::rows::StoreRow;
use super::sqlite::{feature_from_row, log_change, write, ChangeOp, Store, StoreError};
use crate::formats::wkb;
use crate::model::Feature;

/// Who writes, and why: kept with every history row and in the audit row of the write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actor {
    pub user: Option<String>,
    pub role: Option<String>,
    pub address: Option<String>,
    pub reason: Option<String>,
    pub request_id: Option<String>,
}

impl Actor {
    /// The command line (imports and seeding run by whoever has the database file).
    pub fn cli(reason: Option<String>) -> Actor {
        Actor {
            user: Some(format!(
                "cli:{}",
                std::env::var("USER").unwrap_or_else(|_| "unknown".into())
            )),
            role: Some("cli".into()),
            reason,
            ..Actor::default()
        }
    }

    /// The audit row of an action by this actor.
    pub fn entry(&self, action: &str, layer: Option<&str>, ids: Vec<String>) -> AuditEntry {
        AuditEntry {
            user: self.user.clone(),
            role: self.role.clone(),
            address: self.address.clone(),
            action: action.into(),
            layer: layer.map(str::to_string),
            ids,
            reason: self.reason.clone(),
            request_id: self.request_id.clone(),
            outcome: "ok".into(),
        }
    }
}

/// The current UTC time as fixed-width RFC 3339 with microseconds: text order is time order.
pub fn precise_now() -> String {
    format_precise(time::OffsetDateTime::now_utc())
}

/// `t` in the fixed-width form of [`precise_now`].
pub fn format_precise(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// An RFC 3339 time (any offset) in the fixed-width UTC form history and audit rows use.
pub fn parse_instant(text: &str) -> Result<String, String> {
    time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
        .map(format_precise)
        .map_err(|e| format!("not an RFC 3339 time such as 2026-05-01T08:00:00Z ({e})"))
}

/// One version of a feature.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub version: i64,
    /// `insert`, `update` or `delete` (a deletion keeps the last state).
    pub op: String,
    pub at: String,
    pub user: Option<String>,
    pub reason: Option<String>,
    pub request_id: Option<String>,
    pub feature: Feature,
}

/// Why a version-checked edit did not happen.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("no such feature")]
    NotFound,
    /// If-Match named another version than the current one.
    #[error("the feature is at version {current}")]
    Stale { current: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for EditError {
    fn from(e: sqlx::Error) -> Self {
        EditError::Store(e.into())
    }
}

/// Writes the history rows of features just written (as they now stand in `features`):
/// `keys` are (layer, id, op) with each feature once.
pub(crate) async fn record_written(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    keys: &[(String, String, &'static str)],
    actor: &Actor,
    at: &str,
) -> Result<(), StoreError> {
    if keys.is_empty() {
        return Ok(());
    }
    let json = serde_json::to_string(keys).unwrap_or_else(|_| "[]".into());
    sqlx::query(
        "INSERT INTO feature_history (layer, feature_id, version, op, admin_code, name, \
         properties, geometry, at, user_name, reason, request_id) \
         SELECT f.layer, f.id, f.version, json_extract(j.value, '$[2]'), f.admin_code, f.name, \
         f.properties, f.geometry, ?2, ?3, ?4, ?5 FROM json_each(?1) j JOIN features f \
         ON f.layer = json_extract(j.value, '$[0]') AND f.id = json_extract(j.value, '$[1]')",
    )
    .bind(json)
    .bind(at)
    .bind(&actor.user)
    .bind(&actor.reason)
    .bind(&actor.request_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes a `delete` version (the last state, version + 1) for every feature of `layer` (or just
/// `id`) that is about to be deleted.
pub(crate) async fn record_deletes(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    layer: &str,
    id: Option<&str>,
    actor: &Actor,
    at: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO feature_history (layer, feature_id, version, op, admin_code, name, \
         properties, geometry, at, user_name, reason, request_id) \
         SELECT layer, id, version + 1, 'delete', admin_code, name, properties, geometry, \
         ?3, ?4, ?5, ?6 FROM features WHERE layer = ?1 AND (?2 IS NULL OR id = ?2)",
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

pub(super) fn history_from_row(r: &impl StoreRow) -> Result<HistoryEntry, StoreError> {
    let mut feature = feature_from_row(r)?;
    let at: String = r.col("at")?;
    feature.updated_at = at.clone();
    Ok(HistoryEntry {
        version: feature.version,
        op: r.col("op")?,
        at,
        user: r.col("user_name")?,
        reason: r.col("reason")?,
        request_id: r.col("request_id")?,
        feature,
    })
}

/// The history table's columns under the names `feature_from_row` reads.
pub(super) const HISTORY_AS_FEATURE: &str =
    "layer, feature_id AS id, admin_code, name, properties, geometry, \
     version, at AS created_at, at AS updated_at, op, at, user_name, reason, request_id";

impl Store {
    /// The feature as the database holds it now (the engine may be a moment behind).
    pub async fn current_feature(
        &self,
        layer: &str,
        id: &str,
    ) -> Result<Option<Feature>, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.current_feature(layer, id).await);
        let row = sqlx::query("SELECT * FROM features WHERE layer = ? AND id = ?")
            .bind(layer)
            .bind(id)
            .fetch_optional(pool)
            .await?;
        row.as_ref().map(feature_from_row).transpose()
    }

    /// Replaces a feature if it is still at version `expected`: version + 1, with its history,
    /// change-log and audit rows, in one transaction. Returns the new version.
    pub async fn replace_feature(
        &self,
        f: &Feature,
        expected: i64,
        actor: &Actor,
        action: &str,
    ) -> Result<i64, EditError> {
        let pool = sqlite_or_pg!(self, pg => pg.replace_feature(f, expected, actor, action).await);
        let mut tx = write(pool).await?;
        let at = super::now();
        let bbox = f.bbox();
        let version: Option<i64> = sqlx::query_scalar(
            "UPDATE features SET admin_code = ?, name = ?, properties = ?, geometry = ?, \
             min_x = ?, min_y = ?, max_x = ?, max_y = ?, version = version + 1, updated_at = ? \
             WHERE layer = ? AND id = ? AND version = ? RETURNING version",
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
            return Err(self.why_not(&mut tx, &f.layer, &f.id).await);
        };
        let precise = precise_now();
        record_written(
            &mut tx,
            &[(f.layer.clone(), f.id.clone(), "update")],
            actor,
            &precise,
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
        append_audit(
            &mut tx,
            &actor.entry(action, Some(&f.layer), vec![f.id.clone()]),
        )
        .await?;
        tx.commit().await?;
        Ok(version)
    }

    /// Deletes a feature if it is still at version `expected`, keeping its history (a `delete`
    /// version holding the last state). Returns the version of the deletion.
    pub async fn delete_feature(
        &self,
        layer: &str,
        id: &str,
        expected: i64,
        actor: &Actor,
    ) -> Result<i64, EditError> {
        let pool = sqlite_or_pg!(self, pg => pg.delete_feature(layer, id, expected, actor).await);
        let mut tx = write(pool).await?;
        let at = super::now();
        let current: Option<i64> =
            sqlx::query_scalar("SELECT version FROM features WHERE layer = ? AND id = ?")
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
        sqlx::query("DELETE FROM features WHERE layer = ? AND id = ?")
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
        tx.commit().await?;
        Ok(expected + 1)
    }

    async fn why_not(
        &self,
        tx: &mut sqlx::Transaction<'static, Sqlite>,
        layer: &str,
        id: &str,
    ) -> EditError {
        let current: Result<Option<i64>, _> =
            sqlx::query_scalar("SELECT version FROM features WHERE layer = ? AND id = ?")
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

    /// Every version of a feature, oldest first (empty when it never existed).
    pub async fn history(&self, layer: &str, id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.history(layer, id).await);
        let rows = sqlx::query(&format!(
            "SELECT {HISTORY_AS_FEATURE} FROM feature_history WHERE layer = ? AND feature_id = ? \
             ORDER BY version"
        ))
        .bind(layer)
        .bind(id)
        .fetch_all(pool)
        .await?;
        rows.iter().map(history_from_row).collect()
    }

    /// An RFC 3339 time (any offset) in the fixed-width UTC form history and audit rows use.
    pub fn parse_instant(text: &str) -> Result<String, String> {
        time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
            .map(format_precise)
            .map_err(|e| format!("not an RFC 3339 time such as 2026-05-01T08:00:00Z ({e})"))
    }

    /// One version of a feature.
    pub async fn history_version(
        &self,
        layer: &str,
        id: &str,
        version: i64,
    ) -> Result<Option<HistoryEntry>, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.history_version(layer, id, version).await);
        let row = sqlx::query(&format!(
            "SELECT {HISTORY_AS_FEATURE} FROM feature_history WHERE layer = ? AND feature_id = ? \
             AND version = ?"
        ))
        .bind(layer)
        .bind(id)
        .bind(version)
        .fetch_optional(pool)
        .await?;
        row.as_ref().map(history_from_row).transpose()
    }

    /// The layer as it stood at `at` (fixed-width, see [`format_precise`]): for each feature its
    /// newest version written at or before then, unless that version is a deletion.
    pub async fn layer_as_of(&self, layer: &str, at: &str) -> Result<Vec<Feature>, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.layer_as_of(layer, at).await);
        let rows = sqlx::query(&format!(
            "SELECT {HISTORY_AS_FEATURE} FROM feature_history h WHERE layer = ?1 AND at <= ?2 \
             AND version = (SELECT max(version) FROM feature_history h2 WHERE h2.layer = ?1 \
             AND h2.feature_id = h.feature_id AND h2.at <= ?2) AND op != 'delete' \
             ORDER BY feature_id"
        ))
        .bind(layer)
        .bind(at)
        .fetch_all(pool)
        .await?;
        rows.iter()
            .map(|r| history_from_row(r).map(|h| h.feature))
            .collect()
    }
}

/// The change-log row and layer revision of a single-feature edit.
async fn finish_edit(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    layer: &str,
    id: &str,
    op: ChangeOp,
    version: Option<i64>,
    at: &str,
) -> Result<(), StoreError> {
    log_change(tx, layer, Some(id), op, version, at).await?;
    sqlx::query("UPDATE layers SET revision = revision + 1, updated_at = ? WHERE id = ?")
        .bind(at)
        .bind(layer)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precise_times_are_fixed_width_and_sort_as_time() {
        let a = format_precise(time::macros::datetime!(2026-01-02 03:04:05.000007 UTC));
        assert_eq!(a, "2026-01-02T03:04:05.000007Z");
        let b = format_precise(time::macros::datetime!(2026-01-02 03:04:05.1 UTC));
        assert!(a < b);
        let c = format_precise(time::macros::datetime!(2026-01-02 11:04:05 +08:00));
        assert_eq!(c, "2026-01-02T03:04:05.000000Z");
    }
}
