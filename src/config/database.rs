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
            Database::Postgres(url) => split_password(url).1.is_some(),
        }
    }
}

/// The URL without its password, and the password.
fn split_password(url: &str) -> (String, Option<&str>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), None);
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return (url.to_owned(), None);
    };
    let userinfo = &authority[..at];
    match userinfo.split_once(':') {
        Some((user, password)) => (format!("{scheme}://{user}{}", &rest[at..]), Some(password)),
        None => (url.to_owned(), None),
    }
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
        Ok(Database::parse(&s))
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
        let file = Database::parse("lists/dailydigest.db");
        assert_eq!(file.file(), Some(Path::new("lists/dailydigest.db")));
    }
}
