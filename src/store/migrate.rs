//! `yizhangtu migrate`: copies a SQLite database into an empty PostgreSQL one, every table, in
//! one PostgreSQL transaction, and checks the row counts before it commits.

use futures_core::stream::BoxStream;
use sqlx::sqlite::SqliteRow;
use sqlx::{Postgres, QueryBuilder, Row, SqlitePool};

use super::sqlite::{Db, Store, StoreError};

/// How a column is read from SQLite and bound for PostgreSQL.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Int,
    Int32,
    Real,
    Bytes,
}

use Kind::*;

/// A table to copy: its name, SQLite's order, whether PostgreSQL numbers its first column
/// itself (an identity column, given explicitly here and advanced after), and its columns.
struct Table {
    name: &'static str,
    order: &'static str,
    identity: bool,
    columns: &'static [(&'static str, Kind)],
}

/// Every table, parents before children. `features.pos` is left to PostgreSQL: reading in
/// rowid order keeps the insertion order it stands for.
const TABLES: &[Table] = &[
    Table {
        name: "layers",
        order: "id",
        identity: false,
        columns: &[
            ("id", Text),
            ("title_zh", Text),
            ("title_en", Text),
            ("description", Text),
            ("geometry_type", Text),
            ("property_schema", Text),
            ("revision", Int),
            ("next_id", Int),
            ("created_at", Text),
            ("updated_at", Text),
        ],
    },
    Table {
        name: "features",
        order: "rowid",
        identity: false,
        columns: &[
            ("layer", Text),
            ("id", Text),
            ("admin_code", Text),
            ("name", Text),
            ("properties", Text),
            ("geometry", Bytes),
            ("min_x", Real),
            ("min_y", Real),
            ("max_x", Real),
            ("max_y", Real),
            ("version", Int),
            ("created_at", Text),
            ("updated_at", Text),
        ],
    },
    Table {
        name: "changes",
        order: "seq",
        identity: true,
        columns: &[
            ("seq", Int),
            ("layer", Text),
            ("feature_id", Text),
            ("op", Text),
            ("version", Int),
            ("at", Text),
        ],
    },
    Table {
        name: "changes_pruned",
        order: "id",
        identity: false,
        columns: &[("id", Int), ("pruned_upto", Int), ("at", Text)],
    },
    Table {
        name: "users",
        order: "id",
        identity: true,
        columns: &[
            ("id", Int),
            ("name", Text),
            ("role", Text),
            ("scope", Text),
            ("token_id", Text),
            ("token_hash", Text),
            ("revoked_at", Text),
            ("created_at", Text),
            ("updated_at", Text),
        ],
    },
    Table {
        name: "feature_history",
        order: "layer, feature_id, version",
        identity: false,
        columns: &[
            ("layer", Text),
            ("feature_id", Text),
            ("version", Int),
            ("op", Text),
            ("admin_code", Text),
            ("name", Text),
            ("properties", Text),
            ("geometry", Bytes),
            ("at", Text),
            ("user_name", Text),
            ("reason", Text),
            ("request_id", Text),
        ],
    },
    Table {
        name: "audit",
        order: "seq",
        identity: false,
        columns: &[
            ("seq", Int),
            ("at", Text),
            ("user_name", Text),
            ("role", Text),
            ("address", Text),
            ("action", Text),
            ("layer", Text),
            ("ids", Text),
            ("reason", Text),
            ("request_id", Text),
            ("outcome", Text),
            ("prev_hash", Text),
            ("hash", Text),
        ],
    },
    Table {
        name: "plans",
        order: "id",
        identity: false,
        columns: &[
            ("id", Text),
            ("title", Text),
            ("issuer", Text),
            ("doc_number", Text),
            ("issued", Text),
            ("period_start", Int32),
            ("period_end", Int32),
            ("period_text", Text),
            ("district", Text),
            ("district_code", Text),
            ("focus_unit", Text),
            ("focus_code", Text),
            ("document", Text),
        ],
    },
    Table {
        name: "indicators",
        order: "id",
        identity: false,
        columns: &[
            ("id", Text),
            ("plan", Text),
            ("name", Text),
            ("scope_code", Text),
            ("scope_text", Text),
            ("unit", Text),
            ("baseline_value", Real),
            ("baseline_year", Int32),
            ("target_value", Real),
            ("target_year", Int32),
            ("binding", Text),
            ("direction", Text),
            ("category", Text),
            ("quote", Text),
            ("catalog", Text),
        ],
    },
    Table {
        name: "observations",
        order: "seq",
        identity: true,
        columns: &[
            ("seq", Int),
            ("indicator", Text),
            ("value", Real),
            ("observed_on", Text),
            ("source", Text),
            ("note", Text),
            ("recorded_by", Text),
            ("recorded_at", Text),
        ],
    },
    Table {
        name: "project_progress",
        order: "seq",
        identity: true,
        columns: &[
            ("seq", Int),
            ("layer", Text),
            ("feature_id", Text),
            ("status", Text),
            ("start_date", Text),
            ("end_date", Text),
            ("progress_percent", Real),
            ("investment_done_wan_yuan", Real),
            ("reported_on", Text),
            ("source", Text),
            ("note", Text),
            ("recorded_by", Text),
            ("recorded_at", Text),
        ],
    },
];

/// Rows per INSERT statement (well under PostgreSQL's 65,535 parameters for 15 columns).
const ROWS_PER_INSERT: usize = 1000;

/// Why a migration did not happen (nothing was written to the target).
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("migrate copies from a SQLite database (--from sqlite://FILE or a path)")]
    FromNotSqlite,
    #[error("migrate copies to a PostgreSQL database (--to postgres://…)")]
    ToNotPostgres,
    #[error("{0} has no layers: nothing to migrate (is the path right?)")]
    EmptySource(String),
    #[error(
        "the target database already holds {rows} rows in {table}; migrate needs an empty one"
    )]
    TargetNotEmpty { table: String, rows: i64 },
    #[error("table {table}: {copied} rows in PostgreSQL after the copy, {source_rows} in SQLite; rolled back")]
    CountMismatch {
        table: String,
        source_rows: i64,
        copied: i64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for MigrateError {
    fn from(e: sqlx::Error) -> Self {
        MigrateError::Store(e.into())
    }
}

impl Store {
    /// Copies everything in `self` (SQLite) into `to` (an empty PostgreSQL database) in one
    /// transaction; `progress` hears the rows copied so far of `total` (the first call says the
    /// total with 0 done). Returns the row count of each table, checked against the source.
    pub async fn migrate_to(
        &self,
        from_name: &str,
        to: &Store,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<Vec<(&'static str, i64)>, MigrateError> {
        let Db::Sqlite(src) = &self.db else {
            return Err(MigrateError::FromNotSqlite);
        };
        let Db::Postgres(pg) = &to.db else {
            return Err(MigrateError::ToNotPostgres);
        };
        if self.is_empty().await? {
            return Err(MigrateError::EmptySource(from_name.into()));
        }
        let mut counts = Vec::with_capacity(TABLES.len());
        for t in TABLES {
            let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", t.name))
                .fetch_one(src)
                .await?;
            counts.push((t.name, n));
        }
        let total = counts.iter().map(|(_, n)| *n as u64).sum();
        progress(0, total);
        let mut tx = pg.write_transaction().await?;
        for t in TABLES {
            let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", t.name))
                .fetch_one(&mut *tx)
                .await?;
            // A fresh PostgreSQL store has its one audit_head row, and nothing else.
            if rows > 0 {
                return Err(MigrateError::TargetNotEmpty {
                    table: t.name.into(),
                    rows,
                });
            }
        }
        let mut done = 0u64;
        for t in TABLES {
            copy_table(src, &mut tx, t, &mut |n| {
                done += n as u64;
                progress(done, total);
            })
            .await?;
            if t.identity {
                let column = t.columns[0].0;
                sqlx::query(&format!(
                    "SELECT setval(pg_get_serial_sequence('{0}', '{column}'), \
                     coalesce(max({column}), 0) + 1, false) FROM {0}",
                    t.name
                ))
                .execute(&mut *tx)
                .await?;
            }
        }
        let high: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'audit'")
                .fetch_optional(src)
                .await?;
        sqlx::query(
            "UPDATE audit_head SET seq = greatest($1, (SELECT coalesce(max(seq), 0) FROM audit))",
        )
        .bind(high.unwrap_or(0))
        .execute(&mut *tx)
        .await?;
        let layers: Vec<String> = sqlx::query_scalar("SELECT id FROM layers")
            .fetch_all(&mut *tx)
            .await?;
        for l in &layers {
            super::postgres::refresh_view(&mut tx, l).await?;
        }
        for (table, source_rows) in &counts {
            let copied: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(&mut *tx)
                .await?;
            if copied != *source_rows {
                return Err(MigrateError::CountMismatch {
                    table: table.to_string(),
                    source_rows: *source_rows,
                    copied,
                });
            }
        }
        tx.commit().await?;
        Ok(counts)
    }
}

async fn copy_table(
    src: &SqlitePool,
    tx: &mut sqlx::Transaction<'static, Postgres>,
    t: &Table,
    progress: &mut (dyn FnMut(usize) + Send),
) -> Result<(), MigrateError> {
    let names: Vec<&str> = t.columns.iter().map(|(n, _)| *n).collect();
    let select = format!(
        "SELECT {} FROM {} ORDER BY {}",
        names.join(", "),
        t.name,
        t.order
    );
    let mut rows: BoxStream<'_, Result<SqliteRow, sqlx::Error>> = sqlx::query(&select).fetch(src);
    let mut batch: Vec<SqliteRow> = Vec::with_capacity(ROWS_PER_INSERT);
    loop {
        let next = std::future::poll_fn(|cx| rows.as_mut().poll_next(cx)).await;
        let end = next.is_none();
        if let Some(row) = next {
            batch.push(row?);
        }
        if batch.len() == ROWS_PER_INSERT || (end && !batch.is_empty()) {
            insert_rows(tx, t, &names, &batch).await?;
            progress(batch.len());
            batch.clear();
        }
        if end {
            return Ok(());
        }
    }
}

async fn insert_rows(
    tx: &mut sqlx::Transaction<'static, Postgres>,
    t: &Table,
    names: &[&str],
    rows: &[SqliteRow],
) -> Result<(), MigrateError> {
    let overriding = if t.identity {
        " OVERRIDING SYSTEM VALUE "
    } else {
        " "
    };
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "INSERT INTO {} ({}){overriding}",
        t.name,
        names.join(", ")
    ));
    // Decode first (a row the SQLite file cannot give is an error, not a NULL).
    let mut values: Vec<Vec<Value>> = Vec::with_capacity(rows.len());
    for r in rows {
        let mut v = Vec::with_capacity(t.columns.len());
        for (i, (_, kind)) in t.columns.iter().enumerate() {
            v.push(match kind {
                Text => Value::Text(r.try_get(i)?),
                Int => Value::Int(r.try_get(i)?),
                Int32 => Value::Int32(r.try_get(i)?),
                Real => Value::Real(r.try_get(i)?),
                Bytes => Value::Bytes(r.try_get(i)?),
            });
        }
        values.push(v);
    }
    q.push_values(values, |mut b, row| {
        for v in row {
            match v {
                Value::Text(x) => b.push_bind(x),
                Value::Int(x) => b.push_bind(x),
                Value::Int32(x) => b.push_bind(x),
                Value::Real(x) => b.push_bind(x),
                Value::Bytes(x) => b.push_bind(x),
            };
        }
    });
    q.build().execute(&mut **tx).await?;
    Ok(())
}

enum Value {
    Text(Option<String>),
    Int(Option<i64>),
    Int32(Option<i32>),
    Real(Option<f64>),
    Bytes(Option<Vec<u8>>),
}
