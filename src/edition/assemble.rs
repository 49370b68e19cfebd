//! Putting an edition together: `gather` reads and summarizes the day's
//! articles; `assemble` groups their reports into stories, ranks them and
//! cuts the list.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;

use super::{group, story, Edition, EditionOptions, Report, Story};
use crate::article::Article;
use crate::embed::Embed;
use crate::ingest::IngestError;
use crate::summarize::{Budget, Summarizer, Summary};
use crate::text::sparse::{self, cosine, Sparse};
use crate::text::Terms;

/// A summarized article on its way into an edition.
pub struct Entry {
    pub article: Article,
    pub summary: Summary,
}

/// Who published a report, for counting a story's distinct sources and
/// weighing them: its source, else the file it came from (two files
/// without a source are two sources).
fn source_key(article: &Article) -> String {
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

/// The name a report is credited to in the digest: its source, else its
/// link's host; none (empty) when it has neither: a file's name is not a
/// publisher's.
fn source_name(article: &Article) -> String {
    article
        .source
        .clone()
        .or_else(|| {
            let url = url::Url::parse(article.url.as_deref()?).ok()?;
            Some(url.host_str()?.trim_start_matches("www.").to_owned())
        })
        .unwrap_or_default()
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
    let skipped = std::cell::Cell::new(0);
    let mut other_dates = 0;
    let articles = items.into_iter().filter_map(|item| {
        let article = match item {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("skipped {e}");
                skipped.set(skipped.get() + 1);
                return None;
            }
        };
        progress(&article);
        if !belongs_to(&article, date) {
            tracing::debug!(
                "{}: dated {}, not in the edition of {date}",
                article.origin,
                article.date.map_or_else(String::new, |d| d.to_string())
            );
            other_dates += 1;
            return None;
        }
        Some(article)
    });
    let mut entries = Vec::new();
    let done: Result<(), std::convert::Infallible> =
        crate::summarize::in_batches(summarizer, budget, articles, |article, result| {
            match result {
                Ok(summary) => entries.push(Entry { article, summary }),
                Err(e) => {
                    tracing::warn!("skipped {}: {e}", article.origin);
                    skipped.set(skipped.get() + 1);
                }
            }
            Ok(())
        });
    let Ok(()) = done;
    Gathered {
        entries,
        skipped: skipped.get(),
        other_dates,
    }
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
    let (mut stories, drawn_from): (Vec<Story>, Vec<Option<Vec<usize>>>) = groups
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
            let mut keys: Vec<String> = Vec::new();
            let mut sources: Vec<String> = Vec::new();
            let mut urls: Vec<String> = Vec::new();
            let mut also = Vec::new();
            for &i in std::iter::once(&main).chain(members.iter().filter(|&&i| i != main)) {
                let a = &entries[i].article;
                let key = source_key(a);
                if !keys.contains(&key) {
                    keys.push(key);
                }
                let name = source_name(a);
                if !name.is_empty() && !sources.contains(&name) {
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
            let weight = keys
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
            // Its report order (the best first), when several reports'
            // sentences make its summary: `story::summarize_all` below.
            let drawn_from = (members.len() > 1 && !entries[main].summary.abstractive).then(|| {
                let mut ordered = vec![main];
                let mut rest: Vec<usize> = members.iter().copied().filter(|&i| i != main).collect();
                rest.sort_by(|&a, &b| {
                    quality(&entries[b])
                        .total_cmp(&quality(&entries[a]))
                        .then(a.cmp(&b))
                });
                ordered.extend(rest);
                ordered
            });
            let summary = summary_lines(&entries[main].summary);
            let story = Story {
                rank: 0,
                headline: main_article.title.clone(),
                headline_derived: main_article.title_derived,
                summary,
                source: source_name(main_article),
                url: main_article.url.clone(),
                date: main_article.date,
                importance: weight * (keys.len() as f32 + centrality),
                sources,
                urls,
                also_reported_by: also,
                full: false,
                article_ids: members
                    .iter()
                    .map(|&i| entries[i].article.id.clone())
                    .collect(),
            };
            (story, drawn_from)
        })
        .unzip();
    // A story of several reports (extractive) draws its summary from all
    // of them; all such stories' sentences are embedded together.
    let plans: Vec<(usize, story::Plan)> = drawn_from
        .iter()
        .enumerate()
        .filter_map(|(s, ordered)| Some((s, story::plan(&entries, ordered.as_ref()?, &terms)?)))
        .collect();
    let (which, plans): (Vec<usize>, Vec<story::Plan>) = plans.into_iter().unzip();
    for (s, lines) in which
        .into_iter()
        .zip(story::summarize_all(&plans, opts.budget, embedder))
    {
        if !lines.is_empty() {
            stories[s].summary = lines;
        }
    }
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
        .map(|e| source_key(&e.article))
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
    story::tfidf(texts.iter().map(String::as_str), terms)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::article::RawArticle;
    use crate::summarize::Extractive;

    pub(crate) fn entry(title: Option<&str>, source: &str, text: &str) -> Entry {
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

    pub(crate) fn opts() -> EditionOptions {
        EditionOptions {
            date: NaiveDate::from_ymd_opt(2022, 3, 14).unwrap(),
            max_stories: 2,
            top_stories: 5,
            source_weights: BTreeMap::new(),
            merge_threshold: 0.2,
            budget: Budget::default(),
        }
    }

    pub(crate) fn day() -> Vec<Entry> {
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
    fn deterministic() {
        assert_eq!(
            assemble(day(), &opts(), None),
            assemble(day(), &opts(), None)
        );
    }
}
