//! Which reports are of one event.
//!
//! Each pair of reports gets a score from two kinds of evidence:
//!
//! - **meaning**: the cosine of their sentence embeddings (title and the
//!   start of the text, cut at `GROUPING_TOKENS`), less a density term: a
//!   report with many close neighbours (a busy topic: two Pfizer stories in
//!   one week) must show more evidence before it joins one of them;
//! - **words**: the TF-IDF cosine of their whole texts, with IDF taken
//!   over each report's own neighbourhood (its `LOCAL` nearest) rather than
//!   over the whole edition. Words every report on the topic uses
//!   ("earthquake", "Indonesia") then weigh little and the words that tell
//!   one event from another ("Aceh", "Papua") weigh most, however many
//!   unrelated reports the day holds: with edition-wide IDF, a busier day
//!   made topic words rarer and look-alike events closer. Less penalties
//!   when both mention years and share none (ECB+'s look-alike events: two
//!   celebrities in rehab years apart), when both lead with numbers and
//!   share none ("1 billion doses" against "20 million"; numbers in dates
//!   and times do not count) and when both come from one named source (an
//!   outlet rarely reports one event twice in a day).
//!
//! Only each report's `NEIGHBOURS` nearest (by meaning; by words without an
//! encoder) are scored, and average link joins clusters whose mean pair
//! score over all their pairs (unscored pairs count 0) is at least the
//! threshold: a chain of pairwise-similar reports does not collapse into
//! one story, and a story cannot grow much past the neighbour count.
//!
//! Constants were tuned on the dev sets only (`../shared/eval/stories`:
//! allsides_dev, ecb_dev, at one, two and four edition dates an edition);
//! BENCHMARKS.md has the figures.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use rayon::prelude::*;
use regex::Regex;
use rustc_hash::FxHashMap;

use crate::article::Article;
use crate::text::sparse::{self, Idf, Sparse, Tf};

use super::link;

/// Inputs to the sentence encoder are cut at this many tokens (special
/// tokens included): the title and the first twenty or so words. Quality
/// is nearly flat from 32 to 128 tokens (dev B-cubed F 94.6 / 94.9 / 94.9 /
/// 94.6 on allsides at 32 / 48 / 64 / 128), the cost linear.
pub const GROUPING_TOKENS: usize = 32;

/// Nearest neighbours each report is scored against.
const NEIGHBOURS: usize = 30;
/// The neighbourhood a report's word weights (IDF) are taken over: itself
/// and this many nearest.
const LOCAL: usize = 60;
/// Numbers are read from the first this many words (title included).
const LEAD_WORDS: usize = 50;
/// The density of a report's neighbourhood: the mean cosine of its this
/// many nearest.
const DENSITY_NEIGHBOURS: usize = 5;
const W_DENSITY: f64 = 0.75;
const W_WORDS: f64 = 2.0;
const W_YEARS: f64 = 0.2;
const W_NUMBERS: f64 = 0.1;
const W_SOURCE: f64 = 1.0;
/// Mean pair score at which clusters join (with an encoder).
const THRESHOLD: f64 = 0.40;

/// What the encoder reads of an article: its real title and its text, one
/// line; the token cut keeps the lead.
pub(crate) fn grouping_text(a: &Article) -> String {
    let title = if a.title_derived { "" } else { a.title.trim() };
    let body = lines(a).collect::<Vec<_>>().join(" ");
    match (title.is_empty(), body.is_empty()) {
        (true, _) => body,
        (false, true) => title.to_string(),
        (false, false) => {
            let sep = if title.ends_with(['.', '!', '?', ':']) {
                " "
            } else {
                ". "
            };
            format!("{title}{sep}{body}")
        }
    }
}

fn lines(a: &Article) -> impl Iterator<Item = &str> {
    a.paragraphs
        .iter()
        .flat_map(|p| p.split('\n'))
        .map(str::trim)
        .filter(|l| !l.is_empty())
}

static TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z][A-Za-z'\x{2019}-]*|[0-9]+(?:[.,][0-9]+)*").expect("valid regex")
});

/// Words too common to tell events apart.
const STOP: &[&str] = &[
    "a", "an", "the", "and", "or", "but", "if", "of", "in", "on", "at", "to", "for", "from", "by",
    "with", "about", "as", "into", "over", "after", "before", "under", "between", "through",
    "during", "without", "within", "is", "are", "was", "were", "be", "been", "being", "has",
    "have", "had", "do", "does", "did", "will", "would", "shall", "should", "can", "could", "may",
    "might", "must", "not", "no", "nor", "so", "than", "too", "very", "it", "its", "he", "she",
    "they", "them", "his", "her", "their", "our", "we", "you", "your", "me", "my", "this", "that",
    "these", "those", "there", "here", "what", "which", "who", "whom", "whose", "when", "where",
    "why", "how", "all", "any", "both", "each", "few", "more", "most", "other", "some", "such",
    "only", "own", "same", "just", "also", "said", "says", "say", "told", "tells", "new", "one",
    "two", "three", "first", "last", "year", "years",
];

/// Words that mark a number as part of a date or a time ("9 September",
/// "Tue Jul 2", "14: 08 GMT"): when a report was filed, not what happened.
const WHEN: &[&str] = &[
    "jan",
    "feb",
    "mar",
    "apr",
    "may",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "january",
    "february",
    "march",
    "april",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "mon",
    "tue",
    "tues",
    "wed",
    "thu",
    "thur",
    "fri",
    "sat",
    "sun",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "gmt",
    "utc",
    "bst",
    "est",
    "edt",
    "pst",
    "pdt",
    "ist",
    "cet",
    "am",
    "pm",
    "a.m",
    "p.m",
    "hrs",
    "hr",
];

static LEAD_TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z][A-Za-z'\x{2019}.-]*|[0-9]+(?:[.,][0-9]+)*|:").expect("valid regex")
});

/// The numbers among the first `LEAD_WORDS` words of `lines` that state a
/// fact (a toll, an amount, an age): not years, and not the parts of a date
/// or a time.
fn lead_numbers<'a>(lines: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    let tokens: Vec<&str> = lines
        .into_iter()
        .flat_map(|line| LEAD_TOKEN.find_iter(line).map(|m| m.as_str()))
        .take(LEAD_WORDS)
        .collect();
    let when = |t: &str| {
        let t = t.trim_end_matches('.').to_ascii_lowercase();
        WHEN.contains(&t.as_str())
    };
    let mut numbers = BTreeSet::new();
    for (k, t) in tokens.iter().enumerate() {
        if !t.starts_with(|c: char| c.is_ascii_digit()) || is_year(t) {
            continue;
        }
        let near = k.saturating_sub(2)..(k + 3).min(tokens.len());
        let in_date = tokens[near].iter().any(|n| when(n));
        let in_time = (k > 0 && tokens[k - 1] == ":") || tokens.get(k + 1) == Some(&":");
        if !in_date && !in_time {
            numbers.insert(t.replace(',', ""));
        }
    }
    numbers
}

fn is_year(t: &str) -> bool {
    t.len() == 4
        && t.bytes().all(|b| b.is_ascii_digit())
        && (t.starts_with("19") || t.starts_with("20"))
}

/// The words of an article that tell events apart: word counts (title and
/// text), the years it mentions, the numbers it leads with, and its named
/// source.
pub(crate) struct Features {
    counts: FxHashMap<String, f64>,
    years: BTreeSet<String>,
    numbers: BTreeSet<String>,
    source: Option<String>,
}

impl Features {
    pub(crate) fn of(a: &Article) -> Features {
        let mut counts: FxHashMap<String, f64> = FxHashMap::default();
        let mut years = BTreeSet::new();
        let title = if a.title_derived { "" } else { a.title.trim() };
        let title = (!title.is_empty()).then_some(title);
        for line in title.into_iter().chain(lines(a)) {
            for m in TOKEN.find_iter(line) {
                let t = m.as_str();
                let word = if t.starts_with(|c: char| c.is_ascii_digit()) {
                    if is_year(t) {
                        years.insert(t.to_string());
                    }
                    t.to_string()
                } else {
                    let w = t.replace('\u{2019}', "'");
                    let w = w.strip_suffix("'s").unwrap_or(&w);
                    w.trim_matches(['\'', '-']).to_ascii_lowercase()
                };
                if word.len() >= 2 && !STOP.contains(&word.as_str()) {
                    *counts.entry(word).or_insert(0.0) += 1.0;
                }
            }
        }
        let source = a
            .source
            .as_deref()
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty());
        Features {
            counts,
            years,
            numbers: lead_numbers(title.into_iter().chain(lines(a))),
            source,
        }
    }
}

/// The features' word counts as bags of term ids, and the vocabulary size.
fn bags(features: &[Features]) -> (Vec<Vec<(u32, f64)>>, usize) {
    let mut vocab: FxHashMap<&str, u32> = FxHashMap::default();
    for f in features {
        for w in f.counts.keys() {
            let next = vocab.len() as u32;
            vocab.entry(w.as_str()).or_insert(next);
        }
    }
    let bags = features
        .iter()
        .map(|f| {
            let mut b: Vec<(u32, f64)> = f
                .counts
                .iter()
                .map(|(w, &c)| (vocab[w.as_str()], c))
                .collect();
            b.sort_unstable_by_key(|&(id, _)| id);
            b
        })
        .collect();
    (bags, vocab.len())
}

/// TF-IDF vectors of the features' words (raw counts, smoothed IDF over
/// the edition, computed in f64), unit length: what finds neighbours
/// without an encoder.
fn tfidf(bags: &[Vec<(u32, f64)>], terms: usize) -> Vec<Sparse> {
    sparse::tf_idf(bags.to_vec(), terms, Tf::Raw, Idf::Smooth)
}

/// The word cosine of each candidate pair, IDF taken over neighbourhoods:
/// for each report `i`, over `i` and its first `local` `neighbours`, both texts of
/// a pair `(i, j)` are weighed and compared; a pair's cosine is the mean of
/// its two reports' views. Keyed like `pairs`.
fn local_cosines(
    bags: &[Vec<(u32, f64)>],
    terms: usize,
    neighbours: &[Vec<(usize, f32)>],
    local: usize,
    pairs: &[(usize, usize)],
) -> Vec<f64> {
    let n = bags.len();
    let mut adjacent: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(i, j) in pairs {
        adjacent[i].push(j);
        adjacent[j].push(i);
    }
    // Each report's view of each of its pairs, in `adjacent` order.
    let views: Vec<Vec<f32>> = (0..n)
        .into_par_iter()
        .map_init(
            || vec![0u32; terms],
            |df, i| {
                let hood: Vec<usize> = std::iter::once(i)
                    .chain(neighbours[i].iter().take(local).map(|&(j, _)| j))
                    .collect();
                for &d in &hood {
                    for &(id, _) in &bags[d] {
                        df[id as usize] += 1;
                    }
                }
                let count = hood.len() as f64;
                let weigh = |b: &Vec<(u32, f64)>| {
                    sparse::weigh_by(
                        b.clone(),
                        |id| Idf::Smooth.weight(count, f64::from(df[id as usize])),
                        Tf::Raw,
                    )
                };
                let own = weigh(&bags[i]);
                let view = adjacent[i]
                    .iter()
                    .map(|&j| sparse::cosine(&own, &weigh(&bags[j])))
                    .collect();
                for &d in &hood {
                    for &(id, _) in &bags[d] {
                        df[id as usize] = 0;
                    }
                }
                view
            },
        )
        .collect();
    let mut at: FxHashMap<(usize, usize), f64> = FxHashMap::default();
    for (i, view) in views.iter().enumerate() {
        for (&j, &c) in adjacent[i].iter().zip(view) {
            *at.entry((i.min(j), i.max(j))).or_insert(0.0) += f64::from(c) / 2.0;
        }
    }
    pairs.iter().map(|p| at[p]).collect()
}

/// The word evidence of a pair from its word cosine: weighted, less the
/// year, number (`w_numbers`) and same-source penalties.
fn word_score(f: &[Features], cosine: f64, i: usize, j: usize, w_numbers: f64) -> f64 {
    let (a, b) = (&f[i], &f[j]);
    let conflict = |x: &BTreeSet<String>, y: &BTreeSet<String>| {
        !x.is_empty() && !y.is_empty() && x.is_disjoint(y)
    };
    let same_source = a.source.is_some() && a.source == b.source;
    W_WORDS * cosine
        - if conflict(&a.years, &b.years) {
            W_YEARS
        } else {
            0.0
        }
        - if conflict(&a.numbers, &b.numbers) {
            w_numbers
        } else {
            0.0
        }
        - if same_source { W_SOURCE } else { 0.0 }
}

/// Candidate pairs `(i, j)`, `i < j`, from neighbour lists (the first
/// `k` of each), once each.
fn pairs_of(neighbours: &[Vec<(usize, f32)>], k: usize) -> Vec<(usize, usize)> {
    let mut pairs: Vec<(usize, usize)> = neighbours
        .iter()
        .enumerate()
        .flat_map(|(i, l)| l.iter().take(k).map(move |&(j, _)| (i.min(j), i.max(j))))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

/// A cluster number per article. With `embeddings` (one unit vector per
/// article, of `grouping_text`), by meaning and words; without, by words
/// alone, joining at `word_threshold` (`merge_threshold`).
pub(crate) fn group(
    features: &[Features],
    embeddings: Option<&[Vec<f32>]>,
    word_threshold: f32,
) -> Vec<usize> {
    let n = features.len();
    let (bags, terms) = bags(features);
    match embeddings {
        Some(e) => {
            let nn = link::neighbours(e, NEIGHBOURS.max(DENSITY_NEIGHBOURS).max(LOCAL));
            let density: Vec<f64> = nn
                .iter()
                .map(|l| {
                    let top = &l[..l.len().min(DENSITY_NEIGHBOURS)];
                    if top.is_empty() {
                        0.0
                    } else {
                        top.iter().map(|&(_, c)| f64::from(c)).sum::<f64>() / top.len() as f64
                    }
                })
                .collect();
            let pairs = pairs_of(&nn, NEIGHBOURS);
            let cosines = local_cosines(&bags, terms, &nn, LOCAL, &pairs);
            let scored: Vec<(usize, usize, f64)> = pairs
                .into_iter()
                .zip(cosines)
                .map(|((i, j), words)| {
                    let cos = f64::from(crate::embed::dot(&e[i], &e[j]));
                    let s = cos - W_DENSITY * (density[i] + density[j]) / 2.0
                        + word_score(features, words, i, j, W_NUMBERS);
                    (i, j, s)
                })
                .collect();
            link::average_link(n, &scored, THRESHOLD)
        }
        None => {
            let vectors = tfidf(&bags, terms);
            let nn = link::sparse_neighbours(&vectors, NEIGHBOURS);
            let scored: Vec<(usize, usize, f64)> = pairs_of(&nn, NEIGHBOURS)
                .into_iter()
                .map(|(i, j)| {
                    let words = f64::from(sparse::cosine(&vectors[i], &vectors[j]));
                    (i, j, word_score(features, words, i, j, 0.0) / W_WORDS)
                })
                .collect();
            link::average_link(n, &scored, f64::from(word_threshold))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::article::RawArticle;

    fn article(title: &str, text: &str, source: Option<&str>) -> Article {
        let raw = RawArticle {
            title: Some(title.to_owned()),
            source: source.map(str::to_owned),
            text: text.to_owned(),
            ..RawArticle::default()
        };
        Article::from_raw(raw, "test").unwrap()
    }

    #[test]
    fn lead_numbers_are_facts_not_dates_or_times() {
        let n = lead_numbers([
            "Paris hit by 2.6 million euro heist",
            "9 September 2013, 14: 08 GMT",
            "Four men rammed a car into the store on Tue Jul 2, and 24 people were hurt; \
             1,200 watches were taken.",
        ]);
        let want: BTreeSet<String> = ["2.6", "24", "1200"].map(String::from).into();
        assert_eq!(n, want);
        // Only the lead counts, across lines.
        let late = "word ".repeat(LEAD_WORDS);
        assert!(lead_numbers([late.as_str(), "7 dead"]).is_empty());
        assert_eq!(lead_numbers(["word", "7 dead"]).len(), 1);
    }

    /// Two look-alike events (one topic) and unrelated reports.
    fn edition(unrelated: usize) -> Vec<Features> {
        let mut a = vec![
            article(
                "Earthquake strikes Aceh",
                "A magnitude 6.1 earthquake struck Aceh province in Indonesia, killing a child \
                 in Bener Meriah and injuring dozens near Takengon.",
                None,
            ),
            article(
                "Deadly quake hits Indonesia's Aceh",
                "The earthquake in Indonesia's Aceh province killed a child in Bener Meriah; \
                 dozens were hurt near Takengon, officials said.",
                None,
            ),
            article(
                "Earthquakes rattle Papua",
                "A series of earthquakes struck Indonesia's Papua province near Manokwari, \
                 killing a girl and sending residents to camps.",
                None,
            ),
        ];
        let topics = [
            "budget",
            "football",
            "election",
            "wildfire",
            "museum",
            "airline",
            "vaccine",
            "tariff",
            "opera",
            "satellite",
        ];
        for k in 0..unrelated {
            let t = topics[k % topics.len()];
            a.push(article(
                &format!("A {t} report number {k}"),
                &format!(
                    "The {t} story {k} is about something else entirely, in a city \
                     where officials met on the {t} plan {k}."
                ),
                None,
            ));
        }
        a.iter().map(Features::of).collect()
    }

    /// The word cosine of pairs (0, 1) (one event) and (0, 2) (a look-alike
    /// event), IDF over the whole edition and over neighbourhoods.
    fn cosines(features: &[Features]) -> ((f64, f64), (f64, f64)) {
        let (bags, terms) = bags(features);
        let v = tfidf(&bags, terms);
        let global = |i: usize, j: usize| f64::from(sparse::cosine(&v[i], &v[j]));
        let nn = link::sparse_neighbours(&v, LOCAL);
        let pairs = vec![(0, 1), (0, 2)];
        let local = local_cosines(&bags, terms, &nn, LOCAL, &pairs);
        ((global(0, 1), global(0, 2)), (local[0], local[1]))
    }

    #[test]
    fn word_evidence_does_not_depend_on_the_size_of_the_day() {
        let (g_small, l_small) = cosines(&edition(10));
        let (g_busy, l_busy) = cosines(&edition(300));
        // Edition-wide IDF: unrelated reports make the topic's words rarer,
        // and the look-alike event closer.
        assert!(g_busy.1 > g_small.1 + 0.02, "{g_small:?} {g_busy:?}");
        // Neighbourhood IDF: the look-alike pair stays where it was, and
        // one event's reports stay closer than look-alikes.
        assert!(
            (l_busy.1 - l_small.1).abs() < 0.01,
            "{l_small:?} {l_busy:?}"
        );
        assert!(l_busy.0 > l_busy.1 + 0.2, "{l_busy:?}");
    }

    #[test]
    fn differing_lead_numbers_and_one_source_count_against_a_pair() {
        let f: Vec<Features> = [
            article(
                "G7 to send 1 billion doses abroad",
                "Leaders agreed.",
                Some("Wire"),
            ),
            article(
                "US to ship 20 million doses abroad",
                "Leaders agreed.",
                Some("Wire"),
            ),
            article(
                "US to ship 20 million doses abroad",
                "Leaders agreed.",
                Some("Post"),
            ),
        ]
        .iter()
        .map(Features::of)
        .collect();
        let plain = W_WORDS * 0.5;
        assert!((word_score(&f, 0.5, 1, 2, W_NUMBERS) - plain).abs() < 1e-9);
        let both = word_score(&f, 0.5, 0, 1, W_NUMBERS);
        assert!(
            (both - (plain - W_NUMBERS - W_SOURCE)).abs() < 1e-9,
            "{both}"
        );
        // Without an encoder numbers are not counted.
        let words_only = word_score(&f, 0.5, 0, 1, 0.0);
        assert!((words_only - (plain - W_SOURCE)).abs() < 1e-9);
    }
}
