//! Persistence with sqlx: the SQLite file by default, or PostgreSQL with PostGIS (`postgres.rs`)
//! behind the same `Store` methods. Every write is one transaction that also
//! appends to the change log (which running servers follow to stay current), to the feature
//! history and to the hash-chained audit log.

/// In a `Store` method: the SQLite pool to run the method's own code on, or (for PostgreSQL)
/// an early return of the same call made on the [`postgres::PgStore`].
macro_rules! sqlite_or_pg {
    ($store:expr, $pg:ident => $call:expr) => {
        match &$store.db {
            super::sqlite::Db::Sqlite(pool) => pool,
            super::sqlite::Db::Postgres($pg) => return $call,
        }
    };
}

/// Reads a stream of feature rows (`layer, id, admin_code, name, properties, geometry, version,
/// created_at, updated_at`, from either database) undecoded into [`RawFeature`]s, sending
/// them to `$to` in chunks of `$chunk` as they come. Evaluates to `Ok(false)` when the receiver
/// went away before the end (the rest is not read), `Ok(true)` otherwise.
macro_rules! send_raw_rows {
    ($rows:expr, $chunk:expr, $to:expr) => {{
        let mut rows = $rows;
        let mut batch = Vec::with_capacity($chunk);
        let mut open = true;
        while let Some(row) =
            std::future::poll_fn(|cx| futures_core::Stream::poll_next(rows.as_mut(), cx)).await
        {
            let row = row?;
            batch.push(crate::model::RawFeature {
                layer: sqlx::Row::try_get(&row, "layer")?,
                id: sqlx::Row::try_get(&row, "id")?,
                admin_code: sqlx::Row::try_get(&row, "admin_code")?,
                name: sqlx::Row::try_get(&row, "name")?,
                properties: sqlx::Row::try_get(&row, "properties")?,
                geometry: sqlx::Row::try_get(&row, "geometry")?,
                version: sqlx::Row::try_get(&row, "version")?,
                created_at: sqlx::Row::try_get(&row, "created_at")?,
                updated_at: sqlx::Row::try_get(&row, "updated_at")?,
            });
            if batch.len() >= $chunk {
                let full = std::mem::replace(&mut batch, Vec::with_capacity($chunk));
                if $to.send(full).await.is_err() {
                    open = false;
                    break;
                }
            }
        }
        if open && !batch.is_empty() {
            open = $to.send(batch).await.is_ok();
        }
        Ok::<bool, StoreError>(open)
    }};
}

mod accounts;
mod changelog;
mod head;
mod history;
mod indicators;
mod migrate;
mod postgres;
mod rows;
mod sqlite;

pub use accounts::{chain_hash, AuditEntry, AuditFilter, AuditRow, BrokenRow, UserRow, GENESIS};
pub use changelog::Pruned;
pub use head::LogHead;
pub use history::{format_precise, parse_instant, precise_now, Actor, EditError, HistoryEntry};
pub use migrate::MigrateError;
pub use sqlite::{
    now, Batch, ChangeOp, ChangeSet, ChangedFeatures, Ids, ImportMode, ImportSummary, LayerChanges,
    Store, StoreError, StoreOptions, IMPORT_BATCH,
};
