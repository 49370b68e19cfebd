//! The subscribers table on PostgreSQL (the interface: `../subscribers.rs`).

use chrono::{DateTime, Utc};

use super::{count, Postgres};
use crate::store::subscribers::{adding, Adding};
use crate::store::{
    bounce_token, random_token, token_hash, ts, NewSubscriber, Result, Status, Subscriber,
    Subscribers,
};

/// Subscribers are read this many at a time when walked (keyset pages),
/// so the caller's work between rows never holds the connection.
const WALK_PAGE: i64 = 1000;

impl Postgres {
    pub(super) fn subscriber_from_row(
        r: &postgres::Row,
    ) -> std::result::Result<Subscriber, postgres::Error> {
        Ok(Subscriber {
            id: r.try_get("id")?,
            email: r.try_get("email")?,
            name: r.try_get("name")?,
            status: Status::from_name(r.try_get("status")?).unwrap_or(Status::Active),
            topics: r.try_get("topics")?,
            topics_only: r.try_get::<_, i64>("topics_only")? != 0,
            token: r.try_get("token")?,
            bounces: count(r, "bounces")?,
            soft_bounces: count(r, "soft_bounces")?,
            last_bounce: r.try_get("last_bounce")?,
            paused_until: r
                .try_get::<_, Option<String>>("paused_until")?
                .and_then(|d| d.parse().ok()),
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    }
}

/// The subscriber columns, as `subscriber_from_row` reads them.
pub(super) const COLUMNS: &str = "s.id, s.email, s.name, s.status, s.topics, s.topics_only, s.token, s.bounces, s.soft_bounces, s.last_bounce, s.paused_until, s.created_at, s.updated_at";

impl Subscribers for Postgres {
    #[tracing::instrument(skip_all)]
    fn add_subscribers_each(
        &mut self,
        rows: &mut dyn Iterator<Item = (u64, std::result::Result<NewSubscriber, String>)>,
        now: DateTime<Utc>,
        reactivate: bool,
        each: &mut dyn FnMut(u64, std::result::Result<i64, String>),
    ) -> Result<()> {
        self.transaction("adding subscribers", |tx| {
            let before: i64 = tx
                .query_one("SELECT COALESCE(MAX(id), 0) FROM subscribers", &[])?
                .get(0);
            let find = tx.prepare("SELECT id FROM subscribers WHERE lower(email) = lower($1)")?;
            let insert = tx.prepare(
                "INSERT INTO subscribers (email, name, status, topics, topics_only, token, token_hash, bounce_token, created_at, updated_at, bounces, last_bounce, paused_until)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12) RETURNING id",
            )?;
            let update = tx.prepare(
                "UPDATE subscribers SET status = 'active', name = COALESCE($2, name), topics = $3, topics_only = $4, updated_at = $5 WHERE id = $1",
            )?;
            for (tag, row) in rows {
                let NewSubscriber {
                    email,
                    name,
                    topics,
                    topics_only,
                    status,
                    bounces,
                    last_bounce,
                    paused_until,
                } = match row {
                    Ok(row) => row,
                    Err(reason) => {
                        each(tag, Err(reason));
                        continue;
                    }
                };
                let existing: Option<i64> = tx.query_opt(&find, &[&email])?.map(|r| r.get(0));
                let topics_only = i64::from(topics_only);
                let result = match adding(&email, existing, before, reactivate) {
                    Adding::Duplicate(why) => Err(why),
                    Adding::Reactivate(id) => {
                        tx.execute(&update, &[&id, &name, &topics, &topics_only, &ts(now)])?;
                        Ok(id)
                    }
                    Adding::Insert => {
                        let token = random_token();
                        let id: i64 = tx
                            .query_one(
                                &insert,
                                &[
                                    &email,
                                    &name,
                                    &status.as_str(),
                                    &topics,
                                    &topics_only,
                                    &token,
                                    &token_hash(&token),
                                    &bounce_token(&token),
                                    &ts(now),
                                    &i64::from(bounces),
                                    &last_bounce,
                                    &paused_until.map(|d| d.to_string()),
                                ],
                            )?
                            .get(0);
                        Ok(id)
                    }
                };
                each(tag, result);
            }
            Ok(())
        })
    }

    fn set_status(&self, email: &str, status: Status, now: DateTime<Utc>) -> Result<bool> {
        let n = self
            .client()
            .execute(
                "UPDATE subscribers SET status = $2, updated_at = $3 WHERE lower(email) = lower($1)",
                &[&email, &status.as_str(), &ts(now)],
            )
            .map_err(self.err("updating a subscriber"))?;
        Ok(n > 0)
    }

    fn delete_subscriber(&self, email: &str) -> Result<bool> {
        let n = self
            .client()
            .execute(
                "DELETE FROM subscribers WHERE lower(email) = lower($1)",
                &[&email],
            )
            .map_err(self.err("deleting a subscriber"))?;
        Ok(n > 0)
    }

    fn visit_subscribers(&self, each: &mut dyn FnMut(Subscriber) -> bool) -> Result<()> {
        let sql = format!(
            "SELECT {COLUMNS} FROM subscribers s WHERE s.id > $1 ORDER BY s.id LIMIT {WALK_PAGE}"
        );
        let mut after = 0i64;
        loop {
            let rows = self
                .client()
                .query(sql.as_str(), &[&after])
                .map_err(self.err("listing subscribers"))?;
            let last = rows.len() < WALK_PAGE as usize;
            for row in &rows {
                let sub =
                    Postgres::subscriber_from_row(row).map_err(self.err("listing subscribers"))?;
                after = sub.id;
                if !each(sub) {
                    return Ok(());
                }
            }
            if last {
                return Ok(());
            }
        }
    }

    fn active_subscribers(&self) -> Result<usize> {
        let n: i64 = self
            .client()
            .query_one(
                "SELECT COUNT(*) FROM subscribers WHERE status = 'active'",
                &[],
            )
            .map_err(self.err("counting subscribers"))?
            .get(0);
        Ok(n as usize)
    }

    fn subscriber_widths(&self) -> Result<(usize, usize)> {
        let row = self
            .client()
            .query_one(
                "SELECT COALESCE(MAX(LENGTH(email)), 0)::BIGINT, COALESCE(MAX(LENGTH(name)), 0)::BIGINT FROM subscribers",
                &[],
            )
            .map_err(self.err("listing subscribers"))?;
        Ok((row.get::<_, i64>(0) as usize, row.get::<_, i64>(1) as usize))
    }

    fn subscriber_by_token(&self, token: &str) -> Result<Option<Subscriber>> {
        use subtle::ConstantTimeEq;
        let found = self.subscriber_where("s.token_hash = $1", &token_hash(token))?;
        Ok(found.filter(|s| bool::from(s.token.as_bytes().ct_eq(token.as_bytes()))))
    }

    fn subscriber_by_email(&self, email: &str) -> Result<Option<Subscriber>> {
        self.subscriber_where("lower(s.email) = lower($1)", email)
    }
}

impl Postgres {
    /// The one subscriber matching `condition` on `$1`.
    pub(super) fn subscriber_where(
        &self,
        condition: &str,
        value: &str,
    ) -> Result<Option<Subscriber>> {
        let row = self
            .client()
            .query_opt(
                format!("SELECT {COLUMNS} FROM subscribers s WHERE {condition}").as_str(),
                &[&value],
            )
            .map_err(self.err("finding a subscriber"))?;
        row.map(|r| Postgres::subscriber_from_row(&r))
            .transpose()
            .map_err(self.err("finding a subscriber"))
    }
}
