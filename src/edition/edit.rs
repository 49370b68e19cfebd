//! The editor's verbs on an edition: drop, move, headline, summary, merge,
//! split. Editor text is cleaned as ingest cleans articles.

use super::{Edition, Report, Story};

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
            if !source.is_empty() && !target.sources.contains(&source) {
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
        // Named sources only (a report may name none).
        story.sources = Some(story.source.clone())
            .filter(|s| !s.is_empty())
            .into_iter()
            .collect();
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
                sources: Some(r.source)
                    .filter(|s| !s.is_empty())
                    .into_iter()
                    .collect(),
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
