//! Deliveries on PostgreSQL (the interface: `../deliveries.rs`), shared by
//! several send workers. A page of open deliveries is *claimed*: each row
//! read is marked with this worker's name (`claimed_by`), under
//! `FOR UPDATE SKIP LOCKED`, so two workers reading at once never get the
//! same subscriber, and a row claimed by a live worker is skipped. A
//! worker is live while its row in `send_workers` says so (`alive_until`,
//! renewed every third of the lease as it records its sends): one row to
//! renew, however many deliveries it holds. The claims of a worker that
//! died (kill -9, a lost host) lapse with its lease and are taken over,
//! a delivery left `sending` resent with the same Message-ID, as after a
//! crash on one machine.

use chrono::{DateTime, Utc};

use super::subscribers::COLUMNS;
use super::{count, Postgres};
use crate::store::{
    ts, Deliveries, Delivery, DeliveryState, MessageIds, OpenCounts, Refused, Result,
};

/// Subscribers planned per statement.
const PLAN_BATCH: i64 = 5000;

/// The class of the advisory locks held while an edition's deliveries are
/// planned (the other key is the edition's id).
const PLAN_LOCK: i32 = 0x6469_6770;

/// Whether `d`'s claim is free for `$me` at `$now`: unclaimed, ours, or
/// its worker is gone: its lease is over (a lost host), or its session is
/// (a process killed on a live host: the server ends its session at once).
fn claimable(me: &str, now: &str) -> String {
    claimable_by(me, now, true)
}

/// `claimable`, with or without this worker's own claims.
fn claimable_by(me: &str, now: &str, own: bool) -> String {
    let own = if own {
        format!("d.claimed_by = {me}")
    } else {
        "FALSE".to_owned()
    };
    format!(
        "(d.claimed_by IS NULL OR {own} OR d.claimed_by <> {me} AND d.claimed_by NOT IN
            (SELECT w.name FROM send_workers w JOIN pg_stat_activity a
                 ON a.pid = w.pid AND (extract(epoch FROM a.backend_start) * 1000000)::BIGINT = w.backend_start
              WHERE w.alive_until >= {now}))"
    )
}

/// The claim of a page: `$1` edition, `$2` after this subscriber id, `$3`
/// at most this many, `$4` this worker, `$5` now; `own`: with the rows
/// this worker holds already.
fn claim_sql_of(own: bool) -> String {
    format!(
        "WITH picked AS (
            SELECT d.edition_id, d.subscriber_id FROM deliveries d
             WHERE d.edition_id = $1 AND d.state IN ('pending', 'retry', 'sending')
               AND d.subscriber_id > $2
               AND EXISTS (SELECT 1 FROM subscribers s
                            WHERE s.id = d.subscriber_id AND s.id > $2 AND s.status = 'active')
               AND {}
             ORDER BY d.subscriber_id LIMIT $3
             FOR UPDATE OF d SKIP LOCKED)
         UPDATE deliveries d SET claimed_by = $4
           FROM subscribers s
          WHERE d.edition_id = $1 AND d.subscriber_id = ANY (ARRAY (SELECT subscriber_id FROM picked))
            AND s.id = d.subscriber_id
         RETURNING d.state, d.attempts, d.last_error, d.message_id, d.next_attempt_at, {COLUMNS}",
        claimable_by("$4", "$5", own)
    )
}

/// `$1` edition, `$2` subscriber, `$3` now, `$4` this worker.
fn mark_sending_sql() -> String {
    format!(
        "UPDATE deliveries d SET state = 'sending', attempts = attempts + 1, updated_at = $3, claimed_by = $4
          WHERE d.edition_id = $1 AND d.subscriber_id = $2 AND d.state IN ('pending', 'retry', 'sending')
            AND EXISTS (SELECT 1 FROM subscribers s WHERE s.id = d.subscriber_id AND s.status = 'active')
            AND {}",
        claimable("$4", "$3")
    )
}

/// `$1` edition, `$2` subscriber, then the outcome, `$8` this worker: a
/// worker whose delivery was taken over (its lease ran out mid-send) does
/// not overwrite what the worker that took it recorded.
const MARK_DONE: &str = "UPDATE deliveries SET state = $3, last_error = $4, next_attempt_at = $5, updated_at = $6, sent_at = COALESCE($7, sent_at)
  WHERE edition_id = $1 AND subscriber_id = $2 AND (claimed_by IS NULL OR claimed_by = $8)";

fn delivery_from_row(
    edition_id: i64,
    r: &postgres::Row,
) -> std::result::Result<Delivery, postgres::Error> {
    Ok(Delivery {
        edition_id,
        state: DeliveryState::parse(r.try_get("state")?),
        attempts: count(r, "attempts")?,
        last_error: r.try_get("last_error")?,
        message_id: r.try_get("message_id")?,
        next_attempt_at: r
            .try_get::<_, Option<String>>("next_attempt_at")?
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc)),
        subscriber: Postgres::subscriber_from_row(r)?,
    })
}

impl Postgres {
    /// Says this worker is alive until a lease from now.
    fn renew(&self, now: DateTime<Utc>) -> Result<()> {
        let until = now + chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::MAX);
        self.client()
            .execute(
                "INSERT INTO send_workers (name, alive_until, started_at, pid, backend_start)
                 SELECT $1, $2, $3, a.pid, (extract(epoch FROM a.backend_start) * 1000000)::BIGINT
                   FROM pg_stat_activity a WHERE a.pid = pg_backend_pid()
                 ON CONFLICT (name) DO UPDATE SET alive_until = EXCLUDED.alive_until",
                &[&self.worker, &ts(until), &ts(now)],
            )
            .map_err(self.err("renewing this worker's lease"))?;
        self.renewed.set(std::time::Instant::now());
        Ok(())
    }

    /// Claims a page of open deliveries for this worker (`own`: with the
    /// ones it holds already).
    fn claim(&self, edition_id: i64, after: i64, limit: usize, own: bool) -> Result<Vec<Delivery>> {
        let now = chrono::Utc::now();
        self.renew(now)?;
        let sql = claim_sql_of(own);
        let rows = self
            .client()
            .query(
                sql.as_str(),
                &[&edition_id, &after, &(limit as i64), &self.worker, &ts(now)],
            )
            .map_err(self.err("claiming deliveries"))?;
        let mut page = rows
            .iter()
            .map(|r| delivery_from_row(edition_id, r))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(self.err("claiming deliveries"))?;
        page.sort_by_key(|d| d.subscriber.id);
        Ok(page)
    }

    /// Renews the lease when a third of it has passed.
    fn renew_if_due(&self, now: DateTime<Utc>) -> Result<()> {
        if self.renewed.get().elapsed() >= self.lease / 3 {
            self.renew(now)?;
        }
        Ok(())
    }
}

impl Deliveries for Postgres {
    /// In one transaction that holds the edition's row `FOR SHARE` (an
    /// edit takes it `FOR UPDATE`, so the two take turns) and an advisory
    /// lock on planning it (workers starting at once plan one after the
    /// other: the later ones find every delivery there), the active
    /// subscribers a batch at a time by id, their Message-IDs named here,
    /// inserted unless planned already (`ON CONFLICT DO NOTHING`: an index
    /// probe a row, where an anti-join would read the edition's deliveries
    /// again for every batch).
    fn plan_deliveries(
        &self,
        edition_id: i64,
        version: i64,
        message_id: MessageIds,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<usize, Refused>> {
        self.transaction("planning deliveries", |tx| {
            let current: Option<i64> = tx
                .query_opt(
                    "SELECT version FROM editions WHERE id = $1 FOR SHARE",
                    &[&edition_id],
                )?
                .map(|r| r.get(0));
            if current != Some(version) {
                return Ok(Err(Refused::Changed));
            }
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, $2)",
                &[&PLAN_LOCK, &((edition_id & 0x7fff_ffff) as i32)],
            )?;
            let select = tx.prepare(
                "SELECT s.id, s.token FROM subscribers s
                  WHERE s.status = 'active' AND s.id > $1
                    AND (s.paused_until IS NULL
                         OR s.paused_until <= (SELECT e.date FROM editions e WHERE e.id = $3))
                  ORDER BY s.id LIMIT $2",
            )?;
            let insert = tx.prepare(
                "INSERT INTO deliveries (edition_id, subscriber_id, state, message_id, created_at, updated_at)
                 SELECT $1, p.id, 'pending', p.message_id, $4, $4
                   FROM UNNEST($2::BIGINT[], $3::TEXT[]) AS p (id, message_id)
                 ON CONFLICT (edition_id, subscriber_id) DO NOTHING",
            )?;
            let mut planned = 0;
            let mut after = 0i64;
            loop {
                let rows = tx.query(&select, &[&after, &PLAN_BATCH, &edition_id])?;
                let Some(last) = rows.last() else {
                    return Ok(Ok(planned));
                };
                after = last.get(0);
                let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
                let message_ids: Vec<String> = rows
                    .iter()
                    .map(|r| message_id(r.get(0), r.get(1)))
                    .collect();
                planned += tx.execute(&insert, &[&edition_id, &ids, &message_ids, &ts(now)])? as usize;
                if (rows.len() as i64) < PLAN_BATCH {
                    return Ok(Ok(planned));
                }
            }
        })
    }

    /// Claims the page for this worker (see the module's comment).
    fn open_deliveries(&self, edition_id: i64, after: i64, limit: usize) -> Result<Vec<Delivery>> {
        self.claim(edition_id, after, limit, true)
    }

    fn left_behind(&self, edition_id: i64, after: i64, limit: usize) -> Result<Vec<Delivery>> {
        self.claim(edition_id, after, limit, false)
    }

    fn open_counts(&self, edition_id: i64) -> Result<OpenCounts> {
        let rows = self
            .client()
            .query(
                "SELECT d.state, COUNT(*) FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
                  WHERE d.edition_id = $1 AND d.state IN ('pending', 'retry', 'sending') AND s.status = 'active'
                  GROUP BY d.state",
                &[&edition_id],
            )
            .map_err(self.err("counting deliveries"))?;
        let mut counts = OpenCounts::default();
        for row in rows {
            let n = row.get::<_, i64>(1) as usize;
            match DeliveryState::parse(row.get(0)) {
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
        let rows = self
            .client()
            .query(
                format!(
                    "SELECT d.state, d.attempts, d.last_error, d.message_id, d.next_attempt_at, {COLUMNS}
                       FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
                      WHERE d.edition_id = $1 AND s.status = 'active' ORDER BY s.id"
                )
                .as_str(),
                &[&edition_id],
            )
            .map_err(self.err("reading deliveries"))?;
        let all = rows
            .iter()
            .map(|r| delivery_from_row(edition_id, r))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(self.err("reading deliveries"))?;
        Ok(all
            .into_iter()
            .filter(|d| states.contains(&d.state))
            .collect())
    }

    fn delivery_counts(&self, edition_id: i64) -> Result<Vec<(DeliveryState, usize)>> {
        let rows = self
            .client()
            .query(
                "SELECT state, COUNT(*) FROM deliveries WHERE edition_id = $1 GROUP BY state ORDER BY state",
                &[&edition_id],
            )
            .map_err(self.err("counting deliveries"))?;
        Ok(rows
            .iter()
            .map(|r| (DeliveryState::parse(r.get(0)), r.get::<_, i64>(1) as usize))
            .collect())
    }

    /// Only a delivery this worker may claim (see the module's comment):
    /// a worker whose lease lapsed and whose rows were taken over sends
    /// none of them.
    fn mark_sending(
        &self,
        edition_id: i64,
        subscriber_id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.renew_if_due(now)?;
        let sql = mark_sending_sql();
        let n = self
            .client()
            .execute(
                sql.as_str(),
                &[&edition_id, &subscriber_id, &ts(now), &self.worker],
            )
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
        self.renew_if_due(now)?;
        let sent_at = (state == DeliveryState::Sent).then(|| ts(now));
        self.client()
            .execute(
                MARK_DONE,
                &[
                    &edition_id,
                    &subscriber_id,
                    &state.as_str(),
                    &error,
                    &next_attempt_at.map(ts),
                    &ts(now),
                    &sent_at,
                    &self.worker,
                ],
            )
            .map_err(self.err("recording a delivery"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{claim_sql_of, mark_sending_sql, MARK_DONE};
    use crate::store::testing::{now, row};
    use crate::store::{Access, Connect, DeliveryState, Editions, Refused, Store};

    /// Two workers (two connections, two names) on one fresh schema, with
    /// a lease of `lease`.
    fn two_workers(lease: Duration) -> (Store, Store) {
        let connect = Connect {
            url: crate::store::test_server::fresh_url(),
            lease: Some(lease),
            ..Connect::default()
        };
        (
            Store::connect(&connect, Access::Create).unwrap(),
            Store::connect(&connect, Access::Create).unwrap(),
        )
    }

    /// Plans `edition` at `version` with test Message-IDs.
    fn plan(s: &Store, edition: i64, version: i64) -> std::result::Result<usize, Refused> {
        s.plan_deliveries(
            edition,
            version,
            Box::new(|id, _| format!("<{id}@x>")),
            now(),
        )
        .unwrap()
    }

    fn planned(s: &mut Store, n: usize) -> i64 {
        let rows: Vec<_> = (0..n).map(|i| row(&format!("r{i}@example.com"))).collect();
        s.add_subscribers(&rows, now(), false).unwrap();
        let edition = crate::render::sample_edition();
        let e = s.store_edition(edition.date, &edition, now()).unwrap();
        assert_eq!(plan(s, e.id, e.version), Ok(n));
        e.id
    }

    /// Workers reading at once never get the same delivery; a delivery
    /// claimed by a live worker is not sent by another.
    #[test]
    fn a_claimed_page_is_skipped_by_other_workers() {
        let (mut a, b) = two_workers(Duration::from_secs(60));
        let edition = planned(&mut a, 10);
        let first = a.open_deliveries(edition, 0, 4).unwrap();
        let second = b.open_deliveries(edition, 0, 4).unwrap();
        let ids = |page: &[crate::store::Delivery]| -> Vec<i64> {
            page.iter().map(|d| d.subscriber.id).collect()
        };
        assert_eq!(ids(&first), [1, 2, 3, 4]);
        assert_eq!(
            ids(&second),
            [5, 6, 7, 8],
            "the first worker's claims are skipped"
        );
        assert!(
            !b.mark_sending(edition, 1, chrono::Utc::now()).unwrap(),
            "not another's claim"
        );
        assert!(a.mark_sending(edition, 1, chrono::Utc::now()).unwrap());
        // A's own page again (a re-read after a restart of its loop) is
        // still its own.
        assert_eq!(ids(&a.open_deliveries(edition, 0, 2).unwrap()), [1, 2]);
    }

    /// The claims of a worker that stopped renewing its lease (it died)
    /// are taken over, the delivery it left `sending` included, with the
    /// same Message-ID; the dead worker, were it to wake, sends none of
    /// them.
    #[test]
    fn a_dead_workers_claims_are_taken_over_when_its_lease_ends() {
        let (mut a, b) = two_workers(Duration::from_secs(2));
        let edition = planned(&mut a, 3);
        let page = a.open_deliveries(edition, 0, 10).unwrap();
        assert_eq!(page.len(), 3);
        assert!(a.mark_sending(edition, 1, chrono::Utc::now()).unwrap());
        assert!(
            b.open_deliveries(edition, 0, 10).unwrap().is_empty(),
            "all claimed, the lease alive"
        );
        std::thread::sleep(Duration::from_millis(2300));
        let taken = b.open_deliveries(edition, 0, 10).unwrap();
        assert_eq!(taken.len(), 3, "taken over after the lease");
        assert_eq!(taken[0].state, DeliveryState::Sending);
        assert_eq!(taken[0].message_id, page[0].message_id);
        assert!(b.mark_sending(edition, 1, chrono::Utc::now()).unwrap());
        assert!(
            !a.mark_sending(edition, 2, chrono::Utc::now()).unwrap(),
            "the old worker's claim is gone"
        );
    }

    /// A worker whose session is gone (its process killed on a live host:
    /// the server ends the session at once) is taken over without waiting
    /// for its lease; one that ends lets go of its claims.
    #[test]
    fn a_killed_or_finished_workers_claims_are_free_at_once() {
        let connect = Connect {
            url: crate::store::test_server::fresh_url(),
            lease: Some(Duration::from_secs(600)),
            ..Connect::default()
        };
        let a = super::super::Postgres::connect(&connect, Access::Create).unwrap();
        let a_name = a.worker().to_owned();
        let mut a = Store::new(a);
        let b = Store::connect(&connect, Access::Create).unwrap();
        let edition = planned(&mut a, 4);
        assert_eq!(a.open_deliveries(edition, 0, 2).unwrap().len(), 2);
        assert_eq!(
            b.open_deliveries(edition, 0, 10).unwrap().len(),
            2,
            "A's two are held"
        );
        // A's server process ends, as when A is killed with SIGKILL.
        let mut admin = postgres::Client::connect(&connect.url, postgres::NoTls).unwrap();
        let ended: bool = admin
            .query_one(
                "SELECT pg_terminate_backend(pid::INT) FROM send_workers WHERE name = $1",
                &[&a_name],
            )
            .unwrap()
            .get(0);
        assert!(ended);
        std::thread::sleep(Duration::from_millis(200));
        let all = b.open_deliveries(edition, 0, 10).unwrap();
        assert_eq!(
            all.len(),
            4,
            "A's claims are B's now, long before its lease ends"
        );
        // B ends normally: a third worker takes them all at once.
        drop(b);
        let c = Store::connect(&connect, Access::Create).unwrap();
        assert_eq!(c.open_deliveries(edition, 0, 10).unwrap().len(), 4);
        drop(a);
    }

    /// A worker whose claim was taken over while it was still sending
    /// (its lease ran out) does not overwrite what the new worker recorded.
    #[test]
    fn a_worker_that_lost_its_claim_records_nothing_over_the_new_one() {
        let (mut a, b) = two_workers(Duration::from_secs(2));
        let edition = planned(&mut a, 1);
        assert_eq!(a.open_deliveries(edition, 0, 10).unwrap().len(), 1);
        assert!(a.mark_sending(edition, 1, chrono::Utc::now()).unwrap());
        std::thread::sleep(Duration::from_millis(2300));
        assert_eq!(b.open_deliveries(edition, 0, 10).unwrap().len(), 1);
        assert!(b.mark_sending(edition, 1, chrono::Utc::now()).unwrap());
        b.mark_done(
            edition,
            1,
            DeliveryState::Sent,
            None,
            None,
            chrono::Utc::now(),
        )
        .unwrap();
        a.mark_done(
            edition,
            1,
            DeliveryState::Retry,
            Some("timed out"),
            None,
            chrono::Utc::now(),
        )
        .unwrap();
        assert_eq!(
            a.delivery_counts(edition).unwrap(),
            [(DeliveryState::Sent, 1)],
            "the late worker's retry did not overwrite the send"
        );
    }

    /// Approving, or withdrawing an approval, counts as a change: a worker
    /// that read the edition before is refused its planning and reads it
    /// again.
    #[test]
    fn an_approval_changed_after_reading_refuses_the_planning() {
        let (mut a, b) = two_workers(Duration::from_secs(60));
        a.add_subscribers(&[row("r@example.com")], now(), false)
            .unwrap();
        let edition = crate::render::sample_edition();
        let e = a.store_edition(edition.date, &edition, now()).unwrap();
        b.set_approval(e.id, false, "ed", now()).unwrap().unwrap();
        assert_eq!(plan(&a, e.id, e.version), Err(Refused::Changed));
    }

    /// An edit that lands before planning refuses the planning (read it
    /// again); once planned, edits are refused.
    #[test]
    fn planning_and_editing_take_turns() {
        let (mut a, b) = two_workers(Duration::from_secs(60));
        a.add_subscribers(&[row("r@example.com")], now(), false)
            .unwrap();
        let edition = crate::render::sample_edition();
        let e = a.store_edition(edition.date, &edition, now()).unwrap();
        let json = serde_json::to_string(&edition).unwrap();
        assert_eq!(
            b.change_edition_json(e.id, e.version, &json, "ed", "a change", now())
                .unwrap(),
            Ok(e.version + 1)
        );
        assert_eq!(plan(&a, e.id, e.version), Err(Refused::Changed));
        assert_eq!(plan(&a, e.id, e.version + 1), Ok(1));
        assert_eq!(
            b.change_edition_json(e.id, e.version + 1, &json, "ed", "too late", now())
                .unwrap(),
            Err(Refused::SendingStarted)
        );
    }

    /// Every statement a send makes per message or page reads through an
    /// index, never the whole table: what `EXPLAIN` says on 20,000
    /// deliveries, analyzed, as a list that size is.
    #[test]
    fn the_send_loop_reads_indexes_only() {
        let connect = Connect {
            url: crate::store::test_server::fresh_url(),
            ..Connect::default()
        };
        let mut p = super::super::Postgres::connect(&connect, Access::Create).unwrap();
        let e = {
            let edition = crate::render::sample_edition();
            let json = serde_json::to_string(&edition).unwrap();
            p.store_edition_json(edition.date, &json, now()).unwrap().id
        };
        p.client()
            .batch_execute(&format!(
                "INSERT INTO subscribers (email, token, token_hash, bounce_token, created_at, updated_at)
                   SELECT 'r' || i || '@example.com', 't' || i, 'h' || i, 'b' || i, 'now', 'now' FROM generate_series(1, 20000) i;
                 INSERT INTO deliveries (edition_id, subscriber_id, state, message_id, created_at, updated_at)
                   SELECT {e}, id, CASE WHEN id % 3 = 0 THEN 'sent' ELSE 'pending' END, '<' || id || '@x>', 'now', 'now' FROM subscribers;
                 ANALYZE;"
            ))
            .unwrap();
        let _ = &mut p;
        let w = "'w'";
        let statements = [
            (
                "claim",
                claim_sql_of(true)
                    .replace("$1", &e.to_string())
                    .replace("$2", "100")
                    .replace("$3", "512")
                    .replace("$4", w)
                    .replace("$5", "'now'"),
            ),
            (
                "mark sending",
                mark_sending_sql()
                    .replace("$1", &e.to_string())
                    .replace("$2", "7")
                    .replace("$3", "'now'")
                    .replace("$4", w),
            ),
            (
                "mark done",
                MARK_DONE
                    .replace("$1", &e.to_string())
                    .replace("$2", "7")
                    .replace("$3", "'sent'")
                    .replace("$4", "NULL")
                    .replace("$5", "NULL")
                    .replace("$6", "'now'")
                    .replace("$7", "NULL")
                    .replace("$8", w),
            ),
        ];
        for (name, sql) in statements {
            let plan: Vec<String> = p
                .client()
                .query(format!("EXPLAIN {sql}").as_str(), &[])
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            eprintln!("{name}:\n{}", plan.join("\n"));
            // `send_workers` has a row per worker: a handful.
            assert!(
                !plan
                    .iter()
                    .any(|l| l.contains("Seq Scan") && !l.contains("send_workers")),
                "{name} scans a table:\n{}",
                plan.join("\n")
            );
            assert!(plan.iter().any(|l| l.contains("Index")), "{name}: no index");
        }
    }
}
