//! Deliveries: one row per (edition, subscriber), the state machine that
//! makes every send exactly once. Each change is its own transaction.

use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;

use super::{ts, Result, Store, Subscriber};

/// The state of one (edition, subscriber) delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    Pending,
    Sending,
    Sent,
    Failed,
    Retry,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Sending => "sending",
            DeliveryState::Sent => "sent",
            DeliveryState::Failed => "failed",
            DeliveryState::Retry => "retry",
        }
    }

    fn parse(s: &str) -> DeliveryState {
        match s {
            "sending" => DeliveryState::Sending,
            "sent" => DeliveryState::Sent,
            "failed" => DeliveryState::Failed,
            "retry" => DeliveryState::Retry,
            _ => DeliveryState::Pending,
        }
    }
}

/// One delivery: an edition to a subscriber.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub edition_id: i64,
    pub subscriber: Subscriber,
    pub state: DeliveryState,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub message_id: String,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Creates a pending delivery for every active subscriber who has none
    /// for this edition yet. Returns how many were created.
    pub fn plan_deliveries(
        &self,
        edition_id: i64,
        message_id: impl Fn(&Subscriber) -> String,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let missing: Vec<Subscriber> = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT s.* FROM subscribers s WHERE s.status = 'active' AND NOT EXISTS
                     (SELECT 1 FROM deliveries d WHERE d.edition_id = ?1 AND d.subscriber_id = s.id) ORDER BY s.id",
                )
                .map_err(self.err("planning deliveries"))?;
            let rows = stmt
                .query_map([edition_id], Self::subscriber_from_row)
                .map_err(self.err("planning deliveries"))?;
            rows.collect::<rusqlite::Result<_>>()
                .map_err(self.err("planning deliveries"))?
        };
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(self.err("planning deliveries"))?;
        {
            let mut insert = tx
                .prepare(
                    "INSERT OR IGNORE INTO deliveries (edition_id, subscriber_id, state, message_id, created_at, updated_at)
                     VALUES (?1, ?2, 'pending', ?3, ?4, ?4)",
                )
                .map_err(self.err("planning deliveries"))?;
            for s in &missing {
                insert
                    .execute(params![edition_id, s.id, message_id(s), ts(now)])
                    .map_err(self.err("planning deliveries"))?;
            }
        }
        tx.commit().map_err(self.err("planning deliveries"))?;
        Ok(missing.len())
    }

    /// Deliveries of an edition in the given states, by subscriber id,
    /// leaving out subscribers who are no longer active.
    pub fn deliveries(&self, edition_id: i64, states: &[DeliveryState]) -> Result<Vec<Delivery>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT d.state, d.attempts, d.last_error, d.message_id, d.next_attempt_at, s.*
                 FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
                 WHERE d.edition_id = ?1 AND s.status = 'active' ORDER BY s.id",
            )
            .map_err(self.err("reading deliveries"))?;
        let rows = stmt
            .query_map([edition_id], |r| {
                Ok(Delivery {
                    edition_id,
                    state: DeliveryState::parse(&r.get::<_, String>(0)?),
                    attempts: r.get(1)?,
                    last_error: r.get(2)?,
                    message_id: r.get(3)?,
                    next_attempt_at: r
                        .get::<_, Option<String>>(4)?
                        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                        .map(|t| t.with_timezone(&Utc)),
                    subscriber: Self::subscriber_from_row(r)?,
                })
            })
            .map_err(self.err("reading deliveries"))?;
        let all: Vec<Delivery> = rows
            .collect::<rusqlite::Result<_>>()
            .map_err(self.err("reading deliveries"))?;
        Ok(all
            .into_iter()
            .filter(|d| states.contains(&d.state))
            .collect())
    }

    /// Counts of an edition's deliveries by state.
    pub fn delivery_counts(&self, edition_id: i64) -> Result<Vec<(DeliveryState, usize)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT state, COUNT(*) FROM deliveries WHERE edition_id = ?1 GROUP BY state ORDER BY state")
            .map_err(self.err("counting deliveries"))?;
        let rows = stmt
            .query_map([edition_id], |r| {
                Ok((
                    DeliveryState::parse(&r.get::<_, String>(0)?),
                    r.get::<_, i64>(1)? as usize,
                ))
            })
            .map_err(self.err("counting deliveries"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.err("counting deliveries"))
    }

    /// Marks a delivery as being sent, in its own transaction, before the
    /// message leaves: a crash after this point is recognised by the next run.
    pub fn mark_sending(
        &self,
        edition_id: i64,
        subscriber_id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        // Only a delivery that is still open, to a subscriber who is still
        // active: someone who unsubscribed mid-run gets nothing more.
        let n = self
            .conn
            .execute(
                "UPDATE deliveries SET state = 'sending', attempts = attempts + 1, updated_at = ?3
                 WHERE edition_id = ?1 AND subscriber_id = ?2 AND state IN ('pending', 'retry', 'sending')
                 AND subscriber_id IN (SELECT id FROM subscribers WHERE status = 'active')",
                params![edition_id, subscriber_id, ts(now)],
            )
            .map_err(self.err("recording a delivery"))?;
        Ok(n > 0)
    }

    /// Records the outcome of a send attempt.
    pub fn mark_done(
        &self,
        edition_id: i64,
        subscriber_id: i64,
        state: DeliveryState,
        error: Option<&str>,
        next_attempt_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let sent_at = (state == DeliveryState::Sent).then(|| ts(now));
        self.conn
            .execute(
                "UPDATE deliveries SET state = ?3, last_error = ?4, next_attempt_at = ?5, updated_at = ?6, sent_at = COALESCE(?7, sent_at)
                 WHERE edition_id = ?1 AND subscriber_id = ?2",
                params![edition_id, subscriber_id, state.as_str(), error, next_attempt_at.map(ts), ts(now), sent_at],
            )
            .map_err(self.err("recording a delivery"))?;
        Ok(())
    }
}
