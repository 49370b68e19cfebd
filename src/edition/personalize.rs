//! A subscriber's copy of the edition.

use std::collections::BTreeSet;

use super::{Edition, Story};
use crate::text::Terms;

/// A subscriber's copy of the edition: stories matching their topics first
/// (in edition order), or only those when `only` is set; the general
/// edition when no story matches. Topics match stemmed words of a story's
/// headline and summary ("election" matches "elections").
pub fn personalize(edition: &Edition, topics: &str, only: bool) -> Edition {
    let terms = Terms::new();
    let wanted = topic_terms(&terms, topics);
    if wanted.is_empty() {
        return edition.clone();
    }
    let matches = |s: &Story| {
        let have = story_terms(&terms, s);
        wanted.iter().any(|(_, topic)| matches_topic(&have, topic))
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

/// Each topic (as typed) with its stemmed words; topics without words are
/// left out.
fn topic_terms(terms: &Terms, topics: &str) -> Vec<(String, Vec<String>)> {
    topics
        .split(',')
        .map(|t| (t.trim().to_owned(), terms.terms(t)))
        .filter(|(_, t)| !t.is_empty())
        .collect()
}

/// A story matches a topic when it has every one of the topic's words.
fn matches_topic(story: &BTreeSet<String>, topic: &[String]) -> bool {
    topic.iter().all(|t| story.contains(t))
}

fn story_terms(terms: &Terms, s: &Story) -> BTreeSet<String> {
    terms
        .terms(&format!("{} {}", s.headline, s.summary.join(" ")))
        .into_iter()
        .collect()
}

/// How many of the edition's stories each topic matches (the same match as
/// `personalize`), in the order the topics were given.
pub fn topic_matches(edition: &Edition, topics: &str) -> Vec<(String, usize)> {
    let terms = Terms::new();
    let wanted = topic_terms(&terms, topics);
    let stories: Vec<BTreeSet<String>> = edition
        .stories
        .iter()
        .map(|s| story_terms(&terms, s))
        .collect();
    wanted
        .into_iter()
        .map(|(topic, words)| {
            let n = stories
                .iter()
                .filter(|have| matches_topic(have, &words))
                .count();
            (topic, n)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edition::assemble;
    use crate::edition::assemble::tests::{day, opts};

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
}
