//! Persistence with sqlx: the SQLite file by default. Every write is one transaction that also
//! appends to the change log (which running servers follow to stay current), to the feature
//! history and to the hash-chained audit log.

mod accounts;
mod history;
mod indicators;
mod sqlite;

pub use accounts::{chain_hash, AuditEntry, AuditFilter, AuditRow, BrokenRow, UserRow, GENESIS};
pub use history::{format_precise, parse_instant, precise_now, Actor, EditError, HistoryEntry};
pub use sqlite::{
    now, Batch, ChangeOp, ChangeSet, ChangedFeatures, ImportMode, ImportSummary, LayerChanges,
    Store, StoreError, StoreOptions, IMPORT_BATCH,
};
