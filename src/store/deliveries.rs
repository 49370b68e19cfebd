//! Deliveries: one row per (edition, subscriber), the state machine that
//! makes every send exactly once. Each change is its own transaction.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{ts, Result, Sqlite, Subscriber};

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

    pub(super) fn parse(s: &str) -> DeliveryState {
        match s {
            "sending" => DeliveryState::Sending,
            "sent" => DeliveryState::Sent,
            "failed" => DeliveryState::Failed,
            "retry" => DeliveryState::Retry,
            _ => DeliveryState::Pending,
        }
    }
}

/// What names each planned message: `(subscriber id, their token)` to
/// its Message-ID.
pub type MessageIds = Box<dyn Fn(i64, &str) -> String + Send>;

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

/// Open deliveries of active subscribers after a subscriber id, in id
/// order: one index range per open state (`deliveries_state`: edition,
/// state, subscriber), merged. `CROSS JOIN` keeps the deliveries index as
/// the outer loop (the subscriber is a primary-key lookup), so a page costs
/// its own size, whatever the list's.
pub(super) const OPEN_PAGE: &str = "
    SELECT d.subscriber_id AS sid, d.state, d.attempts, d.last_error, d.message_id, d.next_attempt_at, s.*
      FROM deliveries d CROSS JOIN subscribers s ON s.id = d.subscriber_id
     WHERE d.edition_id = ?1 AND d.state = 'sending' AND d.subscriber_id > ?2 AND s.status = 'active'
    UNION ALL
    SELECT d.subscriber_id AS sid, d.state, d.attempts, d.last_error, d.message_id, d.next_attempt_at, s.*
      FROM deliveries d CROSS JOIN subscribers s ON s.id = d.subscriber_id
     WHERE d.edition_id = ?1 AND d.state = 'retry' AND d.subscriber_id > ?2 AND s.status = 'active'
    UNION ALL
    SELECT d.subscriber_id AS sid, d.state, d.attempts, d.last_error, d.message_id, d.next_attempt_at, s.*
      FROM deliveries d CROSS JOIN subscribers s ON s.id = d.subscriber_id
     WHERE d.edition_id = ?1 AND d.state = 'pending' AND d.subscriber_id > ?2 AND s.status = 'active'
    ORDER BY sid LIMIT ?3";

/// Open deliveries of active subscribers, by state: only the open entries
/// of the state index are visited.
pub(super) const OPEN_COUNTS: &str = "
    SELECT d.state, COUNT(*)
      FROM deliveries d CROSS JOIN subscribers s ON s.id = d.subscriber_id
     WHERE d.edition_id = ?1 AND d.state IN ('pending', 'retry', 'sending') AND s.status = 'active'
     GROUP BY d.state";

/// A pending delivery for every active subscriber who has none yet and has
/// not paused past the edition's date, in one statement; the Message-ID
/// comes from the caller's function.
pub(super) const PLAN: &str = "
    INSERT OR IGNORE INTO deliveries (edition_id, subscriber_id, state, message_id, created_at, updated_at)
    SELECT ?1, s.id, 'pending', digest_message_id(s.id, s.token), ?2, ?2
      FROM subscribers s INDEXED BY subscribers_status
     WHERE s.status = 'active'
       AND (s.paused_until IS NULL OR s.paused_until <= (SELECT e.date FROM editions e WHERE e.id = ?1))
       AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.edition_id = ?1 AND d.subscriber_id = s.id)";

/// Claims a delivery: only one still open, to a subscriber still active
/// (both by primary key).
pub(super) const MARK_SENDING: &str = "
    UPDATE deliveries SET state = 'sending', attempts = attempts + 1, updated_at = ?3
     WHERE edition_id = ?1 AND subscriber_id = ?2 AND state IN ('pending', 'retry', 'sending')
       AND EXISTS (SELECT 1 FROM subscribers s WHERE s.id = deliveries.subscriber_id AND s.status = 'active')";

pub(super) const MARK_DONE: &str = "
    UPDATE deliveries SET state = ?3, last_error = ?4, next_attempt_at = ?5, updated_at = ?6, sent_at = COALESCE(?7, sent_at)
     WHERE edition_id = ?1 AND subscriber_id = ?2";

pub(super) const DELIVERY_COUNTS: &str =
    "SELECT state, COUNT(*) FROM deliveries WHERE edition_id = ?1 GROUP BY state ORDER BY state";

/// The open deliveries of an edition, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenCounts {
    pub pending: usize,
    pub retry: usize,
    /// Left in `sending` by a run that stopped mid-send.
    pub sending: usize,
}

impl OpenCounts {
    pub fn total(&self) -> usize {
        self.pending + self.retry + self.sending
    }
}

fn delivery_from_row(edition_id: i64, r: &rusqlite::Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        edition_id,
        state: DeliveryState::parse(&r.get::<_, String>("state")?),
        attempts: r.get("attempts")?,
        last_error: r.get("last_error")?,
        message_id: r.get("message_id")?,
        next_attempt_at: r
            .get::<_, Option<String>>("next_attempt_at")?
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc)),
        subscriber: Sqlite::subscriber_from_row(r)?,
    })
}

/// The delivery log: one row per (edition, subscriber), the record that
/// makes a re-run after a crash send each subscriber exactly one copy.
/// Every state change is its own transaction.
pub trait Deliveries {
    /// Creates a pending delivery for every active subscriber who has none
    /// for this edition yet, in one set-based statement (nothing is loaded
    /// into memory), if the edition is still at `version`: the check and
    /// the planning are one transaction, so an edit either lands before
    /// (and planning is refused: read the edition again) or is refused
    /// after (sending has started). `message_id(subscriber id, token)`
    /// names each message. Returns how many were created.
    fn plan_deliveries(
        &self,
        edition_id: i64,
        version: i64,
        message_id: MessageIds,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<usize, super::Refused>>;

    /// At most `limit` open deliveries (pending, retry, or left `sending` by
    /// a stopped run) of active subscribers whose id is above `after`, by
    /// subscriber id: the send loop's pages (keyset pagination).
    fn open_deliveries(&self, edition_id: i64, after: i64, limit: usize) -> Result<Vec<Delivery>>;

    /// Like `open_deliveries`, but only what other workers left behind:
    /// open deliveries no live worker holds, not this one's own. A worker
    /// reads them again from the start once its pages run out (one that
    /// stopped left its claims behind this one's pages). None on SQLite,
    /// where one process sends at a time.
    fn left_behind(&self, edition_id: i64, after: i64, limit: usize) -> Result<Vec<Delivery>>;

    /// How many deliveries of active subscribers are open, by state.
    fn open_counts(&self, edition_id: i64) -> Result<OpenCounts>;

    /// Deliveries of an edition in the given states, by subscriber id,
    /// leaving out subscribers who are no longer active. The whole list:
    /// for tests; the send loop pages with `open_deliveries`.
    #[cfg(test)]
    fn deliveries(&self, edition_id: i64, states: &[DeliveryState]) -> Result<Vec<Delivery>>;

    /// Counts of an edition's deliveries by state.
    fn delivery_counts(&self, edition_id: i64) -> Result<Vec<(DeliveryState, usize)>>;

    /// Marks a delivery as being sent, in its own transaction, before the
    /// message leaves: a crash after this point is recognised by the next run.
    /// Only a delivery that is still open, to a subscriber who is still
    /// active: someone who unsubscribed mid-run gets nothing more.
    fn mark_sending(&self, edition_id: i64, subscriber_id: i64, now: DateTime<Utc>)
        -> Result<bool>;

    /// Records the outcome of a send attempt.
    fn mark_done(
        &self,
        edition_id: i64,
        subscriber_id: i64,
        state: DeliveryState,
        error: Option<&str>,
        next_attempt_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<()>;
}

impl Deliveries for Sqlite {
    fn plan_deliveries(
        &self,
        edition_id: i64,
        version: i64,
        message_id: MessageIds,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<usize, super::Refused>> {
        use rusqlite::functions::FunctionFlags;
        self.conn
            .create_scalar_function(
                "digest_message_id",
                2,
                FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
                move |ctx| {
                    let id: i64 = ctx.get(0)?;
                    let token: String = ctx.get(1)?;
                    Ok(message_id(id, &token))
                },
            )
            .map_err(self.err("planning deliveries"))?;
        let planned = self.immediate("planning deliveries", |s| {
            let current: Option<i64> = s
                .conn
                .query_row(
                    "SELECT version FROM editions WHERE id = ?1",
                    [edition_id],
                    |r| r.get(0),
                )
                .optional()?;
            if current != Some(version) {
                return Ok(Err(super::Refused::Changed));
            }
            s.conn.execute(PLAN, params![edition_id, ts(now)]).map(Ok)
        });
        let _ = self.conn.remove_function("digest_message_id", 2);
        planned
    }

    fn open_deliveries(&self, edition_id: i64, after: i64, limit: usize) -> Result<Vec<Delivery>> {
        let mut stmt = self
            .conn
            .prepare_cached(OPEN_PAGE)
            .map_err(self.err("reading deliveries"))?;
        let rows = stmt
            .query_map(params![edition_id, after, limit as i64], |r| {
                delivery_from_row(edition_id, r)
            })
            .map_err(self.err("reading deliveries"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.err("reading deliveries"))
    }

    fn left_behind(&self, _edition_id: i64, _after: i64, _limit: usize) -> Result<Vec<Delivery>> {
        Ok(Vec::new())
    }

    fn open_counts(&self, edition_id: i64) -> Result<OpenCounts> {
        let mut stmt = self
            .conn
            .prepare_cached(OPEN_COUNTS)
            .map_err(self.err("counting deliveries"))?;
        let mut counts = OpenCounts::default();
        let rows = stmt
            .query_map([edition_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as usize))
            })
            .map_err(self.err("counting deliveries"))?;
        for row in rows {
            let (state, n) = row.map_err(self.err("counting deliveries"))?;
            match DeliveryState::parse(&state) {
                DeliveryState::Pending => counts.pending = n,
                DeliveryState::Retry => counts.retry = n,
                DeliveryState::Sending => counts.sending = n,
                _ => {}
            }
        }
        Ok(counts)
    }

    #[cfg(test)]
    fn deliveries(&self, edition_id: i64, states: &[DeliveryState]) -> Result<Vec<Delivery>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT d.state, d.attempts, d.last_error, d.message_id, d.next_attempt_at, s.*
                 FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
                 WHERE d.edition_id = ?1 AND s.status = 'active' ORDER BY s.id",
            )
            .map_err(self.err("reading deliveries"))?;
        let rows = stmt
            .query_map([edition_id], |r| delivery_from_row(edition_id, r))
            .map_err(self.err("reading deliveries"))?;
        let all: Vec<Delivery> = rows
            .collect::<rusqlite::Result<_>>()
            .map_err(self.err("reading deliveries"))?;
        Ok(all
            .into_iter()
            .filter(|d| states.contains(&d.state))
            .collect())
    }

    fn delivery_counts(&self, edition_id: i64) -> Result<Vec<(DeliveryState, usize)>> {
        let mut stmt = self
            .conn
            .prepare_cached(DELIVERY_COUNTS)
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

    fn mark_sending(
        &self,
        edition_id: i64,
        subscriber_id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached(MARK_SENDING)
            .and_then(|mut stmt| stmt.execute(params![edition_id, subscriber_id, ts(now)]))
            .map_err(self.err("recording a delivery"))?;
        Ok(n > 0)
    }

    fn mark_done(
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
            .prepare_cached(MARK_DONE)
            .and_then(|mut stmt| {
                stmt.execute(params![
                    edition_id,
                    subscriber_id,
                    state.as_str(),
                    error,
                    next_attempt_at.map(ts),
                    ts(now),
                    sent_at
                ])
            })
            .map_err(self.err("recording a delivery"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{now, row};
    use crate::store::{subscribers, NewSubscriber, Status};
    use crate::store::{Editions, Subscribers};

    #[test]
    fn delivery_state_machine() {
        for mut s in crate::store::testing::stores() {
            s.add_subscribers(&[row("a@example.com"), row("b@example.com")], now(), false)
                .unwrap();
            let edition = crate::render::sample_edition();
            let e = s.store_edition(edition.date, &edition, now()).unwrap();
            assert_eq!(
                s.plan_deliveries(
                    e.id,
                    e.version,
                    Box::new(|id, _| format!("<{id}@x>")),
                    now()
                )
                .unwrap()
                .unwrap(),
                2
            );
            assert_eq!(
                s.plan_deliveries(
                    e.id,
                    e.version,
                    Box::new(|id, _| format!("<{id}@x>")),
                    now()
                )
                .unwrap()
                .unwrap(),
                0,
                "planned once"
            );
            let pending = s.deliveries(e.id, &[DeliveryState::Pending]).unwrap();
            assert_eq!(pending.len(), 2);
            let a = pending[0].subscriber.id;
            assert!(s.mark_sending(e.id, a, now()).unwrap());
            s.mark_done(e.id, a, DeliveryState::Sent, None, None, now())
                .unwrap();
            let counts = s.delivery_counts(e.id).unwrap();
            assert_eq!(
                counts,
                [(DeliveryState::Pending, 1), (DeliveryState::Sent, 1)]
            );
            let sent = s.deliveries(e.id, &[DeliveryState::Sent]).unwrap();
            assert_eq!(sent[0].attempts, 1);
            assert_eq!(sent[0].message_id, format!("<{a}@x>"));
            assert!(
                !s.mark_sending(e.id, a, now()).unwrap(),
                "a sent delivery is not claimed again"
            );
            let b = pending[1].subscriber.id;
            s.set_status("b@example.com", Status::Unsubscribed, now())
                .unwrap();
            assert!(
                !s.mark_sending(e.id, b, now()).unwrap(),
                "nor one to a subscriber who left"
            );
            assert!(!format!("{:?}", pending[0].subscriber).contains(&pending[0].subscriber.token));
        }
    }

    /// Every statement of the send loop (planning, counting, paging,
    /// claiming, recording) reads through an index: a full-table `SCAN` or
    /// a temporary sort would make a send quadratic in the list (as the
    /// claim's `IN (SELECT id FROM subscribers ...)` once did).
    #[test]
    fn no_statement_of_the_send_loop_scans_a_table() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sqlite::open(&dir.path().join("plan.db")).unwrap();
        let rows: Vec<NewSubscriber> = (0..200)
            .map(|i| row(&format!("reader{i}@example.com")))
            .collect();
        s.add_subscribers(&rows, now(), false).unwrap();
        let edition = crate::render::sample_edition();
        let json = serde_json::to_string(&edition).unwrap();
        let e = s.store_edition_json(edition.date, &json, now()).unwrap();
        s.plan_deliveries(
            e.id,
            e.version,
            Box::new(|id, _| format!("<{id}@x>")),
            now(),
        )
        .unwrap()
        .unwrap();
        // No ANALYZE: digest never runs it, so the planner sees what it
        // sees in production.
        s.conn
            .create_scalar_function(
                "digest_message_id",
                2,
                rusqlite::functions::FunctionFlags::SQLITE_UTF8,
                |_| Ok(String::new()),
            )
            .unwrap();
        let statements = [
            ("plan", PLAN),
            ("page", OPEN_PAGE),
            ("open counts", OPEN_COUNTS),
            ("claim", MARK_SENDING),
            ("record", MARK_DONE),
            ("counts", DELIVERY_COUNTS),
            ("active", subscribers::ACTIVE_COUNT),
            (
                "edition",
                "SELECT id, edition_json, content_hash, rendered_at FROM editions WHERE date = ?1",
            ),
        ];
        for (name, sql) in statements {
            let plan = query_plan(&s, sql);
            eprintln!("{name}: {plan:?}");
            assert!(!plan.is_empty(), "{name}: no plan");
            assert!(
                !plan
                    .iter()
                    .any(|d| d.starts_with("SCAN ") || d.contains("TEMP B-TREE")),
                "{name} scans or sorts: {plan:#?}"
            );
        }
        // The claim as it was (a subquery over every subscriber) is caught.
        let old = "UPDATE deliveries SET state = 'sending' WHERE edition_id = ?1
            AND subscriber_id = ?2 AND subscriber_id IN (SELECT id FROM subscribers WHERE status = 'unknown' OR 1)";
        let plan = query_plan(&s, old);
        assert!(plan.iter().any(|d| d.starts_with("SCAN ")), "{plan:?}");
    }

    /// The detail lines of `EXPLAIN QUERY PLAN`, every parameter NULL.
    fn query_plan(s: &Sqlite, sql: &str) -> Vec<String> {
        let mut stmt = s
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
        stmt.query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn pages_of_open_deliveries_cover_each_once_in_order() {
        for mut s in crate::store::testing::stores() {
            let rows: Vec<NewSubscriber> =
                (0..25).map(|i| row(&format!("r{i}@example.com"))).collect();
            s.add_subscribers(&rows, now(), false).unwrap();
            let edition = crate::render::sample_edition();
            let e = s.store_edition(edition.date, &edition, now()).unwrap();
            assert_eq!(
                s.plan_deliveries(
                    e.id,
                    e.version,
                    Box::new(|id, _| format!("<{id}@x>")),
                    now()
                )
                .unwrap()
                .unwrap(),
                25
            );
            // Mixed states: some sent, some retrying, one left sending, one
            // subscriber gone.
            for id in [2, 3, 4] {
                s.mark_done(e.id, id, DeliveryState::Sent, None, None, now())
                    .unwrap();
            }
            for id in [7, 20] {
                s.mark_done(e.id, id, DeliveryState::Retry, Some("451"), None, now())
                    .unwrap();
            }
            assert!(s.mark_sending(e.id, 11, now()).unwrap());
            s.set_status("r14@example.com", Status::Unsubscribed, now())
                .unwrap();
            let counts = s.open_counts(e.id).unwrap();
            assert_eq!((counts.pending, counts.retry, counts.sending), (18, 2, 1));
            assert_eq!(s.active_subscribers().unwrap(), 24);
            let mut seen = Vec::new();
            let mut after = 0;
            loop {
                let page = s.open_deliveries(e.id, after, 4).unwrap();
                seen.extend(page.iter().map(|d| (d.subscriber.id, d.state)));
                match page.last() {
                    Some(last) if page.len() == 4 => after = last.subscriber.id,
                    _ => break,
                }
            }
            let ids: Vec<i64> = seen.iter().map(|(id, _)| *id).collect();
            let expected: Vec<i64> = (1..=25).filter(|id| ![2, 3, 4, 15].contains(id)).collect();
            assert_eq!(ids, expected, "every open delivery once, by id");
            assert!(seen.contains(&(11, DeliveryState::Sending)));
            assert!(seen.contains(&(20, DeliveryState::Retry)));
            assert_eq!(
                s.deliveries(e.id, &[DeliveryState::Pending]).unwrap()[0].message_id,
                "<1@x>"
            );
        }
    }
}
