//! Sign-ups waiting for confirmation on PostgreSQL (the interface and the
//! SQLite implementation: `../signups.rs`). The statements are SQLite's;
//! what differs is how a check and the change it allows are kept together.
//!
//! SQLite takes the file's write lock (`BEGIN IMMEDIATE`) for each of them;
//! here several hosts share the tables, so each runs in one transaction
//! that locks the rows it checks before checking them, `FOR NO KEY UPDATE`
//! (which a delivery being planned, holding the row for its foreign key,
//! does not block: a sign-up during a send is never kept waiting):
//! - a sign-up locks its address's subscriber row, so two hosts asked for
//!   the same address at once mail it once (the second finds the first's
//!   sign-up: `TooSoon`). A new address has no row to lock: the insert
//!   meets the other's (`ON CONFLICT DO NOTHING`, after waiting for it),
//!   and the checks are made again under its lock;
//! - a confirmation locks the subscriber row, then every sign-up of the
//!   address (in order), and only then reads its own: it is used once,
//!   whoever clicks at the same time, and its address cannot bounce or be
//!   purged in between;
//! - tries again take their sign-ups `FOR UPDATE SKIP LOCKED`: two hosts
//!   share the due ones, and none is mailed twice;
//! - the purge locks the pending subscribers it means to delete, then
//!   checks again that none has a sign-up (one being recorded now holds
//!   that lock until it commits).
//!
//! SQLite's short wait for a busy file (`with_short_wait`) is a short
//! `lock_timeout` here: a visitor waits a moment for a row another host
//! holds, then gets `Busy`, as from SQLite; the purge then does nothing
//! until next time, as on SQLite.

use chrono::{DateTime, Utc};
use postgres::GenericClient;

use super::subscribers::COLUMNS;
use super::Postgres;
use crate::store::signups::{purged_now, retry_after, COUNT_WAIT, FIRST_TRY};
use crate::store::subscribers::VISITOR_WAIT;
use crate::store::{
    bounce_token, random_token, token_hash, ts, Asker, Confirmed, ErrorKind, Result, SignUp,
    SignUps, Status, StoreError, Subscriber, Waiting,
};

/// How long the background tasks (tries again, the purge) wait for a row
/// another host holds: SQLite's short wait for them.
const BACKGROUND_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// How many times a sign-up for a new address checks again after its
/// insert met another host's (each time the other's row is there to lock).
const TRIES: usize = 3;

/// Waits at most `wait` for a lock in the rest of this transaction; longer
/// is `Busy` (`lock_not_available`).
pub(super) fn short_wait(
    tx: &mut postgres::Transaction<'_>,
    wait: std::time::Duration,
) -> std::result::Result<(), postgres::Error> {
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '{}ms'",
        wait.as_millis().max(1)
    ))
}

/// A live sign-up and who asked for it. One from the public form whose
/// address has bounced or complained since is dead (SQLite's
/// `Sqlite::waiting`).
fn waiting(
    c: &mut impl GenericClient,
    token: &str,
    now: DateTime<Utc>,
) -> std::result::Result<Option<(Waiting, Asker)>, postgres::Error> {
    let found = c.query_opt(
        "SELECT g.email, g.name, g.topics, g.asker, s.status FROM signups g
         LEFT JOIN subscribers s ON lower(s.email) = lower(g.email)
         WHERE g.token_hash = $1 AND g.expires_at > $2",
        &[&token_hash(token), &ts(now)],
    )?;
    let Some(r) = found else {
        return Ok(None);
    };
    let waiting = Waiting {
        email: r.try_get(0)?,
        name: r.try_get(1)?,
        topics: r.try_get(2)?,
    };
    let asker = if r.try_get::<_, &str>(3)? == Asker::Operator.as_str() {
        Asker::Operator
    } else {
        Asker::Public
    };
    let blocked = matches!(
        r.try_get::<_, Option<&str>>(4)?.and_then(Status::from_name),
        Some(Status::Bounced | Status::Complained)
    );
    Ok((asker == Asker::Operator || !blocked).then_some((waiting, asker)))
}

impl SignUps for Postgres {
    /// The address's subscriber row is locked from the checks to the
    /// commit (see the module's comment).
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
        let recorded = self.transaction("recording a sign-up", |tx| {
            short_wait(tx, VISITOR_WAIT)?;
            let find = format!(
                "SELECT {COLUMNS} FROM subscribers s WHERE lower(s.email) = lower($1) FOR NO KEY UPDATE"
            );
            let insert = format!(
                "INSERT INTO subscribers AS s (email, status, topics, topics_only, token, token_hash, bounce_token, created_at, updated_at)
                 VALUES ($1, 'pending', '', 0, $2, $3, $4, $5, $5)
                 ON CONFLICT ((lower(email))) DO NOTHING
                 RETURNING {COLUMNS}"
            );
            for _ in 0..TRIES {
                let existing = tx
                    .query_opt(find.as_str(), &[&email])?
                    .map(|r| Postgres::subscriber_from_row(&r))
                    .transpose()?;
                match existing.as_ref().map(|s| s.status) {
                    Some(Status::Active) => return Ok(Some(SignUp::AlreadyActive)),
                    Some(status @ (Status::Bounced | Status::Complained))
                        if asker == Asker::Public =>
                    {
                        return Ok(Some(SignUp::Refused(status)))
                    }
                    _ => {}
                }
                let last: Option<String> = tx
                    .query_one(
                        "SELECT MAX(created_at) FROM signups WHERE lower(email) = lower($1)",
                        &[&email],
                    )?
                    .try_get(0)?;
                let recent = last
                    .as_deref()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .is_some_and(|t| now.signed_duration_since(t) < min_interval);
                if recent {
                    return Ok(Some(SignUp::TooSoon));
                }
                let subscriber = match existing {
                    Some(s) => s,
                    None => {
                        let unsubscribe = random_token();
                        let added = tx.query_opt(
                            insert.as_str(),
                            &[
                                &email,
                                &unsubscribe,
                                &token_hash(&unsubscribe),
                                &bounce_token(&unsubscribe),
                                &ts(now),
                            ],
                        )?;
                        match added {
                            Some(r) => Postgres::subscriber_from_row(&r)?,
                            // Another host added the address at the same
                            // time (and has committed): check again, under
                            // the lock of its row.
                            None => continue,
                        }
                    }
                };
                let token = random_token();
                tx.execute(
                    "INSERT INTO signups (email, token_hash, name, topics, asker, created_at, expires_at, next_attempt_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[
                        &email,
                        &token_hash(&token),
                        &name,
                        &topics,
                        &asker.as_str(),
                        &ts(now),
                        &ts(now + expires),
                        &ts(now + FIRST_TRY),
                    ],
                )?;
                return Ok(Some(SignUp::Confirm {
                    token,
                    subscriber: Box::new(subscriber),
                }));
            }
            Ok(None)
        })?;
        recorded.ok_or_else(|| StoreError {
            path: self.location.clone(),
            context: "recording a sign-up".into(),
            kind: ErrorKind::Busy,
            source: format!("the address was added and removed {TRIES} times meanwhile").into(),
        })
    }

    fn forget_sign_up(&self, token: &str) -> Result<()> {
        self.client()
            .execute(
                "DELETE FROM signups WHERE token_hash = $1",
                &[&token_hash(token)],
            )
            .map(drop)
            .map_err(self.err("forgetting a sign-up"))
    }

    /// A failure's count is read and raised with the sign-up locked.
    fn sign_up_mailed(&self, token: &str, sent: bool, now: DateTime<Utc>) -> Result<()> {
        let hash = token_hash(token);
        if sent {
            return self
                .client()
                .execute(
                    "UPDATE signups SET mailed_at = $2 WHERE token_hash = $1",
                    &[&hash, &ts(now)],
                )
                .map(drop)
                .map_err(self.err("recording a confirmation mail"));
        }
        self.transaction("recording a confirmation mail", |tx| {
            let attempts: Option<i64> = tx
                .query_opt(
                    "SELECT attempts FROM signups WHERE token_hash = $1 FOR UPDATE",
                    &[&hash],
                )?
                .map(|r| r.try_get(0))
                .transpose()?;
            let attempts = attempts.unwrap_or(0).clamp(0, u32::MAX as i64 - 1) as u32 + 1;
            tx.execute(
                "UPDATE signups SET attempts = $2, next_attempt_at = $3 WHERE token_hash = $1",
                &[
                    &hash,
                    &i64::from(attempts),
                    &ts(now + retry_after(attempts)),
                ],
            )
            .map(drop)
        })
    }

    /// The due sign-ups are taken `FOR UPDATE SKIP LOCKED`: hosts trying
    /// at once share them (see the module's comment).
    fn sign_ups_to_mail_again(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(String, Subscriber)>> {
        self.transaction("trying confirmation mails again", |tx| {
            short_wait(tx, BACKGROUND_WAIT)?;
            let due = tx.query(
                "SELECT id, email FROM signups WHERE mailed_at IS NULL AND next_attempt_at <= $1 AND expires_at > $1
                 ORDER BY next_attempt_at LIMIT $2
                 FOR UPDATE SKIP LOCKED",
                &[&ts(now), &i64::try_from(limit).unwrap_or(i64::MAX)],
            )?;
            let find = format!("SELECT {COLUMNS} FROM subscribers s WHERE lower(s.email) = lower($1)");
            let mut out = Vec::with_capacity(due.len());
            for row in due {
                let id: i64 = row.try_get(0)?;
                let email: String = row.try_get(1)?;
                let Some(subscriber) = tx
                    .query_opt(find.as_str(), &[&email])?
                    .map(|r| Postgres::subscriber_from_row(&r))
                    .transpose()?
                else {
                    tx.execute("DELETE FROM signups WHERE id = $1", &[&id])?;
                    continue;
                };
                let token = random_token();
                tx.execute(
                    "UPDATE signups SET token_hash = $2, next_attempt_at = $3 WHERE id = $1",
                    &[&id, &token_hash(&token), &ts(now + FIRST_TRY)],
                )?;
                out.push((token, subscriber));
            }
            Ok(out)
        })
    }

    fn sign_up_waiting(&self, token: &str, now: DateTime<Utc>) -> Result<Option<Waiting>> {
        waiting(&mut *self.client(), token, now)
            .map(|w| w.map(|(waiting, _)| waiting))
            .map_err(self.err("reading a sign-up"))
    }

    /// The subscriber row, then every sign-up of the address, are locked
    /// before the sign-up is read (see the module's comment).
    fn confirm_subscription(
        &self,
        token: &str,
        name: Option<Option<&str>>,
        topics: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Confirmed> {
        self.transaction("confirming a subscription", |tx| {
            short_wait(tx, VISITOR_WAIT)?;
            // Whose it is, to lock the address first.
            let Some(email) = tx
                .query_opt(
                    "SELECT email FROM signups WHERE token_hash = $1 AND expires_at > $2",
                    &[&token_hash(token), &ts(now)],
                )?
                .map(|r| r.try_get::<_, String>(0))
                .transpose()?
            else {
                return Ok(Confirmed::Unknown);
            };
            tx.query(
                "SELECT 1 FROM subscribers WHERE lower(email) = lower($1) FOR NO KEY UPDATE",
                &[&email],
            )?;
            tx.query(
                "SELECT 1 FROM signups WHERE lower(email) = lower($1) ORDER BY id FOR UPDATE",
                &[&email],
            )?;
            // Read again under the locks: used or gone meanwhile is unknown.
            let Some((waiting, _)) = waiting(tx, token, now)? else {
                return Ok(Confirmed::Unknown);
            };
            let name = name.unwrap_or(waiting.name.as_deref());
            let topics = topics.unwrap_or(&waiting.topics);
            let updated = tx.execute(
                "UPDATE subscribers SET status = 'active', name = $2, topics = $3, soft_bounces = 0, updated_at = $4, welcome_due_at = $4
                  WHERE lower(email) = lower($1)",
                &[&waiting.email, &name, &topics, &ts(now)],
            )?;
            if updated == 0 {
                // Deleted by an operator since: the owner asked again.
                let unsubscribe = random_token();
                tx.execute(
                    "INSERT INTO subscribers (email, name, status, topics, topics_only, token, token_hash, bounce_token, created_at, updated_at, welcome_due_at)
                     VALUES ($1, $2, 'active', $3, 0, $4, $5, $6, $7, $7, $7)",
                    &[
                        &waiting.email,
                        &name,
                        &topics,
                        &unsubscribe,
                        &token_hash(&unsubscribe),
                        &bounce_token(&unsubscribe),
                        &ts(now),
                    ],
                )?;
            }
            tx.execute(
                "DELETE FROM signups WHERE lower(email) = lower($1)",
                &[&waiting.email],
            )?;
            Ok(Confirmed::Activated)
        })
    }

    /// The pending subscribers to delete are locked, then checked again
    /// (see the module's comment).
    fn purge_pending(&self, now: DateTime<Utc>, expires: chrono::Duration) -> Result<usize> {
        let cutoff = ts(now - expires);
        let purged = self.transaction("purging unconfirmed sign-ups", |tx| {
            short_wait(tx, BACKGROUND_WAIT)?;
            tx.execute("DELETE FROM signups WHERE expires_at <= $1", &[&ts(now)])?;
            const UNCONFIRMED: &str = "s.status = 'pending' AND s.created_at < $1
                AND NOT EXISTS (SELECT 1 FROM signups g WHERE lower(g.email) = lower(s.email))";
            let ids: Vec<i64> = tx
                .query(
                    format!("SELECT s.id FROM subscribers s WHERE {UNCONFIRMED} ORDER BY s.id FOR UPDATE OF s")
                        .as_str(),
                    &[&cutoff],
                )?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<std::result::Result<_, _>>()?;
            if ids.is_empty() {
                return Ok(0);
            }
            // A new statement sees what committed while it waited for the
            // locks: a sign-up recorded meanwhile keeps its subscriber.
            tx.execute(
                format!("DELETE FROM subscribers s WHERE s.id = ANY($2) AND {UNCONFIRMED}").as_str(),
                &[&cutoff, &ids],
            )
        });
        purged_now(purged.map(|n| n as usize))
    }

    /// Under a transaction-level advisory lock on the network, so two hosts
    /// counting one client's sign-ups at once take turns.
    fn count_sign_up(&self, network: &str, limit: u32, now: DateTime<Utc>) -> Result<bool> {
        let hour_ago = ts(now - chrono::Duration::hours(1));
        self.transaction("counting a sign-up", |tx| {
            short_wait(tx, COUNT_WAIT)?;
            tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&network])?;
            tx.execute("DELETE FROM signup_hits WHERE at <= $1", &[&hour_ago])?;
            let n: i64 = tx
                .query_one(
                    "SELECT COUNT(*) FROM signup_hits WHERE network = $1",
                    &[&network],
                )?
                .get(0);
            if n >= i64::from(limit) {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO signup_hits (network, at) VALUES ($1, $2)",
                &[&network, &ts(now)],
            )?;
            Ok(true)
        })
    }
}
