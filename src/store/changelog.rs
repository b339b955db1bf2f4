//! Pruning the change log, and telling a follower that the log no longer reaches back to its
//! position (so that it reloads every layer instead of silently missing the pruned changes).
//!
//! The log only has to reach back as far as the slowest follower; history and audit keep the
//! record of every edit. `yizhangtu prune-changes --keep N` deletes all but the newest N rows
//! and records the highest deleted position in `changes_pruned`, which [`Store::changes_after`]
//! reads in the same snapshot as the log itself.

use sqlx::{Sqlite, Transaction};

use super::accounts::append_audit;
use super::history::Actor;
use super::sqlite::{now, write, Store, StoreError};

/// What [`Store::prune_changes`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Change-log rows deleted by this call.
    pub deleted: u64,
    /// Every position up to this one is gone now (0: the log was never pruned).
    pub pruned_upto: i64,
    /// The newest position, kept.
    pub newest: i64,
}

impl Store {
    /// Deletes every change-log row but the newest `keep` (at least one is always kept, so
    /// that positions keep counting up), in one write transaction that also records how far
    /// the log now reaches back and appends an audit row. Followers behind that point reload.
    pub async fn prune_changes(&self, keep: u64, actor: &Actor) -> Result<Pruned, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.prune_changes(keep, actor).await);
        let mut tx = write(pool).await?;
        let newest: i64 = sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM changes")
            .fetch_one(&mut *tx)
            .await?;
        let before = sqlite_pruned_upto(&mut tx).await?;
        let upto = prune_point(newest, keep);
        if upto <= before {
            tx.commit().await?;
            return Ok(Pruned {
                deleted: 0,
                pruned_upto: before,
                newest,
            });
        }
        let deleted = sqlx::query("DELETE FROM changes WHERE seq <= ?")
            .bind(upto)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(
            "INSERT INTO changes_pruned (id, pruned_upto, at) VALUES (1, ?1, ?2) \
             ON CONFLICT (id) DO UPDATE SET pruned_upto = ?1, at = ?2",
        )
        .bind(upto)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        append_audit(&mut tx, &prune_audit(actor, upto, deleted)).await?;
        tx.commit().await?;
        Ok(Pruned {
            deleted,
            pruned_upto: upto,
            newest,
        })
    }
}

/// The highest position to delete so that the newest `keep` (at least 1) of `newest` stay.
pub(super) fn prune_point(newest: i64, keep: u64) -> i64 {
    let keep = i64::try_from(keep.max(1)).unwrap_or(i64::MAX);
    newest.saturating_sub(keep).max(0)
}

/// The audit row of a prune.
pub(super) fn prune_audit(actor: &Actor, upto: i64, deleted: u64) -> super::AuditEntry {
    actor.entry(
        "prune-changes",
        None,
        vec![format!("up to {upto}"), format!("{deleted} rows")],
    )
}

/// How far the SQLite change log has been pruned (0: never), read in the caller's snapshot.
pub(super) async fn sqlite_pruned_upto(
    tx: &mut Transaction<'_, Sqlite>,
) -> Result<i64, StoreError> {
    let n: Option<i64> = sqlx::query_scalar("SELECT max(pruned_upto) FROM changes_pruned")
        .fetch_one(&mut **tx)
        .await?;
    Ok(n.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::prune_point;

    #[test]
    fn the_newest_rows_stay_and_at_least_one() {
        assert_eq!(prune_point(100, 10), 90);
        assert_eq!(prune_point(100, 0), 99);
        assert_eq!(prune_point(5, 10), 0);
        assert_eq!(prune_point(0, 1), 0);
        assert_eq!(prune_point(7, u64::MAX), 0);
    }
}
