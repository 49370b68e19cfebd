//! The reader's side: the archive of published editions and its Atom feed,
//! a subscriber's preferences (topics, "only these", a pause), and the
//! welcome message after confirming. What `serve` shows, decided here.
//!
//! Published means sent (its deliveries are planned) or approved; a draft,
//! or an edition held for approval, is reachable by no reader's URL.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::send::message_settings;
use super::subscribers::check_topics;
use super::{Error, Pipeline, Result};
use crate::edition::Edition;
use crate::render::{Recipient, Rendered};
use crate::store::{Preferences, Published, StoredEdition, Subscriber};

/// Editions on one archive page.
pub const ARCHIVE_PAGE: usize = 30;
/// Editions in the Atom feed.
pub const FEED_ENTRIES: usize = 20;
/// Headlines an archive entry shows.
const ARCHIVE_HEADLINES: usize = 3;
/// Longest pause, in days from today.
pub const MAX_PAUSE_DAYS: i64 = 365;
/// A welcome that could not be sent is tried again after this long.
const WELCOME_RETRY_MINUTES: i64 = 10;

/// One edition in the archive.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveEntry {
    pub date: NaiveDate,
    pub subject: String,
    pub story_count: usize,
    /// The first headlines, in edition order.
    pub headlines: Vec<String>,
}

/// One page of the archive, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchivePage {
    pub entries: Vec<ArchiveEntry>,
    /// 1-based.
    pub page: usize,
    pub pages: usize,
}

/// The Atom feed of the last `FEED_ENTRIES` sent editions.
#[derive(Debug, Clone, PartialEq)]
pub struct Feed {
    pub xml: String,
    /// A strong validator of `xml`.
    pub etag: String,
    /// When the newest entry last changed.
    pub updated: DateTime<Utc>,
    /// What it was built from (the ids and versions of the editions it
    /// lists): a feed of the same key is the same feed.
    key: String,
}

/// What a subscriber's preferences page shows.
#[derive(Debug, Clone)]
pub struct PreferencesView {
    pub subscriber: Subscriber,
    /// The latest sent edition's date and, for each of the subscriber's
    /// topics, how many of its stories it matched.
    pub hints: Option<(NaiveDate, Vec<(String, usize)>)>,
}

/// A welcome message, taken for sending (it goes out at most once).
pub struct Welcome {
    subscriber_id: i64,
    message: lettre::Message,
    transport: crate::mail::Transport,
}

impl Welcome {
    /// Sends it (no database work).
    pub fn send(&self) -> Result<()> {
        let name = format!("welcome-{}", self.subscriber_id);
        self.transport.send(&self.message, &name).map_err(|e| {
            Error::Invalid(format!(
                "mailing the welcome to subscriber {}: {e}",
                self.subscriber_id
            ))
        })?;
        tracing::info!("welcome mailed to subscriber {}", self.subscriber_id);
        Ok(())
    }
}

/// When a stored edition last changed: stored or edited, or approved.
fn changed_at<E>(stored: &StoredEdition<E>) -> DateTime<Utc> {
    let parse = |t: &str| {
        DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    let rendered = parse(&stored.rendered_at);
    let approved = stored.approved.as_ref().and_then(|(_, at)| parse(at));
    rendered.max(approved).unwrap_or(DateTime::UNIX_EPOCH)
}

/// A stable `urn:uuid:` for `name` within the list `list_id` (RFC 4122
/// layout, SHA-256 based): Atom ids that survive a change of address.
fn urn(list_id: &str, name: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(list_id.as_bytes());
    h.update(b"\0");
    h.update(name.as_bytes());
    let mut b: [u8; 16] = h.finalize()[..16].try_into().expect("16 bytes");
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

impl Pipeline {
    fn base_url(&self) -> &str {
        self.config.base_url.trim_end_matches('/')
    }

    fn published(
        &self,
        which: Published,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<StoredEdition<Edition>>, usize)> {
        let (rows, total) = self.store.published_editions(which, limit, offset)?;
        // An edition that no longer reads (a schema change) is left out.
        Ok((rows.into_iter().filter_map(|r| r.parse()).collect(), total))
    }

    /// The web copy of the edition of `date`: as sent, for nobody in
    /// particular. None unless it is published.
    pub fn web_copy(&self, date: NaiveDate) -> Result<Option<Rendered>> {
        let Some(stored) = self.stored_edition(date)? else {
            return Ok(None);
        };
        if !self
            .store
            .is_published(stored.id, Published::SentOrApproved)?
        {
            return Ok(None);
        }
        Ok(Some(
            self.renderer()?
                .render(&stored.edition, &Recipient::web_copy())?,
        ))
    }

    /// Page `page` (1-based) of the archive: published editions, newest
    /// first, `ARCHIVE_PAGE` a page. None for a page past the last (page 1
    /// always exists, empty or not).
    pub fn archive(&self, page: usize) -> Result<Option<ArchivePage>> {
        let page = page.max(1);
        let (editions, total) = self.published(
            Published::SentOrApproved,
            ARCHIVE_PAGE,
            (page - 1).saturating_mul(ARCHIVE_PAGE),
        )?;
        let pages = total.div_ceil(ARCHIVE_PAGE).max(1);
        if page > pages {
            return Ok(None);
        }
        let renderer = self.renderer()?;
        let recipient = Recipient::web_copy();
        let entries = editions
            .iter()
            .map(|s| {
                Ok(ArchiveEntry {
                    date: s.date,
                    subject: renderer.subject_for(&s.edition, &recipient)?,
                    story_count: s.edition.stories.len(),
                    headlines: s
                        .edition
                        .stories
                        .iter()
                        .take(ARCHIVE_HEADLINES)
                        .map(|st| st.headline.clone())
                        .collect(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(ArchivePage {
            entries,
            page,
            pages,
        }))
    }

    /// Whether any edition is published.
    pub fn has_published(&self) -> Result<bool> {
        Ok(self
            .store
            .published_editions(Published::SentOrApproved, 0, 0)?
            .1
            > 0)
    }

    /// The Atom feed (RFC 4287) of the last `FEED_ENTRIES` sent editions,
    /// each with its web copy's HTML as content. `kept`, the feed built
    /// before, is returned as it is when it lists the same editions:
    /// nothing is rendered then.
    pub fn atom_feed(&self, kept: Option<Arc<Feed>>) -> Result<Arc<Feed>> {
        use atom_syndication::{Content, Entry, FixedDateTime, Link};
        let (rows, _) = self
            .store
            .published_editions(Published::Sent, FEED_ENTRIES, 0)?;
        let key = rows
            .iter()
            .map(|r| format!("{}:{}", r.id, r.version))
            .collect::<Vec<_>>()
            .join(",");
        if let Some(kept) = kept.filter(|k| k.key == key) {
            return Ok(kept);
        }
        // An edition that no longer reads (a schema change) is left out.
        let editions: Vec<StoredEdition<Edition>> =
            rows.into_iter().filter_map(|r| r.parse()).collect();
        let settings = message_settings(&self.config)?;
        let renderer = self.renderer()?;
        let base = self.base_url();
        let link = |href: String, rel: &str, mime: Option<&str>| Link {
            href,
            rel: rel.into(),
            mime_type: mime.map(Into::into),
            ..Default::default()
        };
        let fixed = |t: DateTime<Utc>| FixedDateTime::from(t);
        let mut updated = DateTime::UNIX_EPOCH;
        let mut entries = Vec::with_capacity(editions.len());
        for s in &editions {
            let rendered = renderer.render(&s.edition, &Recipient::web_copy())?;
            let changed = changed_at(s);
            updated = updated.max(changed);
            let url = format!("{base}/editions/{}", s.date);
            entries.push(Entry {
                id: urn(&settings.list_id, &format!("edition {}", s.date)),
                title: rendered.subject.clone().into(),
                updated: fixed(changed),
                published: Some(fixed(
                    s.date.and_hms_opt(0, 0, 0).expect("midnight").and_utc(),
                )),
                links: vec![link(url, "alternate", Some("text/html"))],
                content: Some(Content {
                    value: Some(rendered.html),
                    content_type: Some("html".into()),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        let feed = atom_syndication::Feed {
            id: urn(&settings.list_id, "feed"),
            title: self.config.title.clone().into(),
            updated: fixed(updated),
            links: vec![
                link(
                    format!("{base}/editions.atom"),
                    "self",
                    Some("application/atom+xml"),
                ),
                link(format!("{base}/editions"), "alternate", Some("text/html")),
            ],
            authors: vec![atom_syndication::Person {
                name: self.config.title.clone(),
                ..Default::default()
            }],
            entries,
            ..Default::default()
        };
        let xml = feed.to_string();
        let etag = format!("\"{}\"", crate::article::short_hash(&[&xml]));
        Ok(Arc::new(Feed {
            xml,
            etag,
            updated,
            key,
        }))
    }

    /// The preferences page of the subscriber holding `token`: None when
    /// nobody holds it.
    pub fn preferences(&self, token: &str) -> Result<Option<PreferencesView>> {
        let Some(subscriber) = self.store.subscriber_by_token(token)? else {
            return Ok(None);
        };
        let (latest, _) = self.published(Published::Sent, 1, 0)?;
        let hints = latest.first().map(|s| {
            (
                s.date,
                crate::edition::topic_matches(&s.edition, &subscriber.topics),
            )
        });
        Ok(Some(PreferencesView { subscriber, hints }))
    }

    /// Changes the preferences of the active subscriber holding `token`:
    /// topics as typed, "only these topics", and a pause date as typed
    /// (`YYYY-MM-DD`, empty for none). Bad topics or dates are
    /// `Error::Invalid` with a message for the reader; false when no active
    /// subscriber holds the token.
    pub fn change_preferences(
        &self,
        token: &str,
        topics: &str,
        topics_only: bool,
        pause: &str,
    ) -> Result<bool> {
        let topics = check_topics(topics).map_err(|e| Error::Invalid(e.to_string()))?;
        let paused_until = self.check_pause(pause)?;
        let prefs = Preferences {
            topics,
            topics_only,
            paused_until,
        };
        Ok(self.store.set_preferences(token, &prefs, Utc::now())?)
    }

    /// A pause date as typed: none when empty or today (nothing to pause);
    /// a date in the past or more than `MAX_PAUSE_DAYS` ahead is refused.
    fn check_pause(&self, pause: &str) -> Result<Option<NaiveDate>> {
        let pause = pause.trim();
        if pause.is_empty() {
            return Ok(None);
        }
        let date = NaiveDate::parse_from_str(pause, "%Y-%m-%d").map_err(|_| {
            Error::Invalid(format!(
                "Please give the pause's end as a date, like {}.",
                self.today() + Duration::days(14)
            ))
        })?;
        let today = self.today();
        if date < today {
            return Err(Error::Invalid(format!(
                "{date} has passed: choose a day after today, or leave the date empty to receive every edition."
            )));
        }
        if date > today + Duration::days(MAX_PAUSE_DAYS) {
            return Err(Error::Invalid(format!(
                "A pause may last up to a year: choose a day no later than {}.",
                today + Duration::days(MAX_PAUSE_DAYS)
            )));
        }
        Ok((date > today).then_some(date))
    }

    /// The welcome messages due now (at most 20), each taken for sending:
    /// another process will not send it too.
    pub fn welcomes_due(&self) -> Result<Vec<Welcome>> {
        let due = self.store.welcomes_due(Utc::now(), 20)?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let (settings, transport) = self.confirmation_transport()?;
        let (latest, _) = self.published(Published::Sent, 1, 0)?;
        let latest = latest.first().map(|s| s.date);
        let mut out = Vec::new();
        for subscriber in due {
            if !self.store.take_welcome(subscriber.id)? {
                continue;
            }
            match crate::mail::welcome::welcome(
                &subscriber,
                &self.config.title,
                &settings,
                latest,
                Utc::now(),
            ) {
                Ok(message) => out.push(Welcome {
                    subscriber_id: subscriber.id,
                    message,
                    transport: transport.clone(),
                }),
                Err(e) => tracing::error!("welcome for subscriber {}: {e}", subscriber.id),
            }
        }
        Ok(out)
    }

    /// Records a welcome that could not be sent: it is due again later.
    pub fn welcome_failed(&self, welcome: &Welcome) -> Result<()> {
        Ok(self.store.welcome_again(
            welcome.subscriber_id,
            Utc::now() + Duration::minutes(WELCOME_RETRY_MINUTES),
        )?)
    }
}
