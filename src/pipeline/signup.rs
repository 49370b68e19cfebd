//! Double opt-in: a sign-up is stored `pending` and mailed a confirmation
//! link; only following it (and pressing Confirm) makes the subscriber
//! active. Unconfirmed sign-ups are deleted after `confirm_days`.
//!
//! What a caller learns never depends on whether the address is on the
//! list: the subscribe page says "check your inbox" in every case.

use chrono::{Duration, Utc};

use super::send::{message_settings, transport};
use super::subscribers::check_row;
use super::{Error, Pipeline, Result};
use crate::mail::message::confirmation;
use crate::store::{Confirmed, SignUp};

/// No address is mailed a confirmation more often than this.
pub const CONFIRMATION_INTERVAL_MINUTES: i64 = 60;

/// What a sign-up did (for logs and `subscribers add --confirm`; the page
/// shows none of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedUp {
    /// A confirmation link was mailed.
    Mailed,
    /// The address is active already: nothing sent.
    AlreadyActive,
    /// A confirmation went to this address within the hour: nothing sent.
    TooSoon,
}

/// A confirmation mail, recorded and ready to send.
pub struct Confirmation {
    subscriber_id: i64,
    message: lettre::Message,
    transport: crate::mail::Transport,
}

impl Confirmation {
    /// Sends it (no database work).
    pub fn send(&self) -> Result<()> {
        self.transport
            .send(&self.message, &format!("confirm-{}", self.subscriber_id))
            .map_err(|e| {
                Error::Invalid(format!(
                    "mailing the confirmation to subscriber {}: {e}",
                    self.subscriber_id
                ))
            })?;
        tracing::info!("confirmation mailed to subscriber {}", self.subscriber_id);
        Ok(())
    }
}

impl Pipeline {
    fn confirm_window(&self) -> Duration {
        Duration::days(i64::from(self.config.confirm_days))
    }

    /// Records a sign-up and mails its confirmation link. A bad address or
    /// name is `Error::Invalid`; a confirmation that cannot be sent is an
    /// error, and the address may be tried again at once.
    pub fn sign_up(&self, email: &str, name: Option<&str>, topics: &str) -> Result<SignedUp> {
        match self.record_sign_up(email, name, topics)? {
            Err(outcome) => Ok(outcome),
            Ok(pending) => match pending.send() {
                Ok(()) => Ok(SignedUp::Mailed),
                Err(e) => {
                    self.forget_confirmation(&pending)?;
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
    ) -> Result<std::result::Result<Confirmation, SignedUp>> {
        let row = check_row(email, name, topics).map_err(Error::Invalid)?;
        // Fail on a bad configuration before anything is recorded.
        let settings = message_settings(&self.config)?;
        let transport = transport(&self.config, self.config.smtp_url.clone())?;
        let now = Utc::now();
        let outcome = self.store.request_subscription(
            &row.email,
            row.name.as_deref(),
            &row.topics,
            now,
            Duration::minutes(CONFIRMATION_INTERVAL_MINUTES),
        )?;
        let token = match outcome {
            SignUp::AlreadyActive => return Ok(Err(SignedUp::AlreadyActive)),
            SignUp::TooSoon => return Ok(Err(SignedUp::TooSoon)),
            SignUp::Confirm { token, .. } => token,
        };
        let Some(sub) = self.store.subscriber_by_token(&token)? else {
            return Err(Error::Invalid(format!(
                "{} vanished while signing up",
                row.email
            )));
        };
        let message = confirmation(
            &sub,
            &self.config.title,
            &settings,
            self.config.confirm_days,
            now,
        )
        .map_err(Error::Invalid);
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                self.store.forget_confirmation_sent(sub.id)?;
                return Err(e);
            }
        };
        Ok(Ok(Confirmation {
            subscriber_id: sub.id,
            message,
            transport,
        }))
    }

    /// A confirmation that could not be sent: the hour's limit must not
    /// lock the address out.
    pub fn forget_confirmation(&self, confirmation: &Confirmation) -> Result<()> {
        Ok(self
            .store
            .forget_confirmation_sent(confirmation.subscriber_id)?)
    }

    /// Whether `token`'s confirmation link is live (the Confirm page).
    pub fn confirmation_waiting(&self, token: &str) -> Result<bool> {
        Ok(self
            .store
            .confirmation_waiting(token, Utc::now(), self.confirm_window())?
            .is_some())
    }

    /// Follows a confirmation link (the Confirm button).
    pub fn confirm_subscription(&self, token: &str) -> Result<Confirmed> {
        Ok(self
            .store
            .confirm_subscription(token, Utc::now(), self.confirm_window())?)
    }

    /// Deletes sign-ups left unconfirmed for `confirm_days`.
    pub fn purge_signups(&self) -> Result<usize> {
        Ok(self
            .store
            .purge_pending(Utc::now(), self.confirm_window())?)
    }
}
