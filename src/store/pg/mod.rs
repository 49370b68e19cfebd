//! The PostgreSQL backend: the store several hosts share. The same tables
//! as SQLite's (`migrations.rs` here mirrors `../migrations.rs` version for
//! version), the same operations (one file per table group, as for SQLite),
//! through the synchronous `postgres` client on one connection.
//!
//! What differs from SQLite, and why:
//! - addresses are unique and looked up by `lower(email)` (SQLite's
//!   `COLLATE NOCASE`);
//! - integers are `BIGINT`, blobs `BYTEA`; times stay RFC 3339 text in
//!   UTC with milliseconds, as in SQLite, so they sort as text and a copy
//!   between the two is exact;
//! - nothing is ever "busy" for long (rows are locked, not the file), so
//!   visitors' unsubscribes and sign-ups are written at once and never
//!   queued in a file;
//! - several send workers share one edition: `open_deliveries` claims the
//!   rows it returns for this worker, for a lease (`deliveries.rs`).

mod articles;
mod cache;
mod copy;
mod deliveries;
mod editions;
mod mail_events;
pub(super) mod migrations;
mod readers;
mod signups;
mod subscribers;
mod unsubscribes;

use std::cell::{Cell, RefCell, RefMut};
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::{Client, Config};

use super::{Access, Backend, ErrorKind, Result, StoreError};

/// How to reach a PostgreSQL database.
#[derive(Clone, Default)]
pub struct Connect {
    /// `postgres://user[:password]@host[:port]/dbname[?sslmode=...]`.
    pub url: String,
    /// The password, when the URL has none (`DIGEST_DB_PASSWORD`,
    /// `db_password_file`).
    pub password: Option<String>,
    /// Extra trusted root certificates (PEM) for the server's TLS.
    pub ca_pem: Option<Vec<u8>>,
    /// How long a claim of deliveries lasts without being renewed.
    pub lease: Option<Duration>,
}

impl std::fmt::Debug for Connect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connect")
            .field("url", &shown(&self.url))
            .finish_non_exhaustive()
    }
}

/// A claim lasts this long unless renewed (every third of it, while the
/// worker records its sends).
pub(super) const DEFAULT_LEASE: Duration = Duration::from_secs(120);

/// The PostgreSQL database, on one connection.
pub struct Postgres {
    client: RefCell<Client>,
    /// `postgres://user@host:port/dbname`: never the password.
    location: String,
    read_only: bool,
    /// This process, as its claims name it: `host:pid:random`.
    worker: String,
    lease: Duration,
    /// When this worker's claims were last renewed.
    renewed: Cell<Instant>,
}

/// A URL as messages may show it: the password, if any, left out.
pub(super) fn shown(url: &str) -> String {
    match url.parse::<Config>() {
        Ok(config) => location(&config),
        Err(_) => "postgres://(an address that does not parse)".into(),
    }
}

fn location(config: &Config) -> String {
    let user = config.get_user().unwrap_or("");
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(h) => h.clone(),
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or(user);
    let at = if user.is_empty() {
        String::new()
    } else {
        format!("{user}@")
    };
    format!("postgres://{at}{host}:{port}/{db}")
}

/// A `StoreError` from the client's, with its kind kept: a lock or
/// serialization conflict is `Busy` (try again), a read-only transaction
/// or a refused privilege `ReadOnly`.
pub(super) fn error(location: &str, context: impl Into<String>, e: postgres::Error) -> StoreError {
    let kind = match e.code() {
        Some(c)
            if *c == SqlState::LOCK_NOT_AVAILABLE
                || *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::QUERY_CANCELED =>
        {
            ErrorKind::Busy
        }
        Some(c)
            if *c == SqlState::READ_ONLY_SQL_TRANSACTION
                || *c == SqlState::INSUFFICIENT_PRIVILEGE =>
        {
            ErrorKind::ReadOnly
        }
        _ => ErrorKind::Other,
    };
    // The server's own words (its message and detail) rather than the
    // client's "db error".
    let source: Box<dyn std::error::Error + Send + Sync> = match e.as_db_error() {
        Some(db) => format!(
            "{}{}",
            db.message(),
            db.detail().map(|d| format!(" ({d})")).unwrap_or_default()
        )
        .into(),
        None => Box::new(e),
    };
    StoreError {
        path: location.to_owned(),
        context: context.into(),
        kind,
        source,
    }
}

impl Postgres {
    /// Connects and brings the schema up to date (under an advisory lock,
    /// so workers starting at once migrate once). `ReadOnly` access only
    /// checks that the schema is current.
    pub fn connect(connect: &Connect, access: Access) -> Result<Postgres> {
        let bad = |context: String, source: Box<dyn std::error::Error + Send + Sync>| StoreError {
            path: shown(&connect.url),
            context,
            kind: ErrorKind::Other,
            source,
        };
        let mut config: Config = connect.url.parse().map_err(|e: postgres::Error| {
            let hint = if e.to_string().contains("sslrootcert") {
                " (give the server's certificate authority as db_ca_file)"
            } else {
                ""
            };
            bad(
                format!("reading the database address{hint}"),
                e.to_string().into(),
            )
        })?;
        if config.get_password().is_none() {
            if let Some(password) = &connect.password {
                config.password(password);
            }
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("digest");
        }
        let location = location(&config);
        let client = match config.get_ssl_mode() {
            postgres::config::SslMode::Disable => config.connect(postgres::NoTls),
            _ => config.connect(
                tls(connect.ca_pem.as_deref())
                    .map_err(|e| bad("reading db_ca_file".into(), e.into()))?,
            ),
        }
        .map_err(|e| error(&location, "connecting", e))?;
        let mut store = Postgres {
            client: RefCell::new(client),
            location,
            read_only: access == Access::ReadOnly,
            worker: worker_name(),
            lease: connect.lease.unwrap_or(DEFAULT_LEASE),
            renewed: Cell::new(Instant::now()),
        };
        store.migrate(access)?;
        Ok(store)
    }

    pub(super) fn client(&self) -> RefMut<'_, Client> {
        self.client.borrow_mut()
    }

    pub(super) fn err(
        &self,
        context: impl Into<String>,
    ) -> impl FnOnce(postgres::Error) -> StoreError + '_ {
        let context = context.into();
        move |source| error(&self.location, context, source)
    }

    /// This worker's name, as its claims record it.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// Runs `f` in one transaction, rolled back on error.
    pub(super) fn transaction<T>(
        &self,
        context: &str,
        f: impl FnOnce(&mut postgres::Transaction<'_>) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        let mut client = self.client();
        let mut tx = client.transaction().map_err(self.err(context))?;
        let out = f(&mut tx).map_err(self.err(context))?;
        tx.commit().map_err(self.err(context))?;
        Ok(out)
    }

    /// Brings the schema up to date. A role that may not change the
    /// schema still reads and writes a current one; `ReadOnly` access
    /// falls back to reading when it may not write at all.
    fn migrate(&mut self, access: Access) -> Result<()> {
        let version = self.version()?;
        if version > migrations::VERSION {
            return Err(self.version_error(version));
        }
        if version == migrations::VERSION {
            return Ok(());
        }
        match self.migrate_from_locked() {
            Err(e) if e.kind == ErrorKind::ReadOnly && access == Access::ReadOnly => {
                tracing::debug!("{e}; reading it read-only");
                self.read_only = true;
                Err(self.version_error(version))
            }
            other => other,
        }
    }

    fn migrate_from_locked(&mut self) -> Result<()> {
        let location = self.location.clone();
        let e = |context: &str| {
            let location = location.clone();
            let context = context.to_owned();
            move |source| error(&location, context, source)
        };
        let mut client = self.client();
        let mut tx = client.transaction().map_err(e("migrating"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&migrations::LOCK])
            .map_err(e("migrating"))?;
        // Read again under the lock: another worker may have migrated.
        let version = migrations::read(&mut tx).map_err(e("migrating"))?;
        if version > migrations::VERSION {
            drop(tx);
            drop(client);
            return Err(self.version_error(version));
        }
        if version == 0 && migrations::foreign_tables(&mut tx).map_err(e("migrating"))? {
            drop(tx);
            drop(client);
            return Err(StoreError {
                path: self.location.clone(),
                context: "the database holds a subscribers or editions table but no digest schema version: give digest a database (or schema) of its own".into(),
                kind: ErrorKind::Other,
                source: "not a digest database".into(),
            });
        }
        for (v, sql) in migrations::MIGRATIONS {
            if *v <= version {
                continue;
            }
            tx.batch_execute(sql)
                .map_err(e(&format!("migration {v}")))?;
            migrations::record(&mut tx, *v).map_err(e("migrating"))?;
            tracing::debug!("database migrated to version {v}");
        }
        tx.commit().map_err(e("migrating"))?;
        Ok(())
    }

    fn version_error(&self, version: usize) -> StoreError {
        StoreError {
            path: self.location.clone(),
            context: format!(
                "the database is at schema version {version}; this digest knows version {} ({})",
                migrations::VERSION,
                if version > migrations::VERSION {
                    "a newer digest wrote it: upgrade this one"
                } else {
                    "run a command that may write it once"
                }
            ),
            kind: ErrorKind::Other,
            source: "schema version".into(),
        }
    }
}

/// TLS through rustls: the web's roots, and the given ones.
fn tls(
    ca_pem: Option<&[u8]>,
) -> std::result::Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = ca_pem {
        let mut added = 0;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| e.to_string())?;
            roots.add(cert).map_err(|e| e.to_string())?;
            added += 1;
        }
        if added == 0 {
            return Err("no certificate in it".into());
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// `host:pid:random`: unique to this process, readable in `pg_stat` and
/// the claims.
fn worker_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at
    // most that many bytes.
    let host = if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "host".into()
    };
    format!(
        "{host}:{}:{}",
        std::process::id(),
        &super::random_token()[..8]
    )
}

/// A worker that ends lets go of its claims at once (what it left open is
/// taken by the next worker to read it, without waiting for its lease).
impl Drop for Postgres {
    fn drop(&mut self) {
        let worker = self.worker.clone();
        if let Ok(mut client) = self.client.try_borrow_mut() {
            let _ = client.execute("DELETE FROM send_workers WHERE name = $1", &[&worker]);
        }
    }
}

impl Backend for Postgres {
    fn version(&self) -> Result<usize> {
        let mut client = self.client();
        let mut tx = client
            .transaction()
            .map_err(self.err("reading the schema version"))?;
        migrations::read(&mut tx).map_err(self.err("reading the schema version"))
    }

    fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn location(&self) -> &str {
        &self.location
    }
}

/// Reads a column of a row as a count (`BIGINT` to `u32`).
pub(super) fn count(r: &postgres::Row, column: &str) -> std::result::Result<u32, postgres::Error> {
    Ok(r.try_get::<_, i64>(column)?.clamp(0, u32::MAX as i64) as u32)
}
