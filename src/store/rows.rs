//! Reading the store's rows from either database: one decoder per table serves the SQLite and
//! the PostgreSQL store, whose tables hold the same columns with the same types.

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Decode, Postgres, Row, Sqlite, Type};

/// A value both databases decode (text, integers, reals, bytes, and their `Option`s).
pub(super) trait ColumnValue:
    for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

impl<T> ColumnValue for T where
    T: for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

/// A row of either database, read by column name.
pub(super) trait StoreRow {
    fn col<T: ColumnValue>(&self, name: &str) -> Result<T, sqlx::Error>;
}

impl StoreRow for SqliteRow {
    fn col<T: ColumnValue>(&self, name: &str) -> Result<T, sqlx::Error> {
        self.try_get(name)
    }
}

impl StoreRow for PgRow {
    fn col<T: ColumnValue>(&self, name: &str) -> Result<T, sqlx::Error> {
        self.try_get(name)
    }
}
