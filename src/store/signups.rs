//! Sign-ups waiting for confirmation (double opt-in). Each sign-up has a
//! confirmation token of its own: 128 random bits, mailed once and stored
//! only as its SHA-256, good for one confirmation within its expiry, never
//! the subscriber's unsubscribe token (which every digest carries). What
//! the sign-up asked for (name, topics) is held with the token and applied
//! only when that token is confirmed: no one but the address's owner
//! changes a subscriber through the public form.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::subscribers::VISITOR_WAIT;
use super::{bounce_token, random_token, token_hash, ts, Result, Status, Store, Subscriber};

/// What a sign-up calls for. The subscribe page says the same thing in
/// every case.
#[derive(Debug, Clone, PartialEq)]
pub enum SignUp {
    /// Mail this confirmation token to `subscriber` (a new `pending` row,
    /// or the address as it is, whatever its status, until it confirms).
    Confirm {
        token: String,
        subscriber: Box<Subscriber>,
    },
    /// Already active: nothing to send, nothing changes.
    AlreadyActive,
    /// A confirmation went to this address less than `min_interval` ago.
    TooSoon,
    /// The address bounced or complained: the public form does not mail it
    /// (only an operator brings it back).
    Refused(Status),
}

/// Who asked for a sign-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asker {
    /// A visitor of the subscribe page: anyone.
    Public,
    /// The list's operator (`subscribers add --confirm`).
    Operator,
}

/// A confirmation waiting for its token: the address and what it asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub email: String,
    pub name: Option<String>,
    pub topics: String,
}

/// What following a confirmation link did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmed {
    /// The subscriber is active now.
    Activated,
    /// No confirmation is waiting for this token: never issued, used
    /// already, or expired.
    Unknown,
}

impl Store {
    /// Records a sign-up and returns its new confirmation token. A new
    /// address is added as `pending` (no name, no topics yet); an address
    /// that is not active keeps its status, name and topics until the
    /// token is confirmed. No address is mailed more than once per
    /// `min_interval`; from the public form, a `bounced` or `complained`
    /// address is not mailed at all.
    #[allow(clippy::too_many_arguments)]
    pub fn request_subscription(
        &self,
        email: &str,
        name: Option<&str>,
        topics: &str,
        asker: Asker,
        now: DateTime<Utc>,
        min_interval: chrono::Duration,
        expires: chrono::Duration,
    ) -> Result<SignUp> {
        self.with_short_wait(VISITOR_WAIT, || {
            self.immediate("recording a sign-up", |_| {
        let existing = self
            .conn
            .query_row(
                "SELECT * FROM subscribers WHERE email = ?1",
                [email],
                Self::subscriber_from_row,
            )
            .optional()?;
        match existing.as_ref().map(|s| s.status) {
            Some(Status::Active) => return Ok(SignUp::AlreadyActive),
            Some(status @ (Status::Bounced | Status::Complained)) if asker == Asker::Public => {
                return Ok(SignUp::Refused(status))
            }
            _ => {}
        }
        let last: Option<String> = self.conn.query_row(
            "SELECT MAX(created_at) FROM signups WHERE email = ?1",
            [email],
            |r| r.get(0),
        )?;
        let recent = last
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| now.signed_duration_since(t) < min_interval);
        if recent {
            return Ok(SignUp::TooSoon);
        }
        let subscriber = match existing {
            Some(s) => s,
            None => {
                let unsubscribe = random_token();
                self.conn.execute(
                    "INSERT INTO subscribers (email, status, topics, topics_only, token, token_hash, bounce_token, created_at, updated_at)
                     VALUES (?1, 'pending', '', 0, ?2, ?3, ?4, ?5, ?5)",
                    params![email, unsubscribe, token_hash(&unsubscribe), bounce_token(&unsubscribe), ts(now)],
                )?;
                self.conn.query_row(
                    "SELECT * FROM subscribers WHERE id = ?1",
                    [self.conn.last_insert_rowid()],
                    Self::subscriber_from_row,
                )?
            }
        };
        let token = random_token();
        self.conn.execute(
            "INSERT INTO signups (email, token_hash, name, topics, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![email, token_hash(&token), name, topics, ts(now), ts(now + expires)],
        )?;
                Ok(SignUp::Confirm {
                    token,
                    subscriber: Box::new(subscriber),
                })
            })
        })
    }

    /// Forgets a sign-up whose confirmation could not be mailed: the hour's
    /// limit must not lock the address out, and the token was never seen.
    pub fn forget_sign_up(&self, token: &str) -> Result<()> {
        self.conn
            .execute(
                "DELETE FROM signups WHERE token_hash = ?1",
                [token_hash(token)],
            )
            .map(drop)
            .map_err(self.err("forgetting a sign-up"))
    }

    /// The sign-up `token` confirms, when it is live (for the Confirm page).
    pub fn sign_up_waiting(&self, token: &str, now: DateTime<Utc>) -> Result<Option<Waiting>> {
        self.waiting(token, now)
            .map_err(self.err("reading a sign-up"))
    }

    fn waiting(&self, token: &str, now: DateTime<Utc>) -> rusqlite::Result<Option<Waiting>> {
        self.conn
            .query_row(
                "SELECT email, name, topics FROM signups WHERE token_hash = ?1 AND expires_at > ?2",
                params![token_hash(token), ts(now)],
                |r| {
                    Ok(Waiting {
                        email: r.get(0)?,
                        name: r.get(1)?,
                        topics: r.get(2)?,
                    })
                },
            )
            .optional()
    }

    /// Confirms the sign-up `token`, once: its subscriber becomes active
    /// with the name and topics given here (`None`: those the sign-up asked
    /// for), and every confirmation link of the address dies with it.
    pub fn confirm_subscription(
        &self,
        token: &str,
        name: Option<Option<&str>>,
        topics: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Confirmed> {
        self.with_short_wait(VISITOR_WAIT, || {
            self.immediate("confirming a subscription", |store| {
                let Some(waiting) = store.waiting(token, now)? else {
                    return Ok(Confirmed::Unknown);
                };
                let name = name.unwrap_or(waiting.name.as_deref());
                let topics = topics.unwrap_or(&waiting.topics);
                let updated = store.conn.execute(
                    "UPDATE subscribers SET status = 'active', name = ?2, topics = ?3, soft_bounces = 0, updated_at = ?4 WHERE email = ?1",
                    params![waiting.email, name, topics, ts(now)],
                )?;
                if updated == 0 {
                    // Deleted by an operator since: the owner asked again.
                    let unsubscribe = random_token();
                    store.conn.execute(
                        "INSERT INTO subscribers (email, name, status, topics, topics_only, token, token_hash, bounce_token, created_at, updated_at)
                         VALUES (?1, ?2, 'active', ?3, 0, ?4, ?5, ?6, ?7, ?7)",
                        params![waiting.email, name, topics, unsubscribe, token_hash(&unsubscribe), bounce_token(&unsubscribe), ts(now)],
                    )?;
                }
                store
                    .conn
                    .execute("DELETE FROM signups WHERE email = ?1", [&waiting.email])?;
                Ok(Confirmed::Activated)
            })
        })
    }

    /// Deletes expired sign-ups, and the `pending` subscribers left with no
    /// live sign-up once `expires` has passed since they were added.
    /// Returns how many subscribers were deleted. Waits only a moment for
    /// the database: when another process holds it, nothing is purged now
    /// (serve must not stall on it; the next call purges).
    pub fn purge_pending(&self, now: DateTime<Utc>, expires: chrono::Duration) -> Result<usize> {
        let cutoff = ts(now - expires);
        let purged = self.with_short_wait(std::time::Duration::from_millis(200), || {
            self.immediate("purging unconfirmed sign-ups", |store| {
                store
                    .conn
                    .execute("DELETE FROM signups WHERE expires_at <= ?1", [ts(now)])?;
                store.conn.execute(
                    "DELETE FROM subscribers WHERE status = 'pending' AND created_at < ?1
                     AND NOT EXISTS (SELECT 1 FROM signups s WHERE s.email = subscribers.email)",
                    [&cutoff],
                )
            })
        });
        let deleted = match purged {
            Ok(n) => n,
            Err(e) if e.is_busy() => {
                tracing::debug!("the database is busy: unconfirmed sign-ups are purged next time");
                return Ok(0);
            }
            Err(e) => return Err(e),
        };
        if deleted > 0 {
            tracing::info!("{deleted} unconfirmed sign-ups purged");
        }
        Ok(deleted)
    }
}
