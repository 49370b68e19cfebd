//! The database itself: copying a whole store into another
//! (`digest db copy`), SQLite into PostgreSQL or back.

use super::{open_store, Error, Result};
use crate::config::{Config, Database};
use crate::store::copy::Copied;
use crate::store::Access;

/// Copies every table of `from` into `to`, which must be empty; either
/// side not given is `db`. The source is brought to the current schema
/// first; the target is created (a file) or migrated (an empty schema).
pub fn copy_database(
    config: &Config,
    from: Option<&Database>,
    to: Option<&Database>,
    db_password: Option<String>,
) -> Result<(Database, Database, Copied)> {
    let from = from.unwrap_or(&config.db).clone();
    let to = to.unwrap_or(&config.db).clone();
    if from == to {
        return Err(Error::Usage(format!(
            "the source and the target are the same database ({from}): give --to or --from"
        )));
    }
    let source = open_store(config, &from, Access::Existing, db_password.clone())?;
    let mut target = open_store(config, &to, Access::Create, db_password)?;
    for (table, _) in crate::store::copy::TABLES {
        let rows = target.row_count(table)?;
        if rows > 0 {
            return Err(Error::Usage(format!(
                "{to} is not empty ({table} has {rows} rows): a copy goes into an empty database only, never merging two lists"
            )));
        }
    }
    let copied = crate::store::copy::copy(&source, &mut target)?;
    tracing::info!("copied {from} into {to}");
    Ok((from, to, copied))
}
