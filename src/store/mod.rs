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
