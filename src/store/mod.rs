//! Persistence with sqlx: the SQLite file by default. Every write is one transaction that also
//! appends to the change log, which running servers follow to stay current.

mod indicators;
mod sqlite;

pub use sqlite::{
    now, Batch, ChangeOp, ChangeSet, ChangedFeatures, ImportMode, ImportSummary, LayerChanges,
    Store, StoreError, StoreOptions, IMPORT_BATCH,
};
