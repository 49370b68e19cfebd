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

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::article::Article;
use crate::embed::Embed;
use crate::ingest::IngestError;
use crate::summarize::{Budget, Summarizer, Summary};
use crate::text::sparse::{self, cosine, Idf, Sparse, Tf};
use crate::text::Terms;

mod group;
mod link;
mod story;

pub use group::GROUPING_TOKENS;

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

/// Why an edit cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("there is no story {0} (the edition has {1}; `digest edition show` lists them)")]
    NoStory(usize, usize),
    #[error("{0}")]
    Invalid(String),
}

/// Longest headline an editor may write, in characters.
pub const MAX_HEADLINE_CHARS: usize = 150;

impl Edition {
    fn index(&self, rank: usize) -> Result<usize, EditError> {
        if rank == 0 || rank > self.stories.len() {
            return Err(EditError::NoStory(rank, self.stories.len()));
        }
        Ok(rank - 1)
    }

    /// Numbers the stories 1..n in their order again; the first
    /// `full_count` are full stories, the rest headlines only.
    fn renumber(&mut self, full_count: usize) {
        for (i, s) in self.stories.iter_mut().enumerate() {
            s.rank = i + 1;
            s.full = i < full_count;
        }
        self.top_stories = self.top_stories.min(self.stories.len());
    }

    fn full_count(&self) -> usize {
        self.stories.iter().filter(|s| s.full).count()
    }

    /// Takes story `rank` out of the edition.
    pub fn drop_story(&mut self, rank: usize) -> Result<Story, EditError> {
        let i = self.index(rank)?;
        let full = self.full_count() - usize::from(self.stories[i].full);
        let story = self.stories.remove(i);
        self.renumber(full);
        Ok(story)
    }

    /// Moves story `rank` to position `to` (the others shift).
    pub fn move_story(&mut self, rank: usize, to: usize) -> Result<(), EditError> {
        let i = self.index(rank)?;
        let j = self.index(to)?;
        let full = self.full_count();
        let story = self.stories.remove(i);
        self.stories.insert(j, story);
        self.renumber(full);
        Ok(())
    }

    /// Replaces a story's headline (one line, at most `MAX_HEADLINE_CHARS`).
    pub fn set_headline(&mut self, rank: usize, headline: &str) -> Result<(), EditError> {
        let i = self.index(rank)?;
        let headline = one_line(headline);
        if headline.is_empty() {
            return Err(EditError::Invalid(format!(
                "story {rank}: the headline is empty"
            )));
        }
        if headline.chars().count() > MAX_HEADLINE_CHARS {
            return Err(EditError::Invalid(format!(
                "story {rank}: the headline is longer than {MAX_HEADLINE_CHARS} characters"
            )));
        }
        self.stories[i].headline = headline;
        self.stories[i].headline_derived = false;
        Ok(())
    }

    /// Replaces a story's summary with `sentences` (at least one).
    pub fn set_summary(&mut self, rank: usize, sentences: Vec<String>) -> Result<(), EditError> {
        let i = self.index(rank)?;
        let sentences: Vec<String> = sentences
            .iter()
            .map(|s| one_line(s))
            .filter(|s| !s.is_empty())
            .collect();
        if sentences.is_empty() {
            return Err(EditError::Invalid(format!(
                "story {rank}: the summary is empty"
            )));
        }
        self.stories[i].summary = sentences;
        Ok(())
    }

    /// Merges story `other` into story `rank` (the grouping missed that they
    /// are one event): its reports are listed as "also reported by".
    pub fn merge(&mut self, rank: usize, other: usize) -> Result<(), EditError> {
        let i = self.index(rank)?;
        let j = self.index(other)?;
        if i == j {
            return Err(EditError::Invalid(format!(
                "story {rank} cannot be merged with itself"
            )));
        }
        let full = self.full_count() - usize::from(self.stories[j].full);
        let taken = self.stories[j].clone();
        let main_report = Report {
            source: taken.source.clone(),
            url: taken.url.clone(),
            headline: taken.headline.clone(),
            article_id: taken.article_ids.first().cloned().unwrap_or_default(),
            summary: taken.summary.clone(),
            date: taken.date,
            headline_derived: taken.headline_derived,
        };
        let target = &mut self.stories[i];
        target.also_reported_by.push(main_report);
        target.also_reported_by.extend(taken.also_reported_by);
        for source in taken.sources {
            if !target.sources.contains(&source) {
                target.sources.push(source);
            }
        }
        for url in taken.urls {
            if !target.urls.contains(&url) {
                target.urls.push(url);
            }
        }
        target.article_ids.extend(taken.article_ids);
        self.stories.remove(j);
        self.renumber(full.max(1).min(self.stories.len()));
        Ok(())
    }

    /// Splits story `rank` back into its reports: the main report stays,
    /// each other report becomes a story of its own right after it (with
    /// its own summary when one was kept).
    pub fn split(&mut self, rank: usize) -> Result<usize, EditError> {
        let i = self.index(rank)?;
        let story = &mut self.stories[i];
        if story.also_reported_by.is_empty() {
            return Err(EditError::Invalid(format!(
                "story {rank} has only one report"
            )));
        }
        let reports = std::mem::take(&mut story.also_reported_by);
        let main_id = story.article_ids.first().cloned();
        story.sources.truncate(1);
        story.urls = story.url.iter().cloned().collect();
        story.article_ids = main_id.into_iter().collect();
        let importance = story.importance;
        let full_before = self.full_count();
        let added = reports.len();
        let new: Vec<Story> = reports
            .into_iter()
            .map(|r| Story {
                rank: 0,
                summary: if r.summary.is_empty() {
                    vec![r.headline.clone()]
                } else {
                    r.summary
                },
                headline: r.headline,
                source: r.source.clone(),
                url: r.url.clone(),
                date: r.date,
                sources: vec![r.source],
                urls: r.url.into_iter().collect(),
                also_reported_by: Vec::new(),
                importance,
                full: false,
                article_ids: vec![r.article_id],
                headline_derived: r.headline_derived,
            })
            .collect();
        let at = i + 1;
        self.stories.splice(at..at, new);
        let full = if i < full_before {
            full_before + added
        } else {
            full_before
        };
        self.renumber(full);
        Ok(added)
    }
}

/// Editor text as it may go into a message: one line, no control
/// characters.
fn one_line(s: &str) -> String {
    crate::text::clean::one_line(s)
}

/// A summarized article on its way into an edition.
pub struct Entry {
    pub article: Article,
    pub summary: Summary,
}

/// The name a report is credited to: the source, else the URL's host, else
/// the name of the file it came from (without extension).
fn source_name(article: &Article) -> String {
    article.source.clone().unwrap_or_else(|| {
        let origin = article
            .origin
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or(&article.origin);
        let file = origin.split(':').next().unwrap_or(origin);
        std::path::Path::new(file)
            .file_stem()
            .map_or_else(|| file.to_owned(), |s| s.to_string_lossy().into_owned())
    })
}

/// Whether an article belongs to the edition of `date`: its own date, or
/// no date at all (it belongs to the edition it is ingested for).
pub fn belongs_to(article: &Article, date: NaiveDate) -> bool {
    article.date.is_none_or(|d| d == date)
}

/// What `gather` collected for an edition.
pub struct Gathered {
    pub entries: Vec<Entry>,
    /// Inputs that could not be read or summarized (each already warned about).
    pub skipped: usize,
    /// Articles dated another day, left out of this edition.
    pub other_dates: usize,
}

/// Reads and summarizes the articles of one edition date. Broken inputs are
/// warned about and counted, never fatal. `progress` is called after each
/// article read.
pub fn gather(
    items: impl IntoIterator<Item = Result<Article, IngestError>>,
    date: NaiveDate,
    summarizer: &dyn Summarizer,
    budget: Budget,
    mut progress: impl FnMut(&Article),
) -> Gathered {
    let mut out = Gathered {
        entries: Vec::new(),
        skipped: 0,
        other_dates: 0,
    };
    // Articles wait in `batch` until the summarizer's batch is full: a
    // transformer summarizes them in one pass.
    let mut batch: Vec<Article> = Vec::new();
    let size = summarizer.batch_size().max(1);
    let flush = |batch: &mut Vec<Article>, out: &mut Gathered| {
        if batch.is_empty() {
            return;
        }
        let refs: Vec<&Article> = batch.iter().collect();
        let results = summarizer.summarize_batch(&refs, budget);
        for (article, result) in batch.drain(..).zip(results) {
            match result {
                Ok(summary) => out.entries.push(Entry { article, summary }),
                Err(e) => {
                    tracing::warn!("skipped {}: {e}", article.origin);
                    out.skipped += 1;
                }
            }
        }
    };
    for item in items {
        let article = match item {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("skipped {e}");
                out.skipped += 1;
                continue;
            }
        };
        progress(&article);
        if !belongs_to(&article, date) {
            tracing::debug!(
                "{}: dated {}, not in the edition of {date}",
                article.origin,
                article.date.map_or_else(String::new, |d| d.to_string())
            );
            out.other_dates += 1;
            continue;
        }
        batch.push(article);
        if batch.len() >= size {
            flush(&mut batch, &mut out);
        }
    }
    flush(&mut batch, &mut out);
    out
}

fn summary_lines(summary: &Summary) -> Vec<String> {
    summary.sentences.iter().map(|s| s.text.clone()).collect()
}

/// Builds the edition from summarized articles (all of the edition's
/// date). With an `embedder`, reports of one event are grouped by meaning
/// as well as by words (`group`); without one (or if it fails), by words.
pub fn assemble(
    entries: Vec<Entry>,
    opts: &EditionOptions,
    embedder: Option<&dyn Embed>,
) -> Edition {
    let n = entries.len();
    let terms = Terms::new();
    let bodies = vectors(&entries, &terms);

    // 1. Group the reports of one event.
    let embeddings = embedder.and_then(|e| {
        let texts: Vec<String> = entries
            .iter()
            .map(|x| group::grouping_text(&x.article))
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        match e.embed(&refs) {
            Ok(v) => Some(v),
            Err(err) => {
                tracing::warn!(
                    "sentence encoder {} failed ({err}): stories are grouped by shared words only",
                    e.name()
                );
                None
            }
        }
    });
    let features: Vec<group::Features> = entries
        .iter()
        .map(|e| group::Features::of(&e.article))
        .collect();
    let cluster = group::group(&features, embeddings.as_deref(), opts.merge_threshold);
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &c) in cluster.iter().enumerate() {
        groups.entry(c).or_default().push(i);
    }

    // 2. Rank. Each article's total similarity to all others: bodies are
    // unit vectors, so it is its dot product with their sum (minus itself),
    // without an n-by-n matrix.
    let total = sparse::sum(&bodies);
    let related: Vec<f32> = bodies
        .iter()
        .map(|b| (sparse::dot_dense(b, &total) - 1.0).max(0.0))
        .collect();
    let body_sim = |i: usize, j: usize| cosine(&bodies[i], &bodies[j]);
    let mut stories: Vec<Story> = groups
        .into_values()
        .map(|members| {
            let main = *members
                .iter()
                .max_by(|&&a, &&b| {
                    quality(&entries[a])
                        .total_cmp(&quality(&entries[b]))
                        .then(b.cmp(&a))
                })
                .expect("a group has members");
            let mut sources: Vec<String> = Vec::new();
            let mut urls: Vec<String> = Vec::new();
            let mut also = Vec::new();
            for &i in std::iter::once(&main).chain(members.iter().filter(|&&i| i != main)) {
                let a = &entries[i].article;
                let name = source_name(a);
                if !sources.contains(&name) {
                    sources.push(name.clone());
                }
                if let Some(u) = &a.url {
                    if !urls.contains(u) {
                        urls.push(u.clone());
                    }
                }
                if i != main {
                    also.push(Report {
                        source: name,
                        url: a.url.clone(),
                        headline: a.title.clone(),
                        article_id: a.id.clone(),
                        summary: summary_lines(&entries[i].summary),
                        date: a.date,
                        headline_derived: a.title_derived,
                    });
                }
            }
            let weight = sources
                .iter()
                .map(|s| source_weight(&opts.source_weights, s))
                .fold(0f32, f32::max);
            // Centrality: how much the rest of the day's news refers to the
            // story (similarity of its best-connected article to articles
            // outside the story).
            let centrality: f32 = members
                .iter()
                .map(|&i| {
                    related[i]
                        - members
                            .iter()
                            .filter(|&&j| j != i)
                            .map(|&j| body_sim(i, j))
                            .sum::<f32>()
                })
                .fold(0f32, f32::max);
            let main_article = &entries[main].article;
            // A model's summary of the best report stands for the story
            // (the model read the best-written report whole); extractive
            // stories of several reports draw from all of them.
            let summary = if members.len() > 1 && !entries[main].summary.abstractive {
                let mut ordered = vec![main];
                let mut rest: Vec<usize> = members.iter().copied().filter(|&i| i != main).collect();
                rest.sort_by(|&a, &b| {
                    quality(&entries[b])
                        .total_cmp(&quality(&entries[a]))
                        .then(a.cmp(&b))
                });
                ordered.extend(rest);
                let lines = story::summarize(&entries, &ordered, opts.budget, &terms, embedder);
                if lines.is_empty() {
                    summary_lines(&entries[main].summary)
                } else {
                    lines
                }
            } else {
                summary_lines(&entries[main].summary)
            };
            Story {
                rank: 0,
                headline: main_article.title.clone(),
                headline_derived: main_article.title_derived,
                summary,
                source: source_name(main_article),
                url: main_article.url.clone(),
                date: main_article.date,
                importance: weight * (sources.len() as f32 + centrality),
                sources,
                urls,
                also_reported_by: also,
                full: false,
                article_ids: members
                    .iter()
                    .map(|&i| entries[i].article.id.clone())
                    .collect(),
            }
        })
        .collect();
    stories.sort_by(|a, b| {
        b.importance
            .total_cmp(&a.importance)
            .then_with(|| a.headline.cmp(&b.headline))
            .then_with(|| a.article_ids.cmp(&b.article_ids))
    });
    for (i, s) in stories.iter_mut().enumerate() {
        s.rank = i + 1;
        s.full = i < opts.max_stories;
    }
    let source_count = entries
        .iter()
        .map(|e| source_name(&e.article))
        .collect::<BTreeSet<_>>()
        .len();
    Edition {
        date: opts.date,
        top_stories: opts.top_stories.min(stories.len()),
        stories,
        article_count: n,
        source_count,
    }
}

/// A subscriber's copy of the edition: stories matching their topics first
/// (in edition order), or only those when `only` is set; the general
/// edition when no story matches. Topics match stemmed words of a story's
/// headline and summary ("election" matches "elections").
pub fn personalize(edition: &Edition, topics: &str, only: bool) -> Edition {
    let terms = Terms::new();
    let wanted: Vec<Vec<String>> = topics
        .split(',')
        .map(|t| terms.terms(t))
        .filter(|t| !t.is_empty())
        .collect();
    if wanted.is_empty() {
        return edition.clone();
    }
    let matches = |s: &Story| {
        let have: BTreeSet<String> = terms
            .terms(&format!("{} {}", s.headline, s.summary.join(" ")))
            .into_iter()
            .collect();
        wanted
            .iter()
            .any(|topic| topic.iter().all(|t| have.contains(t)))
    };
    let (mut picked, rest): (Vec<Story>, Vec<Story>) =
        edition.stories.iter().cloned().partition(|s| matches(s));
    if picked.is_empty() {
        return edition.clone();
    }
    if !only {
        picked.extend(rest);
    }
    let full = edition.stories.iter().filter(|s| s.full).count();
    for (i, s) in picked.iter_mut().enumerate() {
        s.rank = i + 1;
        s.full = i < full;
    }
    Edition {
        date: edition.date,
        top_stories: edition.top_stories.min(picked.len()),
        stories: picked,
        article_count: edition.article_count,
        source_count: edition.source_count,
    }
}

fn source_weight(weights: &BTreeMap<String, f32>, source: &str) -> f32 {
    weights
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(source))
        .map_or(1.0, |(_, &w)| w)
}

/// How well-written an article's entry is, to choose the one a merged story
/// shows: a real title beats a derived one, then the summary's mean score,
/// then a summary of two or more sentences.
fn quality(e: &Entry) -> f32 {
    let title = if e.article.title_derived { 0.0 } else { 10.0 };
    let n = e.summary.sentences.len().max(1) as f32;
    let mean: f32 = e
        .summary
        .sentences
        .iter()
        .map(|s| s.score)
        .filter(|s| s.is_finite())
        .sum::<f32>()
        / n;
    title
        + mean.clamp(-5.0, 5.0)
        + if e.summary.sentences.len() >= 2 {
            1.0
        } else {
            0.0
        }
}

/// TF-IDF vectors (IDF over the day's articles) of each article's whole
/// text: what centrality is measured with.
fn vectors(entries: &[Entry], terms: &Terms) -> Vec<Sparse> {
    let texts: Vec<String> = entries.iter().map(|e| e.article.text()).collect();
    tfidf(texts.iter().map(String::as_str), terms)
}

/// Unit-length TF-IDF vectors of `texts` (content terms, sublinear term
/// frequency, IDF over these texts), sorted by term id.
fn tfidf<'a>(texts: impl Iterator<Item = &'a str>, terms: &Terms) -> Vec<Sparse> {
    let mut vocab: FxHashMap<String, u32> = FxHashMap::default();
    let bags: Vec<Vec<(u32, f32)>> = texts
        .map(|text| {
            let mut bag: FxHashMap<u32, f32> = FxHashMap::default();
            terms.for_each(text, |t| {
                let next = vocab.len() as u32;
                let id = match vocab.get(t) {
                    Some(&id) => id,
                    None => {
                        vocab.insert(t.to_owned(), next);
                        next
                    }
                };
                *bag.entry(id).or_insert(0.0) += 1.0;
            });
            bag.into_iter().collect()
        })
        .collect();
    sparse::tf_idf(bags, vocab.len(), Tf::Sublinear, Idf::Plain { power: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::article::RawArticle;
    use crate::summarize::Extractive;

    fn entry(title: Option<&str>, source: &str, text: &str) -> Entry {
        let raw = RawArticle {
            title: title.map(Into::into),
            source: Some(source.into()),
            date: Some("2022-03-14".into()),
            text: text.into(),
            ..Default::default()
        };
        let article = Article::from_raw(raw, format!("{source}.txt")).unwrap();
        let summary = Extractive::default()
            .summarize(&article, Budget::default())
            .unwrap();
        Entry { article, summary }
    }

    fn opts() -> EditionOptions {
        EditionOptions {
            date: NaiveDate::from_ymd_opt(2022, 3, 14).unwrap(),
            max_stories: 2,
            top_stories: 5,
            source_weights: BTreeMap::new(),
            merge_threshold: 0.2,
            budget: Budget::default(),
        }
    }

    fn day() -> Vec<Entry> {
        vec![
            entry(None, "Al Jazeera", "As Russia and Ukraine resume talks, Ukrainian negotiator Mykhailo Podolyak said communication is ongoing yet hard. The talks are held by video conference."),
            entry(Some("Oil prices fall"), "Markets Daily", "Oil prices fell 5% on Monday as traders watched the Russia Ukraine talks and lockdowns in China. Brent crude dropped to $106."),
            entry(Some("Russia and Ukraine hold fresh talks by video"), "World Wire", "Russian and Ukrainian negotiators resumed talks by video conference on Monday, Ukrainian negotiator Mykhailo Podolyak said. Communication was hard."),
            entry(Some("City beat Palace"), "Sports Desk", "Manchester City beat Crystal Palace 4-0 on Monday night. Kevin De Bruyne scored twice at the Etihad Stadium."),
        ]
    }

    #[test]
    fn same_story_from_two_sources_is_merged() {
        let e = assemble(day(), &opts(), None);
        assert_eq!(
            e.stories.len(),
            3,
            "{:#?}",
            e.stories.iter().map(|s| &s.headline).collect::<Vec<_>>()
        );
        let talks = &e.stories[0];
        assert_eq!(talks.sources.len(), 2, "{talks:#?}");
        assert_eq!(
            talks.headline, "Russia and Ukraine hold fresh talks by video",
            "the titled article is the better-written one"
        );
        assert_eq!(talks.also_reported_by[0].source, "Al Jazeera");
        assert_eq!(e.article_count, 4);
        assert_eq!(e.source_count, 4);
    }

    #[test]
    fn ranking_counts_sources_and_weights_and_cuts_to_full_stories() {
        let e = assemble(day(), &opts(), None);
        assert_eq!(
            e.stories.iter().map(|s| s.rank).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert!(e.stories[0].full && e.stories[1].full && !e.stories[2].full);
        assert_eq!(
            e.stories[2].headline, "City beat Palace",
            "unrelated single-source story ranks last"
        );
        let mut o = opts();
        o.source_weights.insert("sports desk".into(), 10.0);
        let e = assemble(day(), &o, None);
        assert_eq!(
            e.stories[0].headline, "City beat Palace",
            "source weights count"
        );
    }

    #[test]
    fn articles_belong_to_their_date_or_to_the_edition_when_undated() {
        let d = NaiveDate::from_ymd_opt(2022, 3, 14).unwrap();
        let mut a = day().remove(0).article;
        assert!(belongs_to(&a, d));
        a.date = None;
        assert!(belongs_to(&a, d));
        a.date = NaiveDate::from_ymd_opt(2022, 3, 13);
        assert!(!belongs_to(&a, d));
    }

    #[test]
    fn topics_put_matching_stories_first_or_keep_only_them() {
        let e = assemble(day(), &opts(), None);
        let p = personalize(&e, "football, Palace", false);
        assert_eq!(p.stories[0].headline, "City beat Palace");
        assert_eq!(p.stories.len(), e.stories.len());
        assert_eq!(
            p.stories.iter().map(|s| s.rank).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        let only = personalize(&e, "palace", true);
        assert_eq!(only.stories.len(), 1);
        assert!(only.stories[0].full);
        let none = personalize(&e, "cricket", true);
        assert_eq!(none, e, "no match: the general edition");
        assert_eq!(personalize(&e, "", true), e);
        assert_eq!(
            personalize(&e, "oil prices", true).stories[0].headline,
            "Oil prices fall",
            "multi-word topics need every word"
        );
    }

    #[test]
    fn deterministic() {
        assert_eq!(
            assemble(day(), &opts(), None),
            assemble(day(), &opts(), None)
        );
    }
}
