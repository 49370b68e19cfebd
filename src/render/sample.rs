//! A fixed sample edition: what `templates check` renders, and what tests
//! render templates with.

use chrono::NaiveDate;

use crate::edition::{Edition, Report, Story};

/// A small edition with every field filled: what templates are checked against.
pub fn sample_edition() -> Edition {
    let date = NaiveDate::from_ymd_opt(2022, 3, 14).expect("valid date");
    let story = |rank: usize, full: bool, url: Option<&str>| Story {
        rank,
        headline: format!("Sample headline number {rank}"),
        summary: vec![
            "A first sample sentence.".into(),
            "A second sample sentence.".into(),
        ],
        source: "Sample Wire".into(),
        url: url.map(Into::into),
        date: Some(date),
        sources: vec!["Sample Wire".into(), "Other Paper".into()],
        urls: url.into_iter().map(Into::into).collect(),
        also_reported_by: vec![
            Report {
                source: "Other Paper".into(),
                url: Some("https://other.example.com/a".into()),
                headline: "Other headline".into(),
                article_id: "b".into(),
                summary: vec!["The other paper's own summary.".into()],
                date: Some(date),
                headline_derived: false,
            },
            Report {
                source: "Third Paper".into(),
                url: None,
                headline: "Third headline".into(),
                article_id: "c".into(),
                summary: Vec::new(),
                date: None,
                headline_derived: true,
            },
        ],
        importance: 1.0,
        full,
        article_ids: vec!["a".into(), "b".into(), "c".into()],
        headline_derived: false,
    };
    Edition {
        date,
        stories: vec![
            story(1, true, Some("https://example.com/1")),
            story(2, true, None),
            story(3, false, Some("https://example.com/3")),
            story(4, false, None),
        ],
        top_stories: 2,
        article_count: 6,
        source_count: 3,
    }
}
