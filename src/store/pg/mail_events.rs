//! Bounces, complaints and unsubscribe mail on PostgreSQL (the interface
//! and its rules: `../mail_events.rs`).
//!
//! What differs from SQLite, and why:
//! - SQLite makes "the first import of a message wins" atomic with its
//!   write lock (`BEGIN IMMEDIATE`): nothing can come between the check of
//!   `mail_processed` and the change. Here several hosts import at once,
//!   so `apply_mail_event` first *claims* the message: it inserts its key
//!   into `mail_processed` (`ON CONFLICT DO NOTHING`) and goes on only if
//!   the row is its own. An import of the same key at the same moment
//!   waits on the key's unique index until the first commits, then finds
//!   the key there (`Duplicate`); if the first rolls back, the second
//!   applies the message. The key is recorded first rather than last (as
//!   SQLite does): the same row, in the same transaction.
//! - Then the subscriber's row is read `FOR NO KEY UPDATE`: two different
//!   messages about one subscriber (a soft bounce and a delivery report,
//!   imported on two hosts) take turns on its counts, the second starting
//!   from what the first wrote, instead of one overwriting the other.
//! - `subscriber_by_message_id` reads the delivery, its edition and its
//!   subscriber in one statement (SQLite: two), the first match only, as
//!   SQLite's `query_row` takes the first.
//! - Edition dates are compared bytewise (`COLLATE "C"`), as SQLite
//!   compares text, whatever the database's own collation.

use chrono::{DateTime, Utc};

use super::subscribers::COLUMNS;
use super::Postgres;
use crate::store::mail_events::Change;
use crate::store::{ts, Applied, MailEvent, MailEvents, Result, Subscriber};

impl MailEvents for Postgres {
    fn mail_processed(&self, key: &str) -> Result<bool> {
        Ok(self
            .client()
            .query_opt("SELECT 1 FROM mail_processed WHERE key = $1", &[&key])
            .map_err(self.err("reading the processed mail"))?
            .is_some())
    }

    fn subscriber_by_bounce_token(&self, bounce_token: &str) -> Result<Option<Subscriber>> {
        self.subscriber_where("s.bounce_token = $1", &bounce_token.to_ascii_lowercase())
    }

    fn subscriber_by_message_id(&self, message_id: &str) -> Result<Option<(Subscriber, String)>> {
        let row = self
            .client()
            .query_opt(
                format!(
                    "SELECT e.date, {COLUMNS} FROM deliveries d
                       JOIN editions e ON e.id = d.edition_id
                       JOIN subscribers s ON s.id = d.subscriber_id
                      WHERE d.message_id = $1
                      LIMIT 1"
                )
                .as_str(),
                &[&message_id],
            )
            .map_err(self.err("finding a delivery by Message-ID"))?;
        row.map(|r| Ok((Postgres::subscriber_from_row(&r)?, r.try_get("date")?)))
            .transpose()
            .map_err(self.err("finding a subscriber"))
    }

    fn last_sent_edition(&self, id: i64) -> Result<Option<String>> {
        Ok(self
            .client()
            .query_one(
                "SELECT MAX(e.date COLLATE \"C\") FROM deliveries d JOIN editions e ON e.id = d.edition_id
                  WHERE d.subscriber_id = $1 AND d.state = 'sent'",
                &[&id],
            )
            .map_err(self.err("reading the delivery log"))?
            .get(0))
    }

    fn apply_mail_event(
        &self,
        key: &str,
        id: i64,
        event: &MailEvent,
        now: DateTime<Utc>,
    ) -> Result<Applied> {
        self.transaction("recording a bounce or complaint", |tx| {
            apply(tx, key, id, event, now)
        })
    }

    fn record_mail_processed(&self, key: &str, outcome: &str, now: DateTime<Utc>) -> Result<bool> {
        self.client()
            .execute(
                "INSERT INTO mail_processed (key, at, outcome) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO NOTHING",
                &[&key, &ts(now), &outcome],
            )
            .map(|n| n == 1)
            .map_err(self.err("recording processed mail"))
    }
}

/// `apply_mail_event` in its transaction (see the module's comment for
/// the locking; the rules are SQLite's, one for one).
fn apply(
    tx: &mut postgres::Transaction<'_>,
    key: &str,
    id: i64,
    event: &MailEvent,
    now: DateTime<Utc>,
) -> std::result::Result<Applied, postgres::Error> {
    let at = ts(now);
    // The claim: only the import that records the key applies it.
    let claimed = tx.execute(
        "INSERT INTO mail_processed (key, at, outcome) VALUES ($1, $2, $3)
         ON CONFLICT (key) DO NOTHING",
        &[&key, &at, &event.kind()],
    )?;
    if claimed == 0 {
        return Ok(Applied::Duplicate);
    }
    let row = tx.query_one(
        format!("SELECT {COLUMNS}, s.last_soft_key FROM subscribers s WHERE s.id = $1 FOR NO KEY UPDATE")
            .as_str(),
        &[&id],
    )?;
    let sub = Postgres::subscriber_from_row(&row)?;
    let last_soft_key: Option<String> = row.try_get("last_soft_key")?;
    let change = event.change(&sub, last_soft_key, |last, date| {
        // An edition sent between the two that drew no bounce was
        // delivered: the run is broken.
        let n: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM deliveries d JOIN editions e ON e.id = d.edition_id
                  WHERE d.subscriber_id = $1 AND d.state = 'sent'
                    AND e.date > $2 COLLATE \"C\" AND e.date < $3 COLLATE \"C\"",
                &[&id, &last, &date],
            )?
            .get(0);
        Ok::<_, postgres::Error>(n > 0)
    })?;
    let Change {
        after,
        soft,
        soft_key,
        bounces,
        last_bounce,
        detail,
        bounced_now,
    } = change;
    let before = sub.status;
    tx.execute(
        "UPDATE subscribers SET status = $2, soft_bounces = $3, last_soft_key = $4, bounces = $5, last_bounce = $6,
             last_bounce_at = CASE WHEN $7::BOOLEAN THEN $8 ELSE last_bounce_at END,
             updated_at = CASE WHEN $9::BOOLEAN THEN $8 ELSE updated_at END
         WHERE id = $1",
        &[
            &id,
            &after.as_str(),
            &i64::from(soft),
            &soft_key,
            &i64::from(bounces),
            &last_bounce,
            &bounced_now,
            &at,
            &(after != before),
        ],
    )?;
    tx.execute(
        "INSERT INTO mail_events (at, subscriber_id, kind, detail) VALUES ($1, $2, $3, $4)",
        &[&at, &id, &event.kind(), &detail],
    )?;
    Ok(Applied::Done {
        before,
        after,
        soft_bounces: soft,
    })
}
