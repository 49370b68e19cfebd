//! Sending the day's edition: check everything that can be wrong with the
//! configuration, take the stored edition (or build and store it), reach the
//! mail server, and run the delivery loop over the one open store.

use std::time::Duration;

use chrono::{NaiveDate, Utc};

use super::{Error, Pipeline, Result, StoredEdition};
use crate::config::{Config, ConfigError, OnDeadline};
use crate::ingest::Input;
use crate::lock::Locked;
use crate::mail::send::DeliverError;
use crate::mail::transport::{redact_url, TransportConfigError};
use crate::mail::{
    deliver, MessageSettings, RunSummary, SendError, SendOptions, Transport, TransportSettings,
};

/// What to send.
#[derive(Debug, Clone, Default)]
pub struct SendRequest {
    /// The edition date [default: today in the configured time zone].
    pub date: Option<NaiveDate>,
    /// Where the edition's articles come from when it is not stored yet.
    pub inputs: Vec<Input>,
    /// SMTP server URL, over `smtp_url`.
    pub smtp: Option<String>,
    /// Build and count; send and record nothing.
    pub dry_run: bool,
    /// At most this many messages.
    pub limit: Option<usize>,
    /// Send an edition older than `max_edition_age_days`.
    pub force: bool,
}

/// What a dry run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DryRun {
    pub date: NaiveDate,
    /// `Some(open deliveries)` when the edition was already stored; `None`
    /// when it was built for the dry run (and not stored).
    pub open_deliveries: Option<usize>,
    pub stories: usize,
    pub active_subscribers: usize,
    pub transport: String,
}

/// How a send ended (errors aside).
#[derive(Debug, Clone)]
pub enum SendOutcome {
    /// Another run holds the lock: nothing was done.
    Locked(Locked),
    DryRun(DryRun),
    /// The mail server could not be reached: nothing was sent, run again later.
    Unreachable {
        server: String,
        error: String,
    },
    /// The delivery loop ran.
    Sent(RunSummary),
    /// The edition would have no stories (no articles for the day, or none
    /// that made a story): nothing was stored or sent, and a later run of
    /// the same day with news sends normally.
    NoNews {
        date: NaiveDate,
    },
    /// `require_approval`: the edition is stored and waits for `digest
    /// edition approve`; nothing was sent to subscribers.
    AwaitingApproval {
        date: NaiveDate,
        /// Editors told by this run (0 when they were told before).
        notified: usize,
        /// The deadline passed and `on_deadline = "hold"` keeps it back.
        held_past_deadline: bool,
    },
}

/// How well a send or run went, for whoever maps it to an exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Everything was done (or there was nothing to do).
    Done,
    /// Something failed or remains: run again later.
    Partial,
    /// The configuration is wrong (a setting, a template, the server
    /// refused the login or TLS, a relay refuses the sender).
    Misconfigured,
    /// Another send or run holds the lock: nothing was done.
    Locked,
}

impl SendOutcome {
    /// How well it went.
    pub fn verdict(&self) -> Verdict {
        match self {
            SendOutcome::Locked(_) => Verdict::Locked,
            SendOutcome::DryRun(_)
            | SendOutcome::AwaitingApproval { .. }
            | SendOutcome::NoNews { .. } => Verdict::Done,
            SendOutcome::Unreachable { .. } => Verdict::Partial,
            SendOutcome::Sent(summary) => {
                if summary.stopped.as_ref().is_some_and(|r| r.is_config()) {
                    Verdict::Misconfigured
                } else if summary.complete() {
                    Verdict::Done
                } else {
                    Verdict::Partial
                }
            }
        }
    }

    /// The delivery loop's summary, when it ran.
    pub fn summary(&self) -> Option<&RunSummary> {
        match self {
            SendOutcome::Sent(summary) => Some(summary),
            _ => None,
        }
    }
}

/// The SMTP password: the one the binary passed in (from
/// DIGEST_SMTP_PASSWORD), else the first line of `smtp_password_file` (a
/// regular file of at most 64 KiB).
fn smtp_password(config: &Config, given: Option<&str>) -> Result<Option<String>, ConfigError> {
    if let Some(p) = given {
        return Ok(Some(p.to_owned()));
    }
    secret_file("smtp_password_file", config.smtp_password_file.as_deref())
}

/// The first line of a password file (a regular file of at most 64 KiB),
/// if one is set; a warning when every user may read it.
pub(super) fn secret_file(
    key: &'static str,
    path: Option<&std::path::Path>,
) -> Result<Option<String>, ConfigError> {
    match path {
        None => Ok(None),
        Some(path) => {
            let text = crate::config::files::read_secret(key, path)?;
            warn_if_world_readable(key, path);
            Ok(Some(text.lines().next().unwrap_or("").to_owned()))
        }
    }
}

/// Says once per process that a secret's file is readable by every user
/// of the machine.
fn warn_if_world_readable(key: &str, path: &std::path::Path) {
    static WARNED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    if !crate::config::files::world_readable(path) {
        return;
    }
    let mut warned = WARNED.lock().unwrap_or_else(|p| p.into_inner());
    if !warned.iter().any(|k| k == key) {
        warned.push(key.to_owned());
        tracing::warn!(
            "{key} {} can be read by every user of this machine: `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
}

/// The sender, list id and unsubscribe links of every message.
pub(super) fn message_settings(config: &Config) -> Result<MessageSettings, ConfigError> {
    let from = config.from.clone();
    let list_id = config
        .list_id
        .clone()
        .unwrap_or_else(|| format!("{} <list.{}>", config.title, from.email.domain()));
    let dkim =
        match &config.dkim_key_file {
            None => None,
            Some(path) => {
                let pem = crate::config::files::read_secret("dkim_key_file", path)?;
                warn_if_world_readable("dkim_key_file", path);
                let domain = config
                    .dkim_domain
                    .clone()
                    .unwrap_or_else(|| from.email.domain().to_owned());
                let selector = config.dkim_selector.clone().ok_or_else(|| {
                    ConfigError::Invalid {
                    key: "dkim_selector",
                    message:
                        "dkim_key_file is set: name the selector its public key is published under"
                            .into(),
                }
                })?;
                let signer = crate::mail::dkim::Signer::from_pem(&pem, &selector, &domain)
                    .map_err(|message| ConfigError::Invalid {
                        key: "dkim_key_file",
                        message: format!("{}: {message}", path.display()),
                    })?;
                Some(std::sync::Arc::new(signer))
            }
        };
    let bounce_address = match &config.bounce_address {
        None => None,
        Some(a) => Some(a.parse().map_err(|e| ConfigError::Invalid {
            key: "bounce_address",
            message: format!("{a:?}: {e}"),
        })?),
    };
    Ok(MessageSettings {
        dkim,
        bounce_address,
        from,
        list_id,
        base_url: config.base_url.clone(),
        unsubscribe_mailto: config.unsubscribe_mailto.clone(),
    })
}

/// The configured transport: SMTP (`smtp_url`, or `smtp` over it),
/// sendmail, or the outbox folder. A bad setting is a configuration error.
pub(super) fn transport(
    config: &Config,
    smtp_url: Option<String>,
    password: Option<&str>,
) -> Result<Transport> {
    let transport_settings = TransportSettings {
        smtp_url,
        sendmail: config.sendmail.clone(),
        outbox: config.outbox.clone(),
        ca_file: config.smtp_ca_file.clone(),
        timeout: Duration::from_secs(config.smtp_timeout_secs),
        pool_size: config.concurrency as u32,
    };
    Ok(
        Transport::new(&transport_settings, smtp_password(config, password)?).map_err(
            |TransportConfigError(m)| ConfigError::Invalid {
                key: if config.sendmail.is_some() {
                    "sendmail"
                } else {
                    "smtp_url"
                },
                message: m,
            },
        )?,
    )
}

impl Pipeline {
    /// With `require_approval`, tells the editors that the stored edition
    /// of `date` awaits approval (once per edition; nothing when it is
    /// approved already). Returns how many were told.
    pub fn notify_editors_of(&self, date: NaiveDate) -> Result<usize> {
        let Some(stored) = self.store.edition(date)? else {
            return Ok(0);
        };
        if !self.config.require_approval || stored.approved.is_some() {
            return Ok(0);
        }
        let settings = message_settings(&self.config)?;
        let transport = transport(
            &self.config,
            self.config.smtp_url.clone(),
            self.smtp_password.as_deref(),
        )?;
        self.notify_editors(&stored, &transport, &settings)
    }

    /// `digest send`: holds the run lock (unless a dry run), so a manual
    /// send beside the cron job cannot send the same edition twice.
    pub fn send(&mut self, request: &SendRequest) -> Result<SendOutcome> {
        let _lock = if request.dry_run {
            None
        } else {
            match self.run_lock()? {
                Ok(lock) => Some(lock),
                Err(locked) => return Ok(SendOutcome::Locked(locked)),
            }
        };
        self.send_locked(request)
    }

    /// The work of `send` (and of `run` after fetching), the lock held.
    /// Tells each editor, once per edition, that it awaits approval: the
    /// edition itself with a first line saying so and the command that
    /// approves it. A notice that cannot be sent is tried again next run.
    fn notify_editors(
        &self,
        stored: &StoredEdition,
        transport: &Transport,
        settings: &MessageSettings,
    ) -> Result<usize> {
        if self.config.editors.is_empty() || stored.notified_at.is_some() {
            return Ok(0);
        }
        let date = stored.date;
        let note = format!(
            "This edition awaits approval: nothing goes to subscribers until an editor runs `digest edition approve --date {date}` (or edits it first with `digest edition edit --date {date}`)."
        );
        let renderer = self.renderer()?;
        let (mut sent, mut retry) = (0, false);
        for editor in &self.config.editors {
            let recipient = crate::render::Recipient {
                email: editor.clone(),
                ..self.preview_recipient()
            };
            let rendered = renderer.render(&stored.edition, &recipient)?;
            let id =
                crate::mail::MessageId::approval(date, stored.version, editor, settings.domain());
            let message = crate::mail::message::notice(
                &rendered,
                editor,
                &note,
                settings,
                id.as_str(),
                Utc::now(),
            )
            .map_err(Error::Invalid)?;
            match transport.send(
                &message,
                &format!("{date}-editor-{}", crate::article::short_hash(&[editor])),
            ) {
                Ok(()) => sent += 1,
                Err(SendError::Permanent(e)) => {
                    tracing::warn!("the approval notice to {editor} was refused: {e}")
                }
                Err(e) => {
                    retry = true;
                    tracing::warn!(
                        "the approval notice to {editor} was not sent: {e}; the next run tries again"
                    )
                }
            }
        }
        // Told (or refused for good): not again. After a transient failure
        // the next run tries again.
        if !retry {
            self.store.mark_notified(stored.id, Utc::now())?;
        }
        Ok(sent)
    }

    /// The stored edition of `date`, else the one built and stored now;
    /// or what to answer instead (no news, a dry run's figures).
    fn stored_or_built(
        &self,
        date: NaiveDate,
        request: &SendRequest,
        transport: &str,
    ) -> Result<std::result::Result<StoredEdition, SendOutcome>> {
        Ok(Ok(match self.store.edition(date)? {
            Some(stored) => {
                tracing::info!(
                    "sending the stored edition of {date} (rendered {})",
                    stored.rendered_at
                );
                stored
            }
            None => {
                let built = self.build(date, request.inputs.clone())?;
                if built.skipped > 0 {
                    tracing::warn!(
                        "{} inputs skipped while building the edition",
                        built.skipped
                    );
                }
                if built.edition.stories.is_empty() {
                    tracing::info!("no news for {date}: nothing stored or sent");
                    return Ok(Err(SendOutcome::NoNews { date }));
                }
                if request.dry_run {
                    return Ok(Err(SendOutcome::DryRun(DryRun {
                        date,
                        open_deliveries: None,
                        stories: built.edition.stories.len(),
                        active_subscribers: self.store.active_subscribers()?,
                        transport: transport.to_owned(),
                    })));
                }
                self.store.store_edition(date, &built.edition, Utc::now())?
            }
        }))
    }

    /// `send_locked_once`, read again when an editor changed the edition
    /// between reading and planning (on another host: a SQLite file's run
    /// lock keeps edits out while sending).
    pub(super) fn send_locked(&mut self, request: &SendRequest) -> Result<SendOutcome> {
        let mut tries = 0;
        loop {
            match self.send_locked_once(request) {
                Err(Error::Deliver(DeliverError::Changed { date, version })) if tries < 3 => {
                    tries += 1;
                    tracing::info!(
                        "the edition of {date} changed since version {version} was read: reading it again"
                    );
                }
                other => return other,
            }
        }
    }

    fn send_locked_once(&mut self, request: &SendRequest) -> Result<SendOutcome> {
        // Everything that can be wrong with the configuration fails here,
        // before any message is sent.
        self.renderer()?;
        let config = &self.config;
        let settings = message_settings(config)?;
        let smtp_url = request.smtp.clone().or_else(|| config.smtp_url.clone());
        let transport = transport(config, smtp_url.clone(), self.smtp_password.as_deref())?;
        let today = self.today();
        let date = request.date.unwrap_or(today);
        if date > today && !request.force {
            return Err(Error::Usage(format!(
                "the edition of {date} is in the future (today is {today} in {}); use --force to send it early",
                config.timezone
            )));
        }
        let age = (today - date).num_days();
        if age > config.max_edition_age_days && !request.force {
            return Err(Error::Usage(format!(
                "the edition of {date} is {age} days old, older than max_edition_age_days allows ({}); use --force to send it late",
                config.max_edition_age_days
            )));
        }

        // With PostgreSQL, workers on several hosts may start at once: the
        // first builds the edition while the others wait, then find it.
        self.store.hold_date(date)?;
        let found = self.stored_or_built(date, request, &transport.describe());
        let released = self.store.release_date(date);
        let stored = match found? {
            Ok(stored) => stored,
            Err(outcome) => return Ok(outcome),
        };
        released?;
        if stored.edition.stories.is_empty() {
            return Err(Error::Invalid(format!(
                "the edition of {date} has no stories left (every one was dropped): nothing was sent; `digest edition build --date {date} --rebuild` builds it again from its articles"
            )));
        }
        if request.dry_run {
            let open = self.store.open_counts(stored.id)?.total();
            return Ok(SendOutcome::DryRun(DryRun {
                date,
                open_deliveries: Some(open),
                stories: stored.edition.stories.len(),
                active_subscribers: self.store.active_subscribers()?,
                transport: transport.describe(),
            }));
        }

        if self.config.require_approval && stored.approved.is_none() {
            let deadline_passed = self.config.approval_deadline.is_some_and(|at| {
                let now = Utc::now()
                    .with_timezone(&self.config.timezone)
                    .naive_local();
                now >= date.and_time(at)
            });
            match (deadline_passed, self.config.on_deadline) {
                (true, OnDeadline::Send) => {
                    tracing::warn!(
                        "the edition of {date} was not approved by the deadline {}: sending it as it is (on_deadline = \"send\")",
                        self.config
                            .approval_deadline
                            .map(|t| t.format("%H:%M").to_string())
                            .unwrap_or_default()
                    );
                    self.store.log_edition(
                        stored.id,
                        &self.user,
                        "sent unapproved: the approval deadline passed",
                        Utc::now(),
                    )?;
                }
                (passed, _) => {
                    let notified = self.notify_editors(&stored, &transport, &settings)?;
                    return Ok(SendOutcome::AwaitingApproval {
                        date,
                        notified,
                        held_past_deadline: passed,
                    });
                }
            }
        }

        // Unsubscribes that met a busy database wait beside it: honour them first.
        if let Err(e) = self.store.apply_queued_unsubscribes(Utc::now()) {
            tracing::warn!("{e}");
        }
        tracing::info!("sending via {}", transport.describe());
        match transport.check() {
            Ok(()) => {}
            Err(SendError::Fatal(m)) => {
                return Err(ConfigError::Invalid {
                    key: "smtp_url",
                    message: m,
                }
                .into())
            }
            Err(e) => {
                return Ok(SendOutcome::Unreachable {
                    server: smtp_url.as_deref().map(redact_url).unwrap_or_default(),
                    error: e.to_string(),
                })
            }
        }

        let opts = SendOptions {
            concurrency: self.config.concurrency,
            rate_limit: self.config.rate_limit,
            limit: request.limit,
            max_attempts: self.config.max_attempts.max(1),
            retry_base: Duration::from_millis(self.config.retry_base_ms),
        };
        let renderer = self.renderer.get().expect("loaded above");
        let bar = self.watcher.deliveries();
        let summary = deliver(
            &mut self.store,
            &transport,
            renderer,
            &stored,
            &settings,
            &opts,
            bar.as_ref(),
        )?;
        bar.finish();
        Ok(SendOutcome::Sent(summary))
    }
}
