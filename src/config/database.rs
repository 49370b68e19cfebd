//! `db`: a SQLite file (a path: the embedded default) or a PostgreSQL
//! server (`postgres://user@host[:port]/dbname[?sslmode=require]`). Shown,
//! logged and serialized without its password, if the URL carries one.

use std::path::{Path, PathBuf};

/// Where the list, the editions and the delivery log live.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file.
    File(PathBuf),
    /// A PostgreSQL URL, as given (password included, if any).
    Postgres(String),
}

impl Database {
    /// A `postgres://` or `postgresql://` URL, else a file path.
    pub fn parse(s: &str) -> Database {
        let lower = s.get(..13).unwrap_or(s).to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Database::Postgres(s.to_owned())
        } else {
            Database::File(PathBuf::from(s))
        }
    }

    /// `parse`, refusing a libpq string of `key=value` pairs (without
    /// repeating it: it may hold a password).
    pub fn parse_checked(s: &str) -> Result<Database, String> {
        let db = Database::parse(s);
        if matches!(db, Database::File(_)) && is_key_value_string(s) {
            return Err("a connection string of key=value pairs is not supported: give postgres://user@host/dbname (the password in DIGEST_DB_PASSWORD or db_password_file)".into());
        }
        Ok(db)
    }

    /// The SQLite file, if it is one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Database::File(p) => Some(p),
            Database::Postgres(_) => None,
        }
    }

    /// Whether the URL itself carries a password (better kept in
    /// `DIGEST_DB_PASSWORD` or `db_password_file`).
    pub fn has_password_in_url(&self) -> bool {
        match self {
            Database::File(_) => false,
            Database::Postgres(url) => split_password(url).1,
        }
    }
}

/// The URL without its password (in the user part, `user:pw@`, or as a
/// `password=` parameter), and whether it had one.
fn split_password(url: &str) -> (String, bool) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), false);
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority_end = before_query.find('/').unwrap_or(before_query.len());
    let authority = &before_query[..authority_end];
    let mut had = false;
    let authority = match authority.rfind('@') {
        Some(at) => match authority[..at].split_once(':') {
            Some((user, _)) => {
                had = true;
                format!("{user}{}", &authority[at..])
            }
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let mut shown = format!("{scheme}://{authority}{}", &before_query[authority_end..]);
    if let Some(query) = query {
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| {
                let secret = pair
                    .split('=')
                    .next()
                    .is_some_and(|k| k.eq_ignore_ascii_case("password"));
                had |= secret;
                !secret
            })
            .collect();
        if !kept.is_empty() {
            shown.push('?');
            shown.push_str(&kept.join("&"));
        }
    }
    (shown, had)
}

/// Whether `s` is a libpq connection string of `key=value` pairs (not
/// supported: it could carry a password into messages as a "file name").
fn is_key_value_string(s: &str) -> bool {
    ["host=", "password=", "dbname=", "user=", "port="]
        .iter()
        .any(|k| s.contains(k))
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::File(p) => write!(f, "{}", p.display()),
            Database::Postgres(url) => f.write_str(&split_password(url).0),
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

impl serde::Serialize for Database {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Database {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Database, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim().is_empty() {
            return Err(serde::de::Error::custom(
                "empty: give a file or a postgres:// URL",
            ));
        }
        Database::parse_checked(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_postgres_and_never_shows_its_password() {
        let db =
            Database::parse("postgres://digest:s3cr%40t@db.example.com:5433/list?sslmode=require");
        assert!(matches!(db, Database::Postgres(_)));
        assert!(db.has_password_in_url());
        assert_eq!(
            db.to_string(),
            "postgres://digest@db.example.com:5433/list?sslmode=require"
        );
        assert!(!format!("{db:?}").contains("s3cr"));
        let plain = Database::parse("postgresql://digest@db/list");
        assert!(!plain.has_password_in_url());
        assert_eq!(plain.to_string(), "postgresql://digest@db/list");
        let query = Database::parse("postgres://digest@db/list?password=s3cret&sslmode=require");
        assert!(query.has_password_in_url());
        assert_eq!(
            query.to_string(),
            "postgres://digest@db/list?sslmode=require"
        );
        assert!(Database::parse_checked("host=db password=s3cret")
            .unwrap_err()
            .contains("not supported"));
        assert!(!Database::parse_checked("host=db password=s3cret")
            .unwrap_err()
            .contains("s3cret"));
        let file = Database::parse("lists/dailydigest.db");
        assert_eq!(file.file(), Some(Path::new("lists/dailydigest.db")));
    }
}
