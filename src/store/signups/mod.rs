//! Sign-ups waiting for confirmation (double opt-in). Each sign-up has a
//! confirmation token of its own: 128 random bits, mailed to the address
//! and stored only as its SHA-256, good for one confirmation within its
//! expiry, never the subscriber's unsubscribe token (which every digest
//! carries). What the sign-up asked for (name, topics) is held with the
//! token and applied only when that token is confirmed: no one but the
//! address's owner changes a subscriber through the public form.
//!
//! A sign-up whose mail did not go out (the mail server was down, the
//! process stopped) is tried again until it expires: the token is drawn
//! anew for each try, since only its hash is kept.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::subscribers::VISITOR_WAIT;

/// How long counting a sign-up waits for another connection's locks: on
/// PostgreSQL (rows) a moment; on SQLite (the whole file) not at all: the
/// page counts in memory instead, and the sign-up is queued without delay.
pub(super) const COUNT_WAIT: std::time::Duration = std::time::Duration::from_millis(200);
use super::{bounce_token, random_token, token_hash, ts, Result, Sqlite, Status, Subscriber};

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

impl Asker {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Asker::Public => "public",
            Asker::Operator => "operator",
        }
    }
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
    /// already, expired, or the address bounced or complained since.
    Unknown,
}

/// How long a new sign-up's first mail has before the background task
/// takes it for lost (a crash between recording and mailing) and tries
/// again.
pub(super) const FIRST_TRY: chrono::Duration = chrono::Duration::minutes(10);

/// When to try a confirmation mail again after `attempts` failures: 5 s,
/// 20 s, 80 s... at most an hour.
pub(super) fn retry_after(attempts: u32) -> chrono::Duration {
    let secs = 5u64.saturating_mul(4u64.saturating_pow(attempts.saturating_sub(1)));
    chrono::Duration::seconds(secs.min(3600) as i64)
}

/// Sign-ups waiting for their confirmation.
pub trait SignUps {
    /// Records a sign-up and returns its new confirmation token. A new
    /// address is added as `pending` (no name, no topics yet); an address
    /// that is not active keeps its status, name and topics until the
    /// token is confirmed. No address is mailed more than once per
    /// `min_interval`; from the public form, a `bounced` or `complained`
    /// address is not mailed at all.
    #[allow(clippy::too_many_arguments)]
    fn request_subscription(
        &self,
        email: &str,
        name: Option<&str>,
        topics: &str,
        asker: Asker,
        now: DateTime<Utc>,
        min_interval: chrono::Duration,
        expires: chrono::Duration,
    ) -> Result<SignUp>;

    /// Forgets a sign-up whose confirmation could not be mailed, when the
    /// one who asked hears so (the operator's command): the hour's limit
    /// must not lock the address out, and the token was never seen.
    fn forget_sign_up(&self, token: &str) -> Result<()>;

    /// Records how mailing `token`'s confirmation went: sent, or failed
    /// and to be tried again later (with a new token).
    fn sign_up_mailed(&self, token: &str, sent: bool, now: DateTime<Utc>) -> Result<()>;

    /// Sign-ups whose confirmation did not go out and are due another try
    /// (at most `limit`): each gets a new token (the old one was never seen
    /// by anyone, or its mail was lost) and is not due again until this try
    /// has had its time.
    fn sign_ups_to_mail_again(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(String, Subscriber)>>;

    /// The sign-up `token` confirms, when it is live (for the Confirm page).
    fn sign_up_waiting(&self, token: &str, now: DateTime<Utc>) -> Result<Option<Waiting>>;

    /// Confirms the sign-up `token`, once: its subscriber becomes active
    /// with the name and topics given here (`None`: those the sign-up asked
    /// for), and every confirmation link of the address dies with it.
    fn confirm_subscription(
        &self,
        token: &str,
        name: Option<Option<&str>>,
        topics: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Confirmed>;

    /// Deletes expired sign-ups, and the `pending` subscribers left with no
    /// live sign-up once `expires` has passed since they were added.
    /// Returns how many subscribers were deleted. Waits only a moment for
    /// the database: when another process holds it, nothing is purged now
    /// (serve must not stall on it; the next call purges).
    fn purge_pending(&self, now: DateTime<Utc>, expires: chrono::Duration) -> Result<usize>;

    /// Counts a sign-up from the client network `network`, unless `limit`
    /// were counted in the hour before `now`: false when that hour's
    /// allowance is spent. The counts live in the database, so they hold
    /// across `serve` processes, hosts and restarts; counts an hour old are
    /// forgotten. Waits only a moment for the database.
    fn count_sign_up(&self, network: &str, limit: u32, now: DateTime<Utc>) -> Result<bool>;
}

impl SignUps for Sqlite {
    #[allow(clippy::too_many_arguments)]
    fn request_subscription(
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
                        Sqlite::subscriber_from_row,
                    )
                    .optional()?;
                match existing.as_ref().map(|s| s.status) {
                    Some(Status::Active) => return Ok(SignUp::AlreadyActive),
                    Some(status @ (Status::Bounced | Status::Complained))
                        if asker == Asker::Public =>
                    {
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
                            Sqlite::subscriber_from_row,
                        )?
                    }
                };
                let token = random_token();
                self.conn.execute(
                    "INSERT INTO signups (email, token_hash, name, topics, asker, created_at, expires_at, next_attempt_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        email,
                        token_hash(&token),
                        name,
                        topics,
                        asker.as_str(),
                        ts(now),
                        ts(now + expires),
                        ts(now + FIRST_TRY)
                    ],
                )?;
                Ok(SignUp::Confirm {
                    token,
                    subscriber: Box::new(subscriber),
                })
            })
        })
    }

    fn forget_sign_up(&self, token: &str) -> Result<()> {
        self.conn
            .execute(
                "DELETE FROM signups WHERE token_hash = ?1",
                [token_hash(token)],
            )
            .map(drop)
            .map_err(self.err("forgetting a sign-up"))
    }

    fn sign_up_mailed(&self, token: &str, sent: bool, now: DateTime<Utc>) -> Result<()> {
        let hash = token_hash(token);
        let done = if sent {
            self.conn.execute(
                "UPDATE signups SET mailed_at = ?2 WHERE token_hash = ?1",
                params![hash, ts(now)],
            )
        } else {
            let attempts: Option<u32> = self
                .conn
                .query_row(
                    "SELECT attempts FROM signups WHERE token_hash = ?1",
                    [&hash],
                    |r| r.get(0),
                )
                .optional()
                .map_err(self.err("recording a confirmation mail"))?;
            let attempts = attempts.unwrap_or(0) + 1;
            self.conn.execute(
                "UPDATE signups SET attempts = ?2, next_attempt_at = ?3 WHERE token_hash = ?1",
                params![hash, attempts, ts(now + retry_after(attempts))],
            )
        };
        done.map(drop)
            .map_err(self.err("recording a confirmation mail"))
    }

    fn sign_ups_to_mail_again(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(String, Subscriber)>> {
        self.with_short_wait(std::time::Duration::from_millis(200), || {
            self.immediate("trying confirmation mails again", |_| {
                let due: Vec<(i64, String)> = {
                    let mut stmt = self.conn.prepare(
                        "SELECT id, email FROM signups WHERE mailed_at IS NULL AND next_attempt_at <= ?1 AND expires_at > ?1
                         ORDER BY next_attempt_at LIMIT ?2",
                    )?;
                    let rows = stmt.query_map(params![ts(now), limit as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?;
                    rows.collect::<rusqlite::Result<_>>()?
                };
                let mut out = Vec::with_capacity(due.len());
                for (id, email) in due {
                    let Some(subscriber) = self
                        .conn
                        .query_row(
                            "SELECT * FROM subscribers WHERE email = ?1",
                            [&email],
                            Sqlite::subscriber_from_row,
                        )
                        .optional()?
                    else {
                        self.conn.execute("DELETE FROM signups WHERE id = ?1", [id])?;
                        continue;
                    };
                    let token = random_token();
                    self.conn.execute(
                        "UPDATE signups SET token_hash = ?2, next_attempt_at = ?3 WHERE id = ?1",
                        params![id, token_hash(&token), ts(now + FIRST_TRY)],
                    )?;
                    out.push((token, subscriber));
                }
                Ok(out)
            })
        })
    }

    fn sign_up_waiting(&self, token: &str, now: DateTime<Utc>) -> Result<Option<Waiting>> {
        self.waiting(token, now)
            .map(|w| w.map(|(waiting, _)| waiting))
            .map_err(self.err("reading a sign-up"))
    }

    fn confirm_subscription(
        &self,
        token: &str,
        name: Option<Option<&str>>,
        topics: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Confirmed> {
        self.with_short_wait(VISITOR_WAIT, || {
            self.immediate("confirming a subscription", |store| {
                let Some((waiting, _)) = store.waiting(token, now)? else {
                    return Ok(Confirmed::Unknown);
                };
                let name = name.unwrap_or(waiting.name.as_deref());
                let topics = topics.unwrap_or(&waiting.topics);
                let updated = store.conn.execute(
                    "UPDATE subscribers SET status = 'active', name = ?2, topics = ?3, soft_bounces = 0, updated_at = ?4, welcome_due_at = ?4 WHERE email = ?1",
                    params![waiting.email, name, topics, ts(now)],
                )?;
                if updated == 0 {
                    // Deleted by an operator since: the owner asked again.
                    let unsubscribe = random_token();
                    store.conn.execute(
                        "INSERT INTO subscribers (email, name, status, topics, topics_only, token, token_hash, bounce_token, created_at, updated_at, welcome_due_at)
                         VALUES (?1, ?2, 'active', ?3, 0, ?4, ?5, ?6, ?7, ?7, ?7)",
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

    fn purge_pending(&self, now: DateTime<Utc>, expires: chrono::Duration) -> Result<usize> {
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
        purged_now(purged)
    }
    fn count_sign_up(&self, network: &str, limit: u32, now: DateTime<Utc>) -> Result<bool> {
        let hour_ago = ts(now - chrono::Duration::hours(1));
        self.with_short_wait(std::time::Duration::ZERO, || {
            self.immediate("counting a sign-up", |store| {
                store
                    .conn
                    .execute("DELETE FROM signup_hits WHERE at <= ?1", [&hour_ago])?;
                let n: i64 = store.conn.query_row(
                    "SELECT COUNT(*) FROM signup_hits WHERE network = ?1",
                    [network],
                    |r| r.get(0),
                )?;
                if n >= i64::from(limit) {
                    return Ok(false);
                }
                store.conn.execute(
                    "INSERT INTO signup_hits (network, at) VALUES (?1, ?2)",
                    params![network, ts(now)],
                )?;
                Ok(true)
            })
        })
    }
}

/// What a purge did, as both backends report it: a busy database purges
/// nothing now (the next call does), and is no error.
pub(super) fn purged_now(purged: Result<usize>) -> Result<usize> {
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

impl Sqlite {
    /// A live sign-up and who asked for it. One from the public form whose
    /// address has bounced or complained since is dead.
    fn waiting(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> rusqlite::Result<Option<(Waiting, Asker)>> {
        let found = self
            .conn
            .query_row(
                "SELECT g.email, g.name, g.topics, g.asker, s.status FROM signups g
                 LEFT JOIN subscribers s ON s.email = g.email
                 WHERE g.token_hash = ?1 AND g.expires_at > ?2",
                params![token_hash(token), ts(now)],
                |r| {
                    Ok((
                        Waiting {
                            email: r.get(0)?,
                            name: r.get(1)?,
                            topics: r.get(2)?,
                        },
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                },
            )
            .optional()?;
        Ok(found.and_then(|(waiting, asker, status)| {
            let asker = if asker == Asker::Operator.as_str() {
                Asker::Operator
            } else {
                Asker::Public
            };
            let blocked = matches!(
                status.as_deref().and_then(Status::from_name),
                Some(Status::Bounced | Status::Complained)
            );
            (asker == Asker::Operator || !blocked).then_some((waiting, asker))
        }))
    }
}

#[cfg(test)]
mod hosts;
#[cfg(test)]
mod tests;
