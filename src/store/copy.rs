//! Copying a whole store into another, of either backend (`digest db
//! copy`): every table, row for row, in one transaction on the target, so
//! a copy that stops leaves the target as empty as it was. Both schemas
//! have the same tables and columns at the same version (a test in
//! `pg/migrations.rs` checks), so rows are read and written by column name
//! as plain values.

use super::{Result, Store, StoreError};

/// Every table, in an order that respects the foreign keys, with the
/// columns that order its rows.
pub const TABLES: &[(&str, &str)] = &[
    ("subscribers", "id"),
    ("editions", "id"),
    ("edition_log", "id"),
    ("deliveries", "edition_id, subscriber_id"),
    ("summary_cache", "article_hash, settings"),
    ("embedding_cache", "text_hash, settings"),
    ("feeds", "name"),
    ("articles", "id"),
    ("mail_processed", "key"),
    ("mail_events", "id"),
    ("signups", "id"),
    ("send_workers", "name"),
    ("signup_hits", "network, at"),
];

/// One value of a row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Value {
    Null,
    Integer(i64),
    Text(String),
    Blob(Vec<u8>),
}

/// Whole tables, read and written as plain values: what a copy between
/// backends needs.
pub trait Tables {
    /// A table's column names, sorted.
    fn columns(&self, table: &str) -> Result<Vec<String>>;

    /// Calls `each` with every row of `table` (the `columns`, in that
    /// order), ordered by `key`, one row in memory at a time.
    fn visit_rows(
        &self,
        table: &str,
        columns: &[String],
        key: &str,
        each: &mut dyn FnMut(Vec<Value>) -> Result<()>,
    ) -> Result<()>;

    /// How many rows the table has.
    fn row_count(&self, table: &str) -> Result<u64>;

    /// Starts the one read transaction a copy reads every table in (one
    /// point in time, while sends go on).
    fn begin_snapshot(&self) -> Result<()>;

    /// Ends `begin_snapshot`.
    fn end_snapshot(&self) -> Result<()>;

    /// Starts the one transaction a copy writes in.
    fn begin_copy(&mut self) -> Result<()>;

    /// Writes rows (the `columns`, in that order) into `table`, inside the
    /// copy's transaction.
    fn insert_rows(&mut self, table: &str, columns: &[String], rows: &[Vec<Value>]) -> Result<()>;

    /// Ends the copy: generated ids continue after the copied ones, and
    /// the transaction commits (`ok`) or rolls back.
    fn end_copy(&mut self, ok: bool) -> Result<()>;
}

/// Rows copied, by table.
pub type Copied = Vec<(&'static str, u64)>;

/// Rows written per insert.
const CHUNK: usize = 1000;

/// Copies every table of `from` into `to`, which must be empty (a copy
/// never merges two lists) and at the same schema version.
pub fn copy(from: &Store, to: &mut Store) -> Result<Copied> {
    let refuse = |context: String| StoreError {
        path: to.location().to_owned(),
        context,
        kind: super::ErrorKind::Other,
        source: "refused".into(),
    };
    if from.version()? != to.version()? {
        return Err(refuse(format!(
            "the source is at schema version {} and the target at {}",
            from.version()?,
            to.version()?
        )));
    }
    for (table, _) in TABLES {
        let n = to.row_count(table)?;
        if n > 0 {
            return Err(refuse(format!(
                "the target is not empty ({table} has {n} rows): a copy goes into an empty database only"
            )));
        }
    }
    from.begin_snapshot()?;
    to.begin_copy()?;
    let copied = copy_tables(from, to);
    to.end_copy(copied.is_ok())?;
    from.end_snapshot()?;
    copied
}

fn copy_tables(from: &Store, to: &mut Store) -> Result<Copied> {
    let mut copied = Vec::new();
    for (table, key) in TABLES {
        let columns = from.columns(table)?;
        let theirs = to.columns(table)?;
        if columns != theirs {
            return Err(StoreError {
                path: to.location().to_owned(),
                context: format!("table {table} has other columns than the source's: {theirs:?} against {columns:?}"),
                kind: super::ErrorKind::Other,
                source: "schema mismatch".into(),
            });
        }
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut n = 0u64;
        from.visit_rows(table, &columns, key, &mut |row| {
            chunk.push(row);
            n += 1;
            if chunk.len() == CHUNK {
                to.insert_rows(table, &columns, &chunk)?;
                chunk.clear();
            }
            Ok(())
        })?;
        if !chunk.is_empty() {
            to.insert_rows(table, &columns, &chunk)?;
        }
        copied.push((*table, n));
    }
    Ok(copied)
}

impl Tables for super::Sqlite {
    fn columns(&self, table: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY name")
            .map_err(self.err("reading the tables"))?;
        let names = stmt
            .query_map([table], |r| r.get(0))
            .map_err(self.err("reading the tables"))?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(self.err("reading the tables"))?;
        Ok(names)
    }

    fn visit_rows(
        &self,
        table: &str,
        columns: &[String],
        key: &str,
        each: &mut dyn FnMut(Vec<Value>) -> Result<()>,
    ) -> Result<()> {
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {key}",
            quoted(columns),
            quote(table)
        );
        let context = format!("reading {table}");
        let mut stmt = self.conn.prepare(&sql).map_err(self.err(&context))?;
        let mut rows = stmt.query([]).map_err(self.err(&context))?;
        while let Some(row) = rows.next().map_err(self.err(&context))? {
            let mut values = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                use rusqlite::types::ValueRef;
                values.push(match row.get_ref(i).map_err(self.err(&context))? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => Value::Integer(n),
                    ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                    ValueRef::Real(x) => Value::Text(x.to_string()),
                });
            }
            each(values)?;
        }
        Ok(())
    }

    fn row_count(&self, table: &str) -> Result<u64> {
        self.conn
            .query_row(&format!("SELECT COUNT(*) FROM {}", quote(table)), [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(self.err(format!("counting {table}")))
    }

    fn begin_snapshot(&self) -> Result<()> {
        self.conn
            .execute_batch("BEGIN")
            .map_err(self.err("starting to read the copy"))
    }

    fn end_snapshot(&self) -> Result<()> {
        self.conn
            .execute_batch("COMMIT")
            .map_err(self.err("ending the copy's read"))
    }

    fn begin_copy(&mut self) -> Result<()> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(self.err("starting the copy"))
    }

    fn insert_rows(&mut self, table: &str, columns: &[String], rows: &[Vec<Value>]) -> Result<()> {
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            quote(table),
            quoted(columns),
            (1..=columns.len())
                .map(|i| format!("?{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let context = format!("writing {table}");
        let mut stmt = self.conn.prepare_cached(&sql).map_err(self.err(&context))?;
        for row in rows {
            let values = row.iter().map(|v| match v {
                Value::Null => rusqlite::types::Value::Null,
                Value::Integer(n) => rusqlite::types::Value::Integer(*n),
                Value::Text(t) => rusqlite::types::Value::Text(t.clone()),
                Value::Blob(b) => rusqlite::types::Value::Blob(b.clone()),
            });
            stmt.execute(rusqlite::params_from_iter(values))
                .map_err(self.err(&context))?;
        }
        Ok(())
    }

    fn end_copy(&mut self, ok: bool) -> Result<()> {
        self.conn
            .execute_batch(if ok { "COMMIT" } else { "ROLLBACK" })
            .map_err(self.err("ending the copy"))
    }
}

/// An identifier, quoted (`user` is a keyword in PostgreSQL).
pub(super) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Identifiers, quoted and comma-separated.
pub(super) fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| quote(n))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::store::testing::{now, postgres, row};
    use crate::store::{Asker, MailEvent};

    /// Something in every table (but `send_workers`, which only a
    /// PostgreSQL send fills), through the stores' own operations.
    fn fill(s: &mut Store) {
        s.add_subscribers(
            &[
                row("a@example.com"),
                row("b@example.com"),
                row("C@Example.com"),
            ],
            now(),
            false,
        )
        .unwrap();
        let edition = crate::render::sample_edition();
        let e = s.store_edition(edition.date, &edition, now()).unwrap();
        let json = serde_json::to_string(&edition).unwrap();
        let version = s
            .change_edition_json(e.id, e.version, &json, "ed", "headline 1: \"a\"", now())
            .unwrap()
            .unwrap();
        s.plan_deliveries(e.id, version, Box::new(|id, _| format!("<{id}@x>")), now())
            .unwrap()
            .unwrap();
        assert!(s.mark_sending(e.id, 1, now()).unwrap());
        s.mark_done(
            e.id,
            1,
            crate::store::DeliveryState::Sent,
            None,
            None,
            now(),
        )
        .unwrap();
        s.cache_summary("h1", "extractive", "{\"s\":1}", now())
            .unwrap();
        s.cache_embeddings(&[("t1".into(), vec![0.5, -1.25])], "minilm", now())
            .unwrap();
        s.record_fetch(
            "wire",
            "https://example.com/rss",
            Ok((Some("e".into()), None)),
            now(),
        )
        .unwrap();
        let article = crate::article::Article {
            id: "wire-1".into(),
            date: None,
            title: "A title".into(),
            title_derived: false,
            source: Some("Wire".into()),
            url: Some("https://example.com/1".into()),
            paragraphs: vec!["Text.".into()],
            origin: "wire".into(),
        };
        s.store_article("wire", Some("g1"), "c1", &article, edition.date, now())
            .unwrap();
        s.record_mail_processed("m1", "bounce", now()).unwrap();
        s.apply_mail_event(
            "m2",
            2,
            &MailEvent::HardBounce {
                status: "5.1.1".into(),
            },
            now(),
        )
        .unwrap();
        assert!(s.count_sign_up("192.0.2.0", 5, now()).unwrap());
        s.request_subscription(
            "new@example.com",
            Some("New"),
            "climate",
            Asker::Public,
            now(),
            chrono::Duration::hours(1),
            chrono::Duration::days(7),
        )
        .unwrap();
    }

    /// Every table, every row, as values, sorted.
    fn dump(s: &Store) -> BTreeMap<&'static str, Vec<Vec<Value>>> {
        TABLES
            .iter()
            .map(|(table, key)| {
                let columns = s.columns(table).unwrap();
                let mut rows = Vec::new();
                s.visit_rows(table, &columns, key, &mut |r| {
                    rows.push(r);
                    Ok(())
                })
                .unwrap();
                rows.sort();
                (*table, rows)
            })
            .collect()
    }

    /// SQLite to PostgreSQL and back: every table the same, row for row;
    /// ids go on after the copied ones; a target that is not empty is
    /// refused and left as it was.
    #[test]
    fn a_store_copied_to_postgres_and_back_is_the_same_in_every_table() {
        let mut sqlite = Store::in_memory().unwrap();
        fill(&mut sqlite);
        let before = dump(&sqlite);
        for (table, rows) in &before {
            assert!(
                !rows.is_empty() || *table == "send_workers",
                "{table} is empty: fill it"
            );
        }
        let mut pg = postgres();
        let copied = copy(&sqlite, &mut pg).unwrap();
        assert_eq!(
            copied.iter().map(|(_, n)| n).sum::<u64>(),
            before.values().map(|r| r.len() as u64).sum::<u64>()
        );
        assert_eq!(dump(&pg), before, "SQLite to PostgreSQL");
        let mut back = Store::in_memory().unwrap();
        copy(&pg, &mut back).unwrap();
        assert_eq!(dump(&back), before, "and back");

        // The copy works as a store: a new subscriber gets the next id,
        // and the addresses are still unique whatever their case.
        let out = pg
            .add_subscribers(&[row("d@example.com"), row("c@example.com")], now(), false)
            .unwrap();
        assert_eq!(out[0], Ok(5), "after the copied ids (a, b, C, new)");
        assert!(out[1].is_err(), "{out:?}");

        // Into a store that is not empty: refused, nothing written.
        let err = copy(&sqlite, &mut pg).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
        assert_eq!(pg.active_subscribers().unwrap(), 3);
    }
}
