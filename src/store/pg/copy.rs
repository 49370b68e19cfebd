//! Whole tables on PostgreSQL (the interface: `../copy.rs`). Rows are
//! written with `COPY ... FROM STDIN BINARY`, typed by the target's own
//! columns (`BIGINT`, `TEXT`, `BYTEA`), and read through one streamed
//! query; after a copy, each identity column continues after the largest
//! id copied.

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};

use super::Postgres;
use crate::store::copy::{quote, quoted, Tables, Value};
use crate::store::{ErrorKind, Result, StoreError};

/// The tables whose `id` the database generates.
const IDENTITIES: &[&str] = &[
    "subscribers",
    "editions",
    "edition_log",
    "mail_events",
    "signups",
];

impl Postgres {
    /// Each column's type, in `columns`' order.
    fn column_types(&self, table: &str, columns: &[String]) -> Result<Vec<Type>> {
        let rows = self
            .client()
            .query(
                "SELECT column_name::TEXT, data_type::TEXT FROM information_schema.columns
                  WHERE table_schema = current_schema() AND table_name = $1",
                &[&table],
            )
            .map_err(self.err("reading the tables"))?;
        columns
            .iter()
            .map(|c| {
                let data_type: &str = rows
                    .iter()
                    .find(|r| r.get::<_, &str>(0) == c)
                    .map(|r| r.get(1))
                    .unwrap_or("");
                match data_type {
                    "bigint" => Ok(Type::INT8),
                    "text" => Ok(Type::TEXT),
                    "bytea" => Ok(Type::BYTEA),
                    other => Err(self.mismatch(format!("{table}.{c} has type {other:?}"))),
                }
            })
            .collect()
    }

    fn mismatch(&self, context: String) -> StoreError {
        StoreError {
            path: self.location.clone(),
            context,
            kind: ErrorKind::Other,
            source: "a value that does not fit its column".into(),
        }
    }
}

impl Tables for Postgres {
    fn columns(&self, table: &str) -> Result<Vec<String>> {
        let rows = self
            .client()
            .query(
                "SELECT column_name::TEXT FROM information_schema.columns
                  WHERE table_schema = current_schema() AND table_name = $1 ORDER BY 1",
                &[&table],
            )
            .map_err(self.err("reading the tables"))?;
        let mut names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        // As SQLite sorts them (by byte), whatever the database's collation.
        names.sort();
        Ok(names)
    }

    fn visit_rows(
        &self,
        table: &str,
        columns: &[String],
        key: &str,
        each: &mut dyn FnMut(Vec<Value>) -> Result<()>,
    ) -> Result<()> {
        let types = self.column_types(table, columns)?;
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {key}",
            quoted(columns),
            quote(table)
        );
        let context = format!("reading {table}");
        let mut client = self.client();
        let mut rows = client
            .query_raw(sql.as_str(), std::iter::empty::<i64>())
            .map_err(|e| super::error(&self.location, &context, e))?;
        use postgres::fallible_iterator::FallibleIterator;
        while let Some(row) = rows
            .next()
            .map_err(|e| super::error(&self.location, &context, e))?
        {
            let mut values = Vec::with_capacity(columns.len());
            for (i, t) in types.iter().enumerate() {
                let value = if *t == Type::INT8 {
                    row.try_get::<_, Option<i64>>(i)
                        .map(|v| v.map(Value::Integer))
                } else if *t == Type::BYTEA {
                    row.try_get::<_, Option<Vec<u8>>>(i)
                        .map(|v| v.map(Value::Blob))
                } else {
                    row.try_get::<_, Option<String>>(i)
                        .map(|v| v.map(Value::Text))
                }
                .map_err(|e| super::error(&self.location, &context, e))?;
                values.push(value.unwrap_or(Value::Null));
            }
            each(values)?;
        }
        Ok(())
    }

    fn row_count(&self, table: &str) -> Result<u64> {
        let n: i64 = self
            .client()
            .query_one(
                format!("SELECT COUNT(*) FROM {}", quote(table)).as_str(),
                &[],
            )
            .map_err(self.err(format!("counting {table}")))?
            .get(0);
        Ok(n as u64)
    }

    fn begin_snapshot(&self) -> Result<()> {
        self.client()
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(self.err("starting to read the copy"))
    }

    fn end_snapshot(&self) -> Result<()> {
        self.client()
            .batch_execute("COMMIT")
            .map_err(self.err("ending the copy's read"))
    }

    fn begin_copy(&mut self) -> Result<()> {
        self.client()
            .batch_execute("BEGIN")
            .map_err(self.err("starting the copy"))
    }

    fn insert_rows(&mut self, table: &str, columns: &[String], rows: &[Vec<Value>]) -> Result<()> {
        let types = self.column_types(table, columns)?;
        let context = format!("writing {table}");
        let mut client = self.client();
        let sink = client
            .copy_in(
                format!(
                    "COPY {} ({}) FROM STDIN BINARY",
                    quote(table),
                    quoted(columns)
                )
                .as_str(),
            )
            .map_err(|e| super::error(&self.location, &context, e))?;
        let mut writer = BinaryCopyInWriter::new(sink, &types);
        for row in rows {
            let mut values: Vec<Box<dyn ToSql + Sync>> = Vec::with_capacity(row.len());
            for ((value, t), column) in row.iter().zip(&types).zip(columns) {
                // The value itself is never shown: it may be a token.
                let bad = || self.mismatch(format!("{table}.{column}: a value of another type"));
                values.push(match (value, t) {
                    (Value::Null, t) if *t == Type::INT8 => Box::new(None::<i64>),
                    (Value::Null, t) if *t == Type::BYTEA => Box::new(None::<Vec<u8>>),
                    (Value::Null, _) => Box::new(None::<String>),
                    (Value::Integer(n), t) if *t == Type::INT8 => Box::new(*n),
                    (Value::Integer(n), t) if *t == Type::TEXT => Box::new(n.to_string()),
                    (Value::Text(s), t) if *t == Type::TEXT => Box::new(s.clone()),
                    (Value::Text(s), t) if *t == Type::INT8 => {
                        Box::new(s.parse::<i64>().map_err(|_| bad())?)
                    }
                    (Value::Text(s), t) if *t == Type::BYTEA => Box::new(s.clone().into_bytes()),
                    (Value::Blob(b), t) if *t == Type::BYTEA => Box::new(b.clone()),
                    _ => return Err(bad()),
                });
            }
            let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref()).collect();
            writer
                .write(&refs)
                .map_err(|e| super::error(&self.location, &context, e))?;
        }
        writer
            .finish()
            .map_err(|e| super::error(&self.location, &context, e))?;
        Ok(())
    }

    fn end_copy(&mut self, ok: bool) -> Result<()> {
        if !ok {
            return self
                .client()
                .batch_execute("ROLLBACK")
                .map_err(self.err("ending the copy"));
        }
        let restart: String = IDENTITIES
            .iter()
            .map(|t| {
                format!(
                    "SELECT setval(pg_get_serial_sequence('{t}', 'id'), COALESCE((SELECT MAX(id) FROM {t}), 0) + 1, false);"
                )
            })
            .collect();
        self.client()
            .batch_execute(&format!("{restart} COMMIT"))
            .map_err(self.err("ending the copy"))
    }
}
