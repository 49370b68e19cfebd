//! Property tests: no byte sequence makes the parsers, the cleaner, the
//! splitter or the summarizer panic, and their outputs keep their promises.

use dailydigest::article::{Article, RawArticle};
use dailydigest::ingest::{clean, files};
use dailydigest::summarize::{Budget, Extractive, Summarizer};
use dailydigest::text;
use proptest::prelude::*;

/// Text made of the pieces that trip splitters up.
fn newsy() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "Mr.",
        "U.S.",
        "a.m.",
        "Jan.",
        "J.",
        "$10.9bn",
        "3.5%",
        "...",
        "…",
        "“",
        "”",
        "\"",
        "'",
        "(",
        ")",
        ".",
        "!",
        "?",
        " ",
        " ",
        " ",
        "\n",
        "\n\n",
        "the",
        "The",
        "talks",
        "Kyiv",
        "said",
        "é",
        "日本",
        "READ ALSO:",
        "Advertisement",
        "date 2022-03-14",
        "&amp;",
        "&#x1F600;",
        "(CNN)",
        "--",
        "\t",
        "\u{200b}",
    ]);
    prop::collection::vec(piece, 0..80).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn splitter_spans_are_ordered_trimmed_boundaries(s in prop_oneof![newsy(), any::<String>()]) {
        let spans = text::sentence_spans(&s);
        let mut last = 0;
        for r in spans {
            prop_assert!(r.start >= last && r.start < r.end);
            prop_assert!(s.is_char_boundary(r.start) && s.is_char_boundary(r.end));
            let sentence = &s[r.clone()];
            prop_assert_eq!(sentence.trim(), sentence);
            last = r.end;
        }
    }

    #[test]
    fn parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), s in newsy()) {
        let lossy = String::from_utf8_lossy(&bytes).into_owned();
        for input in [lossy.as_str(), s.as_str()] {
            let _ = files::parse_text(input);
            let _ = files::parse_markdown(input);
            let _ = files::parse_markdown(&format!("---\n{input}\n---\n{input}"));
            let _ = files::parse_markdown(&format!("+++\n{input}\n+++\n{input}"));
            let _ = files::parse_json(input);
            let _ = files::parse_json_line(input);
            let _ = files::parse_html(&format!("<html><body><p>{input}</p></body></html>"));
            let _ = files::Format::sniff(input);
            for p in clean::paragraphs(input) {
                prop_assert!(!p.trim().is_empty());
            }
        }
    }

    #[test]
    fn summaries_respect_budgets(s in newsy(), sentences in 1usize..5, words in 0usize..80) {
        let raw = RawArticle { text: s, ..Default::default() };
        if let Ok(article) = Article::from_raw(raw, "prop") {
            prop_assert!(!article.title.is_empty() || article.paragraphs.iter().all(|p| p.trim().is_empty()));
            let budget = Budget { sentences, words };
            if let Ok(summary) = Extractive::default().summarize(&article, budget) {
                prop_assert!(!summary.sentences.is_empty());
                prop_assert!(summary.sentences.len() <= sentences);
                prop_assert!(summary.sentences.windows(2).all(|w| w[0].index < w[1].index));
                if words > 0 && summary.sentences.len() > 1 {
                    prop_assert!(summary.word_count() <= words);
                }
            }
        }
    }
}
