//! The ways a message leaves: SMTP (lettre, pooled, STARTTLS or implicit
//! TLS), the local `sendmail` command, or a folder of `.eml` files (the
//! default when no SMTP server is configured, so that `digest send` works
//! out of the box).
//!
//! Errors say what the delivery loop must do: retry later (transient),
//! record a failure for this subscriber (permanent), or stop the run (a
//! configuration problem such as a refused login, which would fail every
//! subscriber alike). Credentials never appear in any of them.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::PoolConfig;
use lettre::{Message, SendmailTransport, SmtpTransport, Transport as _};

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// Try again later: 4xx replies, refused or dropped connections, timeouts.
    #[error("transient: {0}")]
    Transient(String),
    /// This recipient will not get it: 5xx replies.
    #[error("permanent: {0}")]
    Permanent(String),
    /// Nothing will get through until the configuration is fixed (a refused
    /// login, a TLS failure).
    #[error("{0}")]
    Fatal(String),
}

/// How to build the transport; secrets are passed separately.
#[derive(Debug, Clone, Default)]
pub struct TransportSettings {
    /// `smtp://host:port`, `smtp://user@host:587?tls=required`, `smtps://user@host:465`.
    pub smtp_url: Option<String>,
    /// Use the local sendmail command instead of SMTP.
    pub sendmail: Option<String>,
    /// Folder for `.eml` files when neither is configured.
    pub outbox: PathBuf,
    /// An extra trusted root certificate (PEM) for the SMTP server's TLS.
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
    /// Pooled SMTP connections (the send concurrency).
    pub pool_size: u32,
}

/// A configuration problem found while building the transport (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportConfigError(pub String);

/// A message carrier (clones share the SMTP connection pool).
#[derive(Clone)]
pub enum Transport {
    Smtp {
        transport: SmtpTransport,
        shown: String,
    },
    Sendmail(SendmailTransport, String),
    Outbox(PathBuf),
}

/// The URL with everything between `://` and the last `@` removed, for
/// logs: whatever a password holds (even an unencoded `@`, `/` or `#`), no
/// part of it is shown.
pub fn redact_url(raw: &str) -> String {
    let Some((scheme, rest)) = raw.split_once("://") else {
        return "(unparseable SMTP URL)".into();
    };
    let shown = match rest.rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => raw.to_owned(),
    };
    match url::Url::parse(&shown) {
        Ok(_) => shown,
        Err(_) => "(unparseable SMTP URL)".into(),
    }
}

/// Whether the user and password of an SMTP URL hold a character that ends
/// the authority unencoded (`/`, `?`, `#`): the URL would then be read with
/// part of the password as the host or path.
fn userinfo_unencoded(raw: &str) -> bool {
    let rest = raw.split_once("://").map_or(raw, |(_, r)| r);
    match (rest.rfind('@'), rest.find(['/', '?', '#'])) {
        (Some(at), Some(end)) => end < at,
        _ => false,
    }
}

/// A sendmail command that can run: an executable file, by path or on PATH.
fn executable(command: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let runs = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if command.contains('/') {
        return runs(std::path::Path::new(command));
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| runs(&dir.join(command))))
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Transport {
    /// Builds the configured transport. `password` comes from the
    /// environment or a password file, never from the config file.
    pub fn new(
        settings: &TransportSettings,
        password: Option<String>,
    ) -> Result<Transport, TransportConfigError> {
        if let Some(command) = &settings.sendmail {
            if !executable(command) {
                return Err(TransportConfigError(format!(
                    "sendmail {command:?} is not an executable file"
                )));
            }
            return Ok(Transport::Sendmail(
                SendmailTransport::new_with_command(command),
                command.clone(),
            ));
        }
        let Some(raw) = &settings.smtp_url else {
            return Ok(Transport::Outbox(settings.outbox.clone()));
        };
        let shown = redact_url(raw);
        let bad = |msg: String| TransportConfigError(format!("smtp_url {shown}: {msg}"));
        if userinfo_unencoded(raw) {
            return Err(bad(
                "the user or password holds an unencoded / ? or # (or @): percent-encode them (%2F %3F %23 %40)"
                    .into(),
            ));
        }
        let url = url::Url::parse(raw).map_err(|e| bad(e.to_string()))?;
        let host = url
            .host_str()
            .ok_or_else(|| bad("no host".into()))?
            .to_owned();
        let tls_param = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let plain = url.scheme() == "smtp" && tls_param.is_none();
        if !matches!(url.scheme(), "smtp" | "smtps") {
            return Err(bad("the scheme must be smtp:// or smtps://".into()));
        }
        if plain && !is_loopback(&host) {
            return Err(bad(format!(
                "plain SMTP without TLS is only allowed to this machine (localhost, 127.0.0.1, ::1), not to {host}; \
                 use smtps:// or smtp://...?tls=required"
            )));
        }
        if tls_param.as_deref() == Some("opportunistic") && !is_loopback(&host) {
            return Err(bad(
                "tls=opportunistic can be downgraded by an attacker; use tls=required".into(),
            ));
        }
        if url.password().is_some() {
            tracing::warn!("the SMTP password is in smtp_url; put it in DIGEST_SMTP_PASSWORD or smtp_password_file instead");
        }
        // Build from the URL without its password: lettre reads credentials from it.
        let mut stripped = url.clone();
        let _ = stripped.set_password(None);
        let mut builder =
            SmtpTransport::from_url(stripped.as_str()).map_err(|e| bad(e.to_string()))?;
        if let Some(ca) = &settings.ca_file {
            let pem = crate::config::files::read_regular(
                ca,
                crate::config::files::MAX_SECRET_BYTES * 16,
                true,
            )
            .map_err(|e| bad(format!("cannot read smtp_ca_file {}: {e}", ca.display())))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| bad(format!("smtp_ca_file {}: {e}", ca.display())))?;
            let params = TlsParameters::builder(host.clone())
                .add_root_certificate(cert)
                .build_rustls()
                .map_err(|e| bad(format!("TLS settings: {e}")))?;
            builder = match (url.scheme(), tls_param.as_deref()) {
                ("smtps", _) => builder.tls(Tls::Wrapper(params)),
                (_, Some("opportunistic")) => builder.tls(Tls::Opportunistic(params)),
                (_, Some(_)) => builder.tls(Tls::Required(params)),
                _ => builder,
            };
        }
        let user = percent_decode(url.username());
        let password = password.or_else(|| url.password().map(percent_decode));
        match (user.is_empty(), password) {
            (false, Some(p)) => builder = builder.credentials(Credentials::new(user, p)),
            (false, None) => return Err(bad(
                "a user is given but no password: set DIGEST_SMTP_PASSWORD or smtp_password_file"
                    .into(),
            )),
            (true, _) => {}
        }
        let transport = builder
            .timeout(Some(settings.timeout))
            .pool_config(PoolConfig::new().max_size(settings.pool_size.max(1)))
            .build();
        Ok(Transport::Smtp { transport, shown })
    }

    /// What this transport is, for logs (no secrets).
    pub fn describe(&self) -> String {
        match self {
            Transport::Smtp { shown, .. } => format!("SMTP {shown}"),
            Transport::Sendmail(_, cmd) => format!("sendmail ({cmd})"),
            Transport::Outbox(dir) => format!("outbox folder {}", dir.display()),
        }
    }

    /// Checks that messages can leave: connects (and logs in) to the SMTP
    /// server, or creates the outbox folder.
    pub fn check(&self) -> Result<(), SendError> {
        match self {
            Transport::Smtp { transport, .. } => match transport.test_connection() {
                Ok(true) => Ok(()),
                Ok(false) => Err(SendError::Transient(
                    "the SMTP server did not answer".into(),
                )),
                Err(e) => Err(classify(&e)),
            },
            Transport::Sendmail(..) => Ok(()),
            Transport::Outbox(dir) => std::fs::create_dir_all(dir).map_err(|e| {
                SendError::Fatal(format!(
                    "cannot create the outbox folder {}: {e}",
                    dir.display()
                ))
            }),
        }
    }

    /// Sends one message. `name` names its outbox file (`<name>.eml`).
    pub fn send(&self, message: &Message, name: &str) -> Result<(), SendError> {
        match self {
            Transport::Smtp { transport, .. } => {
                transport.send(message).map(drop).map_err(|e| classify(&e))
            }
            Transport::Sendmail(t, _) => t
                .send(message)
                .map_err(|e| SendError::Transient(format!("sendmail: {e}"))),
            Transport::Outbox(dir) => write_eml(dir, name, &message.formatted()),
        }
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Writes `dir/name.eml` atomically (a temporary file, then a rename): a
/// crash never leaves half a message, and a re-send replaces the same file.
/// The folder is made when missing (a confirmation or an editor's notice
/// may be the first message of a new install).
fn write_eml(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), SendError> {
    let path = dir.join(format!("{name}.eml"));
    let tmp = dir.join(format!(".{name}.eml.tmp"));
    std::fs::create_dir_all(dir)
        .and_then(|_| std::fs::write(&tmp, bytes))
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|e| SendError::Transient(format!("writing {}: {e}", path.display())))
}

/// Sorts an SMTP error into what to do about it.
fn classify(e: &lettre::transport::smtp::Error) -> SendError {
    let text = e.to_string();
    if let Some(code) = e.status() {
        let code: u16 = code.to_string().parse().unwrap_or(0);
        if e.is_permanent() {
            // Authentication and TLS policy refusals concern every recipient alike.
            if matches!(code, 530 | 534 | 535 | 538) {
                return SendError::Fatal(format!(
                    "the SMTP server refused the login ({code}): {text}"
                ));
            }
            return SendError::Permanent(text);
        }
        return SendError::Transient(text);
    }
    if e.is_tls() {
        return SendError::Fatal(format!("TLS with the SMTP server failed: {text}"));
    }
    if e.is_permanent() {
        return SendError::Permanent(text);
    }
    SendError::Transient(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> TransportSettings {
        TransportSettings {
            smtp_url: Some(url.into()),
            outbox: "outbox".into(),
            timeout: Duration::from_secs(5),
            pool_size: 2,
            ..Default::default()
        }
    }

    #[test]
    fn plain_smtp_only_to_loopback() {
        for ok in [
            "smtp://127.0.0.1:2525",
            "smtp://localhost:25",
            "smtp://[::1]:2525",
            "smtp://relay.example.com:587?tls=required",
            "smtps://relay.example.com",
        ] {
            assert!(Transport::new(&settings(ok), None).is_ok(), "{ok}");
        }
        let err = Transport::new(&settings("smtp://relay.example.com:25"), None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("plain SMTP without TLS") && err.contains("relay.example.com"),
            "{err}"
        );
        assert!(Transport::new(&settings("http://x"), None).is_err());
        assert!(
            Transport::new(&settings("smtp://mail.example.com?tls=opportunistic"), None).is_err()
        );
    }

    #[test]
    fn credentials_come_from_outside_and_never_show() {
        let err = Transport::new(&settings("smtps://alice@relay.example.com"), None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("DIGEST_SMTP_PASSWORD"), "{err}");
        let t = Transport::new(&settings("smtps://alice:hunter2@relay.example.com"), None).unwrap();
        assert!(
            !t.describe().contains("hunter2") && !t.describe().contains("alice"),
            "{}",
            t.describe()
        );
        let err = Transport::new(&settings("smtp://alice:hunter2@relay.example.com:25"), None)
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn default_is_the_outbox() {
        let t = Transport::new(
            &TransportSettings {
                outbox: "out".into(),
                ..Default::default()
            },
            None,
        )
        .unwrap();
        assert!(matches!(t, Transport::Outbox(_)));
    }
}
