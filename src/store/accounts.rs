//! Users (their role, scope and hashed token) and the hash-chained, append-only audit log.
//! The store only keeps what it is given: hashing tokens and deciding rights happen in `auth`.

use sha2::{Digest, Sha256};
use sqlx::Sqlite;

use super::rows::StoreRow;
use super::sqlite::{write, Store, StoreError};

/// One account as stored (no secret in it: `token_hash` is an argon2 PHC string).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UserRow {
    pub id: i64,
    pub name: String,
    pub role: String,
    /// Admin codes the user may write in; empty for the whole county.
    pub scope: Vec<String>,
    #[serde(skip)]
    pub token_id: Option<String>,
    #[serde(skip)]
    pub token_hash: Option<String>,
    pub revoked_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

pub(super) fn user_from_row(r: &impl StoreRow) -> Result<UserRow, sqlx::Error> {
    let scope: String = r.col("scope")?;
    Ok(UserRow {
        id: r.col("id")?,
        name: r.col("name")?,
        role: r.col("role")?,
        scope: scope
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        token_id: r.col("token_id")?,
        token_hash: r.col("token_hash")?,
        revoked_at: r.col("revoked_at")?,
        created_at: r.col("created_at")?,
        updated_at: r.col("updated_at")?,
    })
}

/// One audit row before it is chained: who did what, where from, to what, why, and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    pub user: Option<String>,
    pub role: Option<String>,
    pub address: Option<String>,
    /// e.g. `create`, `update`, `delete`, `import`, `replace`, `user add`, `auth failed`.
    pub action: String,
    pub layer: Option<String>,
    pub ids: Vec<String>,
    pub reason: Option<String>,
    pub request_id: Option<String>,
    /// `ok`, or why the attempt was refused.
    pub outcome: String,
}

/// A stored audit row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditRow {
    pub seq: i64,
    pub at: String,
    #[serde(flatten)]
    pub entry: AuditEntry,
    pub prev_hash: String,
    pub hash: String,
}

/// Filters of [`Store::audit_rows`].
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub since: Option<String>,
    pub user: Option<String>,
    pub layer: Option<String>,
    pub limit: usize,
}

/// The first row whose hash does not follow from its content and its predecessor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenRow {
    pub seq: i64,
    pub why: String,
}

/// The hash the first row chains to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// SHA-256 over the previous hash and the row's canonical content: a JSON array of its fields
/// in a fixed order (serde_json writes strings the same way every time).
pub fn chain_hash(prev: &str, seq: i64, at: &str, e: &AuditEntry) -> String {
    let canonical = serde_json::json!([
        seq,
        at,
        e.user,
        e.role,
        e.address,
        e.action,
        e.layer,
        e.ids,
        e.reason,
        e.request_id,
        e.outcome
    ])
    .to_string();
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(canonical.as_bytes());
    hex::encode(h.finalize())
}

/// Appends one audit row inside a write transaction (which holds SQLite's write lock, so the
/// chain cannot fork).
pub(crate) async fn append_audit(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    let last: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?;
    let (prev_seq, prev) = last.unwrap_or((0, GENESIS.to_string()));
    // AUTOINCREMENT never reuses a number, so the next row is at least prev_seq + 1; take it
    // explicitly so that the hash can cover it.
    let max_ever: Option<i64> =
        sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'audit'")
            .fetch_optional(&mut **tx)
            .await?;
    let seq = prev_seq.max(max_ever.unwrap_or(0)) + 1;
    let at = super::history::precise_now();
    let hash = chain_hash(&prev, seq, &at, entry);
    sqlx::query(
        "INSERT INTO audit (seq, at, user_name, role, address, action, layer, ids, reason, \
         request_id, outcome, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    Ok(())
}

pub(super) fn audit_from_row(r: &impl StoreRow) -> Result<AuditRow, sqlx::Error> {
    let ids: String = r.col("ids")?;
    Ok(AuditRow {
        seq: r.col("seq")?,
        at: r.col("at")?,
        entry: AuditEntry {
            user: r.col("user_name")?,
            role: r.col("role")?,
            address: r.col("address")?,
            action: r.col("action")?,
            layer: r.col("layer")?,
            ids: serde_json::from_str(&ids).unwrap_or_else(|_| vec![ids.clone()]),
            reason: r.col("reason")?,
            request_id: r.col("request_id")?,
            outcome: r.col("outcome")?,
        },
        prev_hash: r.col("prev_hash")?,
        hash: r.col("hash")?,
    })
}

impl Store {
    /// Creates a user; `Ok(None)` when the name is taken.
    pub async fn add_user(
        &self,
        name: &str,
        role: &str,
        scope: &[String],
        token_id: &str,
        token_hash: &str,
        audit: &AuditEntry,
    ) -> Result<Option<UserRow>, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.add_user(name, role, scope, token_id, token_hash, audit).await);
        let mut tx = write(pool).await?;
        let at = super::now();
        let row = sqlx::query(
            "INSERT INTO users (name, role, scope, token_id, token_hash, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO NOTHING RETURNING *",
        )
        .bind(name)
        .bind(role)
        .bind(scope.join(","))
        .bind(token_id)
        .bind(token_hash)
        .bind(&at)
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

    pub async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.users().await);
        let rows = sqlx::query("SELECT * FROM users ORDER BY id")
            .fetch_all(pool)
            .await?;
        Ok(rows.iter().map(user_from_row).collect::<Result<_, _>>()?)
    }

    /// Whether any user can still sign in.
    pub async fn has_active_users(&self) -> Result<bool, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.has_active_users().await);
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE revoked_at IS NULL")
            .fetch_one(pool)
            .await?;
        Ok(n > 0)
    }

    /// The user a token's public part names (revoked or not).
    pub async fn user_by_token_id(&self, token_id: &str) -> Result<Option<UserRow>, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.user_by_token_id(token_id).await);
        let row = sqlx::query("SELECT * FROM users WHERE token_id = ?")
            .bind(token_id)
            .fetch_optional(pool)
            .await?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    /// Revokes a user's access (the row and its history stay); false when no such active user.
    pub async fn revoke_user(&self, name: &str, audit: &AuditEntry) -> Result<bool, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.revoke_user(name, audit).await);
        let mut tx = write(pool).await?;
        let at = super::now();
        let n = sqlx::query(
            "UPDATE users SET revoked_at = ?1, updated_at = ?1, token_id = NULL, token_hash = NULL \
             WHERE name = ?2 AND revoked_at IS NULL",
        )
        .bind(&at)
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

    /// Gives an active user a new token (the old one stops working); false when no such user.
    pub async fn set_token(
        &self,
        name: &str,
        token_id: &str,
        token_hash: &str,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.set_token(name, token_id, token_hash, audit).await);
        let mut tx = write(pool).await?;
        let n = sqlx::query(
            "UPDATE users SET token_id = ?, token_hash = ?, updated_at = ? \
             WHERE name = ? AND revoked_at IS NULL",
        )
        .bind(token_id)
        .bind(token_hash)
        .bind(super::now())
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

    /// Appends one audit row on its own (a refused attempt, a failed sign-in).
    pub async fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.audit(entry).await);
        let mut tx = write(pool).await?;
        append_audit(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Audit rows, oldest first, filtered.
    pub async fn audit_rows(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.audit_rows(filter).await);
        let rows = sqlx::query(
            "SELECT * FROM audit WHERE (?1 IS NULL OR at >= ?1) AND (?2 IS NULL OR user_name = ?2) \
             AND (?3 IS NULL OR layer = ?3) ORDER BY seq LIMIT ?4",
        )
        .bind(&filter.since)
        .bind(&filter.user)
        .bind(&filter.layer)
        .bind(filter.limit.min(i64::MAX as usize) as i64)
        .fetch_all(pool)
        .await?;
        Ok(rows.iter().map(audit_from_row).collect::<Result<_, _>>()?)
    }

    /// Walks the whole chain: `Ok(rows)` when every row's hash follows from its content and its
    /// predecessor's hash (and no row is missing from the numbering), else the first broken row.
    pub async fn verify_audit(&self) -> Result<Result<usize, BrokenRow>, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.verify_audit().await);
        let mut rows = sqlx::query("SELECT * FROM audit ORDER BY seq").fetch(pool);
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
            let expected = chain_hash(&prev, row.seq, &row.at, &row.entry);
            if row.hash != expected {
                return broken("its content does not match its hash (the row was changed)".into());
            }
            prev = row.hash;
            prev_seq = row.seq;
            n += 1;
        }
        // Rows cut off the end: sqlite_sequence remembers the highest number handed out.
        let max_ever: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'audit'")
                .fetch_optional(pool)
                .await?;
        if let Some(m) = max_ever.filter(|m| *m > prev_seq) {
            return Ok(Err(BrokenRow {
                seq: prev_seq + 1,
                why: format!("rows {} to {m} are missing (deleted)", prev_seq + 1),
            }));
        }
        Ok(Ok(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_every_field() {
        let e = AuditEntry {
            user: Some("a".into()),
            action: "update".into(),
            outcome: "ok".into(),
            ..Default::default()
        };
        let h = chain_hash(GENESIS, 1, "t", &e);
        assert_eq!(h.len(), 64);
        let mut other = e.clone();
        other.reason = Some("x".into());
        assert_ne!(h, chain_hash(GENESIS, 1, "t", &other));
        assert_ne!(h, chain_hash(GENESIS, 2, "t", &e));
        assert_ne!(h, chain_hash(&h, 1, "t", &e));
    }
}
