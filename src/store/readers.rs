//! The reader's side of the store: the editions readers may see (the
//! archive and its feed), a subscriber's own preferences (topics and a
//! pause, set through their token), and the welcome message owed to a
//! confirmed subscriber.

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::params;

use super::{ts, Result, Sqlite, StoredEdition, Subscriber};

/// What a subscriber may change on their preferences page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preferences {
    /// Comma-separated topics (checked by the caller).
    pub topics: String,
    /// Only stories matching the topics.
    pub topics_only: bool,
    /// No edition dated before this day is sent to them.
    pub paused_until: Option<NaiveDate>,
}

/// Which editions a listing holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Sending has started (its deliveries are planned): the feed's.
    Sent,
    /// Sent, or approved and waiting for its send: the archive's. Drafts
    /// and editions held for approval are neither.
    SentOrApproved,
}

/// The reader-facing operations.
pub trait Readers {
    /// Published editions, newest first: `limit` of them after skipping
    /// `offset`, and how many there are in all.
    fn published_editions(
        &self,
        which: Published,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<StoredEdition<String>>, usize)>;

    /// Whether the edition `edition_id` is published as `which` says (the
    /// same condition as the listing's).
    fn is_published(&self, edition_id: i64, which: Published) -> Result<bool>;

    /// Sets the preferences of the active subscriber holding `token`;
    /// false when no active subscriber holds it.
    fn set_preferences(&self, token: &str, prefs: &Preferences, now: DateTime<Utc>)
        -> Result<bool>;

    /// Active subscribers owed a welcome message since before `now`, at
    /// most `limit`.
    fn welcomes_due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Subscriber>>;

    /// Takes subscriber `id`'s welcome for sending: true for exactly one
    /// caller (it is no longer due), so it goes out at most once.
    fn take_welcome(&self, id: i64) -> Result<bool>;

    /// A welcome that could not be sent is due again at `at`.
    fn welcome_again(&self, id: i64, at: DateTime<Utc>) -> Result<()>;
}

/// The condition on `editions e` of a listing.
pub(super) fn published_where(which: Published) -> &'static str {
    match which {
        Published::Sent => "EXISTS (SELECT 1 FROM deliveries d WHERE d.edition_id = e.id)",
        Published::SentOrApproved => {
            "(e.approved_at IS NOT NULL OR EXISTS (SELECT 1 FROM deliveries d WHERE d.edition_id = e.id))"
        }
    }
}

impl Readers for Sqlite {
    fn published_editions(
        &self,
        which: Published,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<StoredEdition<String>>, usize)> {
        let filter = published_where(which);
        let total: i64 = self
            .conn
            .query_row(
                &format!("SELECT COUNT(*) FROM editions e WHERE {filter}"),
                [],
                |r| r.get(0),
            )
            .map_err(self.err("listing editions"))?;
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT e.id, e.date, e.edition_json, e.content_hash, e.rendered_at, e.version, e.approved_by, e.approved_at, e.notified_at
                   FROM editions e WHERE {filter} ORDER BY e.date DESC LIMIT ?1 OFFSET ?2"
            ))
            .map_err(self.err("listing editions"))?;
        let rows = stmt
            .query_map(params![limit as i64, offset as i64], |r| {
                let by: Option<String> = r.get(6)?;
                let at: Option<String> = r.get(7)?;
                Ok((
                    r.get::<_, String>(1)?,
                    StoredEdition {
                        id: r.get(0)?,
                        date: NaiveDate::MIN,
                        edition: r.get(2)?,
                        content_hash: r.get(3)?,
                        rendered_at: r.get(4)?,
                        version: r.get(5)?,
                        approved: by.zip(at),
                        notified_at: r.get(8)?,
                    },
                ))
            })
            .map_err(self.err("listing editions"))?;
        let mut out = Vec::new();
        for row in rows {
            let (date, mut stored) = row.map_err(self.err("listing editions"))?;
            // A date that does not parse is not an edition readers can open.
            let Ok(date) = date.parse() else { continue };
            stored.date = date;
            out.push(stored);
        }
        Ok((out, total as usize))
    }

    fn is_published(&self, edition_id: i64, which: Published) -> Result<bool> {
        self.conn
            .query_row(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM editions e WHERE e.id = ?1 AND {})",
                    published_where(which)
                ),
                [edition_id],
                |r| r.get(0),
            )
            .map_err(self.err("reading an edition"))
    }

    fn set_preferences(
        &self,
        token: &str,
        prefs: &Preferences,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE subscribers SET topics = ?2, topics_only = ?3, paused_until = ?4, updated_at = ?5
                  WHERE token_hash = ?1 AND status = 'active'",
                params![
                    super::token_hash(token),
                    prefs.topics,
                    prefs.topics_only,
                    prefs.paused_until.map(|d| d.to_string()),
                    ts(now)
                ],
            )
            .map_err(self.err("changing preferences"))?;
        Ok(n > 0)
    }

    fn welcomes_due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Subscriber>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT * FROM subscribers WHERE welcome_due_at IS NOT NULL AND welcome_due_at <= ?1
                    AND status = 'active' ORDER BY welcome_due_at LIMIT ?2",
            )
            .map_err(self.err("reading welcomes"))?;
        let rows = stmt
            .query_map(params![ts(now), limit as i64], Sqlite::subscriber_from_row)
            .map_err(self.err("reading welcomes"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.err("reading welcomes"))
    }

    fn take_welcome(&self, id: i64) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE subscribers SET welcome_due_at = NULL WHERE id = ?1 AND welcome_due_at IS NOT NULL",
                [id],
            )
            .map_err(self.err("taking a welcome"))?;
        Ok(n > 0)
    }

    fn welcome_again(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        self.conn
            .execute(
                "UPDATE subscribers SET welcome_due_at = ?2 WHERE id = ?1",
                params![id, ts(at)],
            )
            .map_err(self.err("keeping a welcome"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{now, row, stores};
    use crate::store::{Asker, SignUp, Store};

    fn plan(s: &Store, date: &str) -> usize {
        let mut edition = crate::render::sample_edition();
        edition.date = date.parse().unwrap();
        let e = s.store_edition(edition.date, &edition, now()).unwrap();
        s.plan_deliveries(
            e.id,
            e.version,
            Box::new(|id, _| format!("<{id}@x>")),
            now(),
        )
        .unwrap()
        .unwrap()
    }

    #[test]
    fn a_pause_skips_the_editions_dated_before_its_end() {
        for mut s in stores() {
            s.add_subscribers(&[row("a@example.com"), row("b@example.com")], now(), false)
                .unwrap();
            let a = s.subscriber_by_email("a@example.com").unwrap().unwrap();
            let prefs = Preferences {
                topics: "climate".into(),
                topics_only: true,
                paused_until: Some("2022-03-16".parse().unwrap()),
            };
            assert!(s.set_preferences(&a.token, &prefs, now()).unwrap());
            assert!(!s.set_preferences("not-a-token", &prefs, now()).unwrap());
            let a = s.subscriber_by_email("a@example.com").unwrap().unwrap();
            assert_eq!(a.paused_until, prefs.paused_until);
            assert_eq!((a.topics.as_str(), a.topics_only), ("climate", true));
            assert_eq!(plan(&s, "2022-03-15"), 1, "paused: only b");
            assert_eq!(plan(&s, "2022-03-16"), 2, "the pause ends that day");
        }
    }

    #[test]
    fn only_sent_or_approved_editions_are_published_newest_first() {
        for mut s in stores() {
            s.add_subscribers(&[row("a@example.com")], now(), false)
                .unwrap();
            let mut edition = crate::render::sample_edition();
            for date in ["2022-03-14", "2022-03-15", "2022-03-16"] {
                edition.date = date.parse().unwrap();
                s.store_edition(edition.date, &edition, now()).unwrap();
            }
            // 14th: sent; 15th: a draft; 16th: approved.
            let sent = s
                .edition_json("2022-03-14".parse().unwrap())
                .unwrap()
                .unwrap();
            s.plan_deliveries(
                sent.id,
                sent.version,
                Box::new(|id, _| format!("<{id}@x>")),
                now(),
            )
            .unwrap()
            .unwrap();
            let approved = s
                .edition_json("2022-03-16".parse().unwrap())
                .unwrap()
                .unwrap();
            s.set_approval(approved.id, true, "ed", now())
                .unwrap()
                .unwrap();
            let dates = |which, limit, offset| {
                let (rows, total) = s.published_editions(which, limit, offset).unwrap();
                let dates: Vec<String> = rows.iter().map(|r| r.date.to_string()).collect();
                (dates, total)
            };
            assert_eq!(
                dates(Published::Sent, 10, 0),
                (vec!["2022-03-14".to_owned()], 1)
            );
            assert_eq!(
                dates(Published::SentOrApproved, 10, 0),
                (vec!["2022-03-16".to_owned(), "2022-03-14".to_owned()], 2)
            );
            assert_eq!(
                dates(Published::SentOrApproved, 1, 1),
                (vec!["2022-03-14".to_owned()], 2),
                "pages"
            );
            let draft = s
                .edition_json("2022-03-15".parse().unwrap())
                .unwrap()
                .unwrap();
            for (id, sent, public) in [
                (sent.id, true, true),
                (draft.id, false, false),
                (approved.id, false, true),
            ] {
                assert_eq!(s.is_published(id, Published::Sent).unwrap(), sent);
                assert_eq!(
                    s.is_published(id, Published::SentOrApproved).unwrap(),
                    public
                );
            }
        }
    }

    #[test]
    fn a_confirmed_subscriber_is_owed_one_welcome() {
        for s in stores() {
            let SignUp::Confirm { token, .. } = s
                .request_subscription(
                    "new@example.com",
                    None,
                    "",
                    Asker::Public,
                    now(),
                    chrono::Duration::minutes(60),
                    chrono::Duration::days(7),
                )
                .unwrap()
            else {
                panic!("a sign-up to confirm");
            };
            assert!(
                s.welcomes_due(now(), 10).unwrap().is_empty(),
                "not before confirming"
            );
            s.confirm_subscription(&token, None, None, now()).unwrap();
            let due = s.welcomes_due(now(), 10).unwrap();
            assert_eq!(due.len(), 1);
            let id = due[0].id;
            assert!(s.take_welcome(id).unwrap());
            assert!(!s.take_welcome(id).unwrap(), "taken once");
            assert!(s.welcomes_due(now(), 10).unwrap().is_empty());
            let later = now() + chrono::Duration::minutes(10);
            s.welcome_again(id, later).unwrap();
            assert!(s.welcomes_due(now(), 10).unwrap().is_empty(), "not yet");
            assert_eq!(s.welcomes_due(later, 10).unwrap().len(), 1);
        }
    }
}
