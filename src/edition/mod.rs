//! An `Edition`: the day's stories, ranked, with the same story from several
//! sources merged into one.
//!
//! Assembly works on summarized articles of one edition date:
//! 1. **Group.** Reports of one event become one story (`group`): by the
//!    meaning of their title and lead (sentence embeddings) and the words
//!    they share, with average link over each report's nearest neighbours,
//!    so chains of similar reports do not collapse into one story. A story
//!    of several reports gets one summary drawn from all of them (`story`);
//!    it shows the best-written report's headline and lists the others as
//!    "also reported by".
//! 2. **Rank.** A story's importance is its source weight times the number
//!    of distinct sources carrying it plus its centrality (how much the rest
//!    of the day's news refers to it).
//! 3. **Cut.** The first `max_stories` are full stories; the rest are listed
//!    as headlines only. The first `top_stories` make the overview.
//!
//! `assemble.rs` does the three steps (and `gather` reads and summarizes
//! the day's articles first); `edit.rs` holds the editor's verbs on a
//! stored edition; `personalize.rs` makes a subscriber's copy.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::summarize::Budget;

mod assemble;
mod edit;
mod group;
mod link;
mod personalize;
mod story;

pub use assemble::{assemble, belongs_to, gather, Entry, Gathered};
pub use edit::{EditError, MAX_HEADLINE_CHARS};
pub use group::GROUPING_TOKENS;
pub use personalize::{personalize, topic_matches};

/// How an edition is put together.
#[derive(Debug, Clone)]
pub struct EditionOptions {
    pub date: NaiveDate,
    /// Full stories (headline and summary); the rest are headlines only.
    pub max_stories: usize,
    /// Headlines in the overview at the top.
    pub top_stories: usize,
    /// Weight of each source by name (default 1.0).
    pub source_weights: BTreeMap<String, f32>,
    /// Without an encoder: the mean word similarity at which reports are
    /// one story (`group`).
    pub merge_threshold: f32,
    /// The summary budget: a story of several reports gets one summary
    /// drawn from all of them within it.
    pub budget: Budget,
}

/// One source's report of a story.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub source: String,
    pub url: Option<String>,
    pub headline: String,
    pub article_id: String,
    /// The report's own summary (what the story shows if it is split off).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub summary: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub headline_derived: bool,
}

/// One story of the edition: one or more articles about the same event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Story {
    /// 1-based rank in the edition.
    pub rank: usize,
    pub headline: String,
    /// The summary, one sentence per entry.
    pub summary: Vec<String>,
    /// The source of the article whose summary is shown.
    pub source: String,
    pub url: Option<String>,
    pub date: Option<NaiveDate>,
    /// Every distinct source that carried the story, the main one first.
    pub sources: Vec<String>,
    /// Every known URL, the main one first.
    pub urls: Vec<String>,
    /// The other reports of the same story.
    pub also_reported_by: Vec<Report>,
    pub importance: f32,
    /// Full story (headline and summary) or headline only.
    pub full: bool,
    /// Ids of the articles merged into this story.
    pub article_ids: Vec<String>,
    /// The headline was derived from the article (its source gave none).
    #[serde(default)]
    pub headline_derived: bool,
}

/// The day's digest as data: what every template and the JSON preview see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edition {
    pub date: NaiveDate,
    /// All stories, ranked: the full ones first, then the headline-only ones.
    pub stories: Vec<Story>,
    /// How many stories the overview lists.
    pub top_stories: usize,
    /// Articles that went into the edition.
    pub article_count: usize,
    /// Distinct sources among them.
    pub source_count: usize,
}

impl Edition {
    pub fn full_stories(&self) -> impl Iterator<Item = &Story> {
        self.stories.iter().filter(|s| s.full)
    }

    pub fn briefs(&self) -> impl Iterator<Item = &Story> {
        self.stories.iter().filter(|s| !s.full)
    }
}
