//! Double opt-in: a sign-up gets a confirmation token of its own, mailed
//! to the address; only the holder of that mail (pressing Confirm) makes
//! the subscriber active, with the name and topics they choose there.
//! Unconfirmed sign-ups are deleted after `confirm_days`.
//!
//! What a caller learns never depends on whether the address is on the
//! list: the subscribe page says "check your inbox" in every case. The page
//! queues each sign-up durably (`sign_up_queue`) before it answers, so a
//! busy database delays a sign-up and never loses it; `serve` applies the
//! queue (`apply_queued_sign_ups`) and mails the links; a link whose mail
//! failed is mailed again (`confirmations_to_retry`) until it expires.

use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};

use super::send::{message_settings, transport};
use super::subscribers::{check_row, check_topics};
use super::{Error, Pipeline, Result};
use crate::mail::message::confirmation;
use crate::mail::MessageSettings;
use crate::store::{Asker, Confirmed, QueueFile, SignUp, Status, Subscriber, Waiting};

/// No address is mailed a confirmation more often than this.
pub const CONFIRMATION_INTERVAL_MINUTES: i64 = 60;

/// What a sign-up did (for logs and `subscribers add --confirm`; the page
/// shows none of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedUp {
    /// A confirmation link was mailed.
    Mailed,
    /// The address is active already: nothing sent, nothing changed.
    AlreadyActive,
    /// A confirmation went to this address within the hour: nothing sent.
    TooSoon,
    /// The address bounced or complained: the public form mails it nothing.
    Refused(Status),
}

/// A confirmation mail, recorded and ready to send.
pub struct Confirmation {
    token: String,
    subscriber_id: i64,
    message: lettre::Message,
    transport: crate::mail::Transport,
}

impl Confirmation {
    /// Sends it (no database work).
    pub fn send(&self) -> Result<()> {
        // Named after the token's hash, never the token: outbox file names
        // and logs are seen by more eyes than the mail.
        let name = format!(
            "confirm-{}-{}",
            self.subscriber_id,
            &crate::store::token_hash(&self.token)[..16]
        );
        self.transport.send(&self.message, &name).map_err(|e| {
            Error::Invalid(format!(
                "mailing the confirmation to subscriber {}: {e}",
                self.subscriber_id
            ))
        })?;
        tracing::info!("confirmation mailed to subscriber {}", self.subscriber_id);
        Ok(())
    }
}

/// A sign-up as the subscribe page queues it.
#[derive(Debug, Serialize, Deserialize)]
struct Queued {
    email: String,
    name: Option<String>,
    topics: String,
}

impl Pipeline {
    fn confirm_window(&self) -> Duration {
        Duration::days(i64::from(self.config.confirm_days))
    }

    /// Records a sign-up and mails its confirmation link (the operator's
    /// `subscribers add --confirm`). A bad address or name is
    /// `Error::Invalid`; a confirmation that cannot be sent is an error, and
    /// the sign-up is forgotten so the address may be tried again at once.
    pub fn sign_up(
        &self,
        email: &str,
        name: Option<&str>,
        topics: &str,
        asker: Asker,
    ) -> Result<SignedUp> {
        match self.record_sign_up(email, name, topics, asker)? {
            Err(outcome) => Ok(outcome),
            Ok(pending) => match pending.send() {
                Ok(()) => {
                    self.confirmation_mailed(&pending, true)?;
                    Ok(SignedUp::Mailed)
                }
                Err(e) => {
                    self.store.forget_sign_up(&pending.token)?;
                    Err(e)
                }
            },
        }
    }

    /// The first half of `sign_up`, the database's: records the sign-up
    /// and returns its confirmation, ready to send (`Err` with the outcome
    /// when nothing is to be sent). `serve` sends it without holding the
    /// pipeline, so a slow mail server delays no other request.
    pub fn record_sign_up(
        &self,
        email: &str,
        name: Option<&str>,
        topics: &str,
        asker: Asker,
    ) -> Result<std::result::Result<Confirmation, SignedUp>> {
        let row = check_row(email, name, topics).map_err(Error::Invalid)?;
        // Fail on a bad configuration before anything is recorded.
        let (settings, transport) = self.confirmation_transport()?;
        let outcome = self.store.request_subscription(
            &row.email,
            row.name.as_deref(),
            &row.topics,
            asker,
            Utc::now(),
            Duration::minutes(CONFIRMATION_INTERVAL_MINUTES),
            self.confirm_window(),
        )?;
        match outcome {
            SignUp::AlreadyActive => Ok(Err(SignedUp::AlreadyActive)),
            SignUp::TooSoon => Ok(Err(SignedUp::TooSoon)),
            SignUp::Refused(status) => Ok(Err(SignedUp::Refused(status))),
            SignUp::Confirm { token, subscriber } => self
                .confirmation(token, &subscriber, &settings, transport)
                .map(Ok),
        }
    }

    /// The message settings and transport of the mails `serve` sends on
    /// its own (confirmations, welcomes).
    pub(super) fn confirmation_transport(
        &self,
    ) -> Result<(MessageSettings, crate::mail::Transport)> {
        Ok((
            message_settings(&self.config)?,
            transport(
                &self.config,
                self.config.smtp_url.clone(),
                self.smtp_password.as_deref(),
            )?,
        ))
    }

    /// The confirmation mail of `token` for `subscriber`.
    fn confirmation(
        &self,
        token: String,
        subscriber: &Subscriber,
        settings: &MessageSettings,
        transport: crate::mail::Transport,
    ) -> Result<Confirmation> {
        match confirmation(
            subscriber,
            &token,
            &self.config.title,
            settings,
            self.config.confirm_days,
            Utc::now(),
        ) {
            Ok(message) => Ok(Confirmation {
                token,
                subscriber_id: subscriber.id,
                message,
                transport,
            }),
            Err(e) => {
                self.store.forget_sign_up(&token)?;
                Err(Error::Invalid(e))
            }
        }
    }

    /// Records how sending a confirmation went: a failed one is tried
    /// again later (`confirmations_to_retry`), with a new link.
    pub fn confirmation_mailed(&self, confirmation: &Confirmation, sent: bool) -> Result<()> {
        Ok(self
            .store
            .sign_up_mailed(&confirmation.token, sent, Utc::now())?)
    }

    /// Confirmations whose mail did not go out (the mail server was down,
    /// the process stopped) and are due another try, each with a new link:
    /// a sign-up is never lost to a failed mail while it is live.
    pub fn confirmations_to_retry(&self) -> Result<Vec<Confirmation>> {
        let due = self.store.sign_ups_to_mail_again(Utc::now(), 20)?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let (settings, transport) = self.confirmation_transport()?;
        due.into_iter()
            .map(|(token, subscriber)| {
                self.confirmation(token, &subscriber, &settings, transport.clone())
            })
            .collect()
    }

    /// The sign-up `token` would confirm, when its link is live (the
    /// Confirm page shows its address and what it asked for).
    pub fn sign_up_waiting(&self, token: &str) -> Result<Option<Waiting>> {
        Ok(self.store.sign_up_waiting(token, Utc::now())?)
    }

    /// Follows a confirmation link (the Confirm button), with the name and
    /// topics the page sent (`None`: what the sign-up asked for). A name or
    /// topics that would not pass the subscribe form are `Error::Invalid`.
    pub fn confirm_subscription(
        &self,
        token: &str,
        name: Option<&str>,
        topics: Option<&str>,
    ) -> Result<Confirmed> {
        let name = match name {
            None => None,
            Some(n) => Some(crate::mail::validate_name(n).map_err(Error::Invalid)?),
        };
        let topics = match topics {
            None => None,
            Some(t) => Some(check_topics(t).map_err(|e| Error::Invalid(e.to_string()))?),
        };
        Ok(self.store.confirm_subscription(
            token,
            name.as_ref().map(|n| n.as_deref()),
            topics.as_deref(),
            Utc::now(),
        )?)
    }

    /// Deletes sign-ups left unconfirmed for `confirm_days`.
    pub fn purge_signups(&self) -> Result<usize> {
        Ok(self
            .store
            .purge_pending(Utc::now(), self.confirm_window())?)
    }

    /// The file beside the database where the subscribe page's sign-ups
    /// wait to be recorded and mailed: `serve` appends to it without
    /// holding the pipeline (`QueueFile::append` of a `sign_up_line`), so a
    /// SQLite file another process holds delays a sign-up and never loses
    /// it. None with PostgreSQL: rows, not the file, are locked there, and
    /// a host's disk may not outlive it, so each sign-up is recorded at
    /// once (or answered 503).
    pub fn sign_up_queue(&self) -> Option<QueueFile> {
        self.config.db.file().map(|file| {
            QueueFile::new(std::path::PathBuf::from(format!(
                "{}.signups",
                file.display()
            )))
        })
    }

    /// Records the queued sign-ups, oldest first, and returns the
    /// confirmations to mail. A busy database or a configuration problem
    /// stops the work and leaves the queue for the next call (the sign-ups
    /// recorded already are then found again and not mailed twice: the
    /// hour's limit holds them); a line that can never be recorded
    /// (damaged, or an address the form should not have let through) is
    /// dropped with a warning.
    pub fn apply_queued_sign_ups(&self) -> Vec<Confirmation> {
        let mut mail = Vec::new();
        let Some(queue) = self.sign_up_queue() else {
            return mail;
        };
        queue.drain(|lines| {
            for line in lines {
                let queued: Queued = match serde_json::from_str(line) {
                    Ok(q) => q,
                    Err(e) => {
                        tracing::warn!("a queued sign-up is damaged ({e}): dropped");
                        continue;
                    }
                };
                match self.record_sign_up(
                    &queued.email,
                    queued.name.as_deref(),
                    &queued.topics,
                    Asker::Public,
                ) {
                    Ok(Ok(confirmation)) => mail.push(confirmation),
                    Ok(Err(outcome)) => tracing::info!("sign-up: {outcome:?}"),
                    Err(Error::Invalid(e)) => {
                        tracing::warn!("a queued sign-up cannot be recorded: {e}: dropped")
                    }
                    // Kept for when the database or the settings are mended.
                    Err(e) => {
                        tracing::debug!("sign-ups wait: {e}");
                        return false;
                    }
                }
            }
            true
        });
        mail
    }
}

/// A sign-up as a line of the queue (`Pipeline::sign_up_queue`).
pub fn sign_up_line(email: &str, name: Option<&str>, topics: &str) -> String {
    serde_json::to_string(&Queued {
        email: email.to_owned(),
        name: name.map(str::to_owned),
        topics: topics.to_owned(),
    })
    .expect("sign-ups serialize")
}
