//! Which reports are of one event.
//!
//! Each pair of reports gets a score from two kinds of evidence:
//!
//! - **meaning**: the cosine of their sentence embeddings (title and the
//!   start of the text, cut at `GROUPING_TOKENS`), less a density term: a
//!   report with many close neighbours (a busy topic: two Pfizer stories in
//!   one week) must show more evidence before it joins one of them;
//! - **words**: the TF-IDF cosine of their whole texts (IDF over the
//!   edition; names, places and numbers weigh most because they are rare),
//!   less a penalty when both mention years and share none (ECB+'s
//!   look-alike events: two celebrities in rehab years apart) and when both
//!   come from one named source (an outlet rarely reports one event twice).
//!
//! Only each report's `NEIGHBOURS` nearest (by meaning; by words without an
//! encoder) are scored, and average link joins clusters whose mean pair
//! score over all their pairs (unscored pairs count 0) is at least the
//! threshold: a chain of pairwise-similar reports does not collapse into
//! one story, and a story cannot grow much past the neighbour count.
//!
//! Constants were tuned on the dev sets only (`../shared/eval/stories`:
//! allsides_dev, ecb_dev); BENCHMARKS.md has the figures.

use std::collections::BTreeSet;
use std::sync::LazyLock;

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
/// The density of a report's neighbourhood: the mean cosine of its this
/// many nearest.
const DENSITY_NEIGHBOURS: usize = 5;
const W_DENSITY: f64 = 0.75;
const W_WORDS: f64 = 2.0;
const W_YEARS: f64 = 0.2;
const W_SOURCE: f64 = 0.3;
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

/// The words of an article that tell events apart: word counts (title and
/// text), the years it mentions, and its named source.
pub(crate) struct Features {
    counts: FxHashMap<String, f64>,
    years: BTreeSet<String>,
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
                    if t.len() == 4
                        && t.bytes().all(|b| b.is_ascii_digit())
                        && (t.starts_with("19") || t.starts_with("20"))
                    {
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
            source,
        }
    }
}

/// TF-IDF vectors of the features' words (raw counts, smoothed IDF over
/// the edition, computed in f64), unit length.
fn tfidf(features: &[Features]) -> Vec<Sparse> {
    let mut vocab: FxHashMap<&str, u32> = FxHashMap::default();
    for f in features {
        for w in f.counts.keys() {
            let next = vocab.len() as u32;
            vocab.entry(w.as_str()).or_insert(next);
        }
    }
    let bags: Vec<Vec<(u32, f64)>> = features
        .iter()
        .map(|f| {
            f.counts
                .iter()
                .map(|(w, &c)| (vocab[w.as_str()], c))
                .collect()
        })
        .collect();
    sparse::tf_idf(bags, vocab.len(), Tf::Raw, Idf::Smooth)
}

/// The word evidence of a pair: weighted TF-IDF cosine less the year and
/// same-source penalties.
fn word_score(f: &[Features], v: &[Sparse], i: usize, j: usize) -> f64 {
    let (a, b) = (&f[i], &f[j]);
    let years_conflict =
        !a.years.is_empty() && !b.years.is_empty() && a.years.is_disjoint(&b.years);
    let same_source = a.source.is_some() && a.source == b.source;
    W_WORDS * f64::from(sparse::cosine(&v[i], &v[j]))
        - if years_conflict { W_YEARS } else { 0.0 }
        - if same_source { W_SOURCE } else { 0.0 }
}

/// Candidate pairs `(i, j)`, `i < j`, from neighbour lists, once each.
fn pairs_of(neighbours: &[Vec<(usize, f32)>]) -> Vec<(usize, usize)> {
    let mut pairs: Vec<(usize, usize)> = neighbours
        .iter()
        .enumerate()
        .flat_map(|(i, l)| l.iter().map(move |&(j, _)| (i.min(j), i.max(j))))
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
    let vectors = tfidf(features);
    match embeddings {
        Some(e) => {
            let nn = link::neighbours(e, NEIGHBOURS.max(DENSITY_NEIGHBOURS));
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
            let nn: Vec<Vec<(usize, f32)>> = nn
                .into_iter()
                .map(|mut l| {
                    l.truncate(NEIGHBOURS);
                    l
                })
                .collect();
            let scored: Vec<(usize, usize, f64)> = pairs_of(&nn)
                .into_iter()
                .map(|(i, j)| {
                    let cos = f64::from(crate::embed::dot(&e[i], &e[j]));
                    let s = cos - W_DENSITY * (density[i] + density[j]) / 2.0
                        + word_score(features, &vectors, i, j);
                    (i, j, s)
                })
                .collect();
            link::average_link(n, &scored, THRESHOLD)
        }
        None => {
            let nn = link::sparse_neighbours(&vectors, NEIGHBOURS);
            let scored: Vec<(usize, usize, f64)> = pairs_of(&nn)
                .into_iter()
                .map(|(i, j)| (i, j, word_score(features, &vectors, i, j) / W_WORDS))
                .collect();
            link::average_link(n, &scored, f64::from(word_threshold))
        }
    }
}
