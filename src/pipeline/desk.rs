//! The editor's desk: the stored edition is what editors build, read, fix
//! and approve before it goes out. Every change is checked against the
//! edition's version (an edit made from an older version is refused) and
//! refused once sending has started, and is logged with time and user.

use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{Error, Pipeline, Result, StoredEdition};
use crate::edition::{EditError, Edition, MAX_HEADLINE_CHARS};
use crate::ingest::Input;
use crate::store::{LogEntry, Refused};

/// One change an editor makes from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Drop(usize),
    Move { rank: usize, to: usize },
    Headline(usize, String),
    Summary(usize, String),
    Merge(usize, usize),
    Split(usize),
}

impl Change {
    fn describe(&self) -> String {
        match self {
            Change::Drop(n) => format!("dropped story {n}"),
            Change::Move { rank, to } => format!("moved story {rank} to {to}"),
            Change::Headline(n, h) => format!("headline of story {n}: {h:?}"),
            Change::Summary(n, _) => format!("summary of story {n} rewritten"),
            Change::Merge(n, m) => format!("merged story {m} into story {n}"),
            Change::Split(n) => format!("split story {n} into its reports"),
        }
    }

    fn apply(&self, edition: &mut Edition) -> Result<(), EditError> {
        match self {
            Change::Drop(n) => edition.drop_story(*n).map(|_| ()),
            Change::Move { rank, to } => edition.move_story(*rank, *to),
            Change::Headline(n, h) => edition.set_headline(*n, h),
            Change::Summary(n, text) => {
                let sentences = crate::text::split_sentences(text)
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                edition.set_summary(*n, sentences)
            }
            Change::Merge(n, m) => edition.merge(*n, *m),
            Change::Split(n) => edition.split(*n).map(|_| ()),
        }
    }
}

fn refused(date: NaiveDate, why: Refused) -> Error {
    Error::Invalid(match why {
        Refused::SendingStarted => format!(
            "sending of the edition of {date} has started: it can no longer be changed"
        ),
        Refused::Changed => format!(
            "the edition of {date} changed while you worked on it (another edit or a rebuild); nothing was changed: look at it again and redo the change"
        ),
    })
}

/// The edition as an editor edits it: TOML, one `[[story]]` per story.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default)]
    story: Vec<DocStory>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocStory {
    id: String,
    #[serde(default = "yes")]
    full: bool,
    headline: String,
    summary: Vec<String>,
    /// For reference only: read back and ignored.
    #[serde(default)]
    sources: Vec<String>,
    #[serde(default)]
    drop: bool,
}

fn yes() -> bool {
    true
}

/// A story's identity in the document: its main article's id.
fn story_id(story: &crate::edition::Story) -> String {
    story.article_ids.first().cloned().unwrap_or_default()
}

/// The stored edition as a commented TOML document for `$EDITOR`.
pub fn document(stored: &StoredEdition) -> String {
    let doc = Document {
        story: stored
            .edition
            .stories
            .iter()
            .map(|s| DocStory {
                id: story_id(s),
                full: s.full,
                headline: s.headline.clone(),
                summary: s.summary.clone(),
                sources: s.sources.clone(),
                drop: false,
            })
            .collect(),
    };
    let body = toml::to_string_pretty(&doc).expect("documents serialize");
    format!(
        "# The edition of {date} (version {version}), as it will be sent.\n\
         # Edit and save. Reorder the [[story]] blocks to reorder the stories; change\n\
         # a headline or the summary sentences; set drop = true (or delete the block)\n\
         # to drop a story; full = false makes it a headline-only brief. `id` says\n\
         # which story a block is: leave it as it is. `sources` is for reference.\n\
         # Merge and split with `digest edition merge|split`. Quit without saving to\n\
         # change nothing.\n\n{body}",
        date = stored.date,
        version = stored.version
    )
}

/// Applies an edited document to the edition; `Err` says what is wrong
/// with the document (nothing is changed then).
/// `Ok(None)` when the document changes nothing.
fn apply_document(
    edition: &Edition,
    text: &str,
) -> std::result::Result<Option<(Edition, String)>, String> {
    let doc: Document = toml::from_str(text).map_err(|e| e.to_string().trim().to_owned())?;
    let mut seen = std::collections::HashSet::new();
    let mut full = Vec::new();
    let mut briefs = Vec::new();
    let mut changes: Vec<String> = Vec::new();
    for (i, block) in doc.story.iter().enumerate() {
        let original = edition
            .stories
            .iter()
            .find(|s| story_id(s) == block.id)
            .ok_or_else(|| format!("story block {}: no story has id {:?}", i + 1, block.id))?;
        if !seen.insert(block.id.clone()) {
            return Err(format!(
                "story block {}: id {:?} appears twice",
                i + 1,
                block.id
            ));
        }
        if block.drop {
            changes.push(format!("dropped {:?}", original.headline));
            continue;
        }
        let headline = crate::text::clean::one_line(&block.headline);
        if headline.is_empty() || headline.chars().count() > MAX_HEADLINE_CHARS {
            return Err(format!(
                "story block {} ({}): the headline must be 1 to {MAX_HEADLINE_CHARS} characters",
                i + 1,
                block.id
            ));
        }
        let summary: Vec<String> = block
            .summary
            .iter()
            .map(|s| crate::text::clean::one_line(s))
            .filter(|s| !s.is_empty())
            .collect();
        if summary.is_empty() && block.full {
            return Err(format!(
                "story block {} ({}): a full story needs a summary",
                i + 1,
                block.id
            ));
        }
        let mut story = original.clone();
        if headline != story.headline {
            changes.push(format!("headline {:?} -> {headline:?}", story.headline));
            story.headline = headline;
            story.headline_derived = false;
        }
        if summary != story.summary && !summary.is_empty() {
            changes.push(format!("summary of {:?}", story.headline));
            story.summary = summary;
        }
        if block.full != story.full {
            changes.push(format!(
                "{:?} made {}",
                story.headline,
                if block.full {
                    "a full story"
                } else {
                    "a brief"
                }
            ));
        }
        story.full = block.full;
        if story.full {
            full.push(story);
        } else {
            briefs.push(story);
        }
    }
    for s in &edition.stories {
        if !seen.contains(&story_id(s)) {
            changes.push(format!("dropped {:?}", s.headline));
        }
    }
    let mut edited = edition.clone();
    edited.stories = full.into_iter().chain(briefs).collect();
    let order: Vec<String> = edited.stories.iter().map(story_id).collect();
    let before: Vec<String> = edition
        .stories
        .iter()
        .map(story_id)
        .filter(|id| order.contains(id))
        .collect();
    if order != before {
        changes.push("order changed".into());
    }
    for (i, s) in edited.stories.iter_mut().enumerate() {
        s.rank = i + 1;
    }
    edited.top_stories = edition.top_stories.min(edited.stories.len());
    if changes.is_empty() {
        return Ok(None);
    }
    Ok(Some((edited, format!("edited: {}", changes.join("; ")))))
}

/// What an edited document did.
#[derive(Debug)]
pub enum Edited {
    /// Saved as the new version.
    Saved(Box<StoredEdition>, String),
    /// The document was saved unchanged: nothing to do.
    Unchanged,
    /// The document is not valid: why (nothing was changed).
    Invalid(String),
}

impl Pipeline {
    /// The run lock, for a change to a stored edition: a change never lands
    /// while a send or run reads the edition it is about to send.
    fn edit_lock(&self) -> Result<crate::lock::RunLock> {
        self.run_lock()?.map_err(|locked| {
            Error::Invalid(format!(
                "a send or run is in progress ({}); the edition cannot change now: try again when it ends",
                locked.path.display()
            ))
        })
    }

    /// Saves an edited edition as a new version (approval, if any, is
    /// withdrawn: the content changed since it was approved).
    fn save_change(&self, from: &StoredEdition, edition: &Edition, change: &str) -> Result<()> {
        let change = if from.approved.is_some() {
            format!("{change}; approval withdrawn (the content changed)")
        } else {
            change.to_owned()
        };
        self.store
            .change_edition(
                from.id,
                from.version,
                edition,
                &self.user,
                &change,
                Utc::now(),
            )?
            .map(|_| ())
            .map_err(|why| refused(from.date, why))
    }

    /// Builds the edition of `date` and stores it without sending. An
    /// edition already stored is kept unless `rebuild`, which is refused
    /// once sending it has started. Returns it with the inputs skipped.
    pub fn build_stored(
        &self,
        date: NaiveDate,
        inputs: Vec<Input>,
        rebuild: bool,
    ) -> Result<(StoredEdition, usize)> {
        if let Some(stored) = self.store.edition::<Edition>(date)? {
            if !rebuild {
                return Ok((stored, 0));
            }
            if self.store.sending_started(stored.id)? {
                return Err(refused(date, Refused::SendingStarted));
            }
            let _lock = self.edit_lock()?;
            let built = self.build(date, inputs)?;
            if built.edition.stories.is_empty() {
                return Err(Error::Invalid(format!(
                    "no stories for {date} in its articles: the stored edition is kept as it was"
                )));
            }
            self.save_change(&stored, &built.edition, "rebuilt")?;
            return Ok((self.stored(date)?, built.skipped));
        }
        let built = self.build(date, inputs)?;
        if built.edition.stories.is_empty() {
            return Err(Error::Invalid(format!(
                "no news for {date}: no articles made a story, so no edition is stored (a later build with news makes one)"
            )));
        }
        let stored = self.store.store_edition(date, &built.edition, Utc::now())?;
        self.store
            .log_edition(stored.id, &self.user, "built", Utc::now())?;
        Ok((stored, built.skipped))
    }

    /// The stored edition of `date`, or an error saying how to build it.
    pub fn stored(&self, date: NaiveDate) -> Result<StoredEdition> {
        self.store.edition(date)?.ok_or_else(|| {
            Error::Invalid(format!(
                "no edition of {date} is stored yet: `digest edition build --date {date}` builds one"
            ))
        })
    }

    /// An edition that may still change: stored, and not being sent.
    pub fn editable(&self, date: NaiveDate) -> Result<StoredEdition> {
        let stored = self.stored(date)?;
        if self.store.sending_started(stored.id)? {
            return Err(refused(date, Refused::SendingStarted));
        }
        Ok(stored)
    }

    /// Makes one change to the stored edition of `date`.
    pub fn change(&self, date: NaiveDate, change: &Change) -> Result<StoredEdition> {
        let _lock = self.edit_lock()?;
        let stored = self.editable(date)?;
        let mut edition = stored.edition.clone();
        change
            .apply(&mut edition)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        self.save_change(&stored, &edition, &change.describe())?;
        self.stored(date)
    }

    /// Applies a document edited from version `from` of the edition.
    pub fn save_document(&self, from: &StoredEdition, text: &str) -> Result<Edited> {
        let (edition, change) = match apply_document(&from.edition, text) {
            Ok(Some(done)) => done,
            Ok(None) => return Ok(Edited::Unchanged),
            Err(e) => return Ok(Edited::Invalid(e)),
        };
        let _lock = self.edit_lock()?;
        self.save_change(from, &edition, &change)?;
        Ok(Edited::Saved(Box::new(self.stored(from.date)?), change))
    }

    /// Approves the edition of `date` for sending, or takes approval back.
    pub fn approve(&self, date: NaiveDate, approve: bool) -> Result<StoredEdition> {
        let _lock = self.edit_lock()?;
        let stored = self.stored(date)?;
        self.store
            .set_approval(stored.id, approve, &self.user, Utc::now())?
            .map_err(|why| refused(date, why))?;
        self.stored(date)
    }

    /// The changes made to the edition of `date`, oldest first.
    pub fn edition_log(&self, date: NaiveDate) -> Result<Vec<LogEntry>> {
        let stored = self.stored(date)?;
        Ok(self.store.edition_log(stored.id)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> StoredEdition {
        let mut edition = crate::render::sample_edition();
        for s in &mut edition.stories {
            s.article_ids = vec![format!("s{}", s.rank)];
        }
        StoredEdition {
            id: 1,
            date: NaiveDate::from_ymd_opt(2022, 3, 14).unwrap(),
            edition,
            content_hash: String::new(),
            rendered_at: String::new(),
            version: 1,
            approved: None,
            notified_at: None,
        }
    }

    #[test]
    fn a_document_round_trips_and_applies_edits() {
        let s = stored();
        let doc = document(&s);
        assert_eq!(apply_document(&s.edition, &doc).unwrap(), None, "unchanged");
        let edited = doc.replacen("Sample headline number 2", "A better headline", 1);
        let (e, change) = apply_document(&s.edition, &edited).unwrap().unwrap();
        assert_eq!(e.stories[1].headline, "A better headline");
        assert!(change.contains("A better headline"), "{change}");
        let dropped = doc.replacen("drop = false", "drop = true", 1);
        let (e, _) = apply_document(&s.edition, &dropped).unwrap().unwrap();
        assert_eq!(e.stories.len(), s.edition.stories.len() - 1);
        assert_eq!(e.stories[0].rank, 1);
        let broken = doc.replacen("headline = ", "headlin = ", 1);
        assert!(apply_document(&s.edition, &broken)
            .unwrap_err()
            .contains("headlin"));
        let unknown = doc.replacen("id = \"s1\"", "id = \"zzz\"", 1);
        assert!(apply_document(&s.edition, &unknown)
            .unwrap_err()
            .contains("zzz"));
    }
}
