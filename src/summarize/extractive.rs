//! Extractive summarization: pick the article's most important sentences.
//!
//! Each sentence gets a score from three signals:
//! - **position**: news is written lead-first, so earlier sentences are
//!   worth more (a power-law prior over the sentence index);
//! - **centrality**: how much of the rest of the article a sentence
//!   covers, on a similarity graph over TF-IDF vectors of stemmed content
//!   words. Following PACSUM (Zheng & Lapata, 2019), similarity to *later*
//!   sentences counts more than similarity to earlier ones: a lead sentence
//!   is the one the rest of the story elaborates;
//! - **length**: fragments (datelines, "Watch the video") are not summaries,
//!   and under a word budget a long sentence costs the place of two.
//!
//! Sentences are then chosen greedily under the budget with a redundancy
//! penalty (maximal marginal relevance), and returned in article order.
//! Everything is deterministic: ties break by position.

use rustc_hash::FxHashMap;

use super::{Budget, SummarizeError, Summarizer, Summary, SummarySentence};
use crate::article::Article;
pub use crate::config::{Params, Preset};
use crate::text::sparse::{self, cosine, Idf, Tf};
use crate::text::{self, Terms};

/// The extractive summarizer.
pub struct Extractive {
    params: Params,
    terms: Terms,
}

impl Default for Extractive {
    fn default() -> Self {
        Extractive::new(Params::default())
    }
}

/// A sentence being considered.
struct Candidate {
    text: String,
    /// Distinct content terms, sorted.
    terms: Vec<u32>,
    words: usize,
    /// Sparse, L2-normalised TF-IDF vector, sorted by term id.
    vector: Vec<(u32, f32)>,
    quoted: bool,
}

impl Extractive {
    pub fn new(params: Params) -> Extractive {
        Extractive {
            params,
            terms: Terms::new(),
        }
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Scores every sentence of the article; returns the sentences and
    /// their scores, in article order.
    pub fn score(&self, article: &Article, budget: Budget) -> (Vec<String>, Vec<f32>) {
        let (cands, scores) = self.score_candidates(article, budget);
        (cands.into_iter().map(|c| c.text).collect(), scores)
    }

    /// The article's sentences as candidates, with the vocabulary and IDF
    /// weights their vectors were built with.
    fn candidates(&self, article: &Article) -> (Vec<Candidate>, FxHashMap<String, u32>, Vec<f32>) {
        let mut vocab: FxHashMap<String, u32> = FxHashMap::default();
        let mut bags: Vec<Vec<(u32, f32)>> = Vec::new();
        let mut cands = Vec::new();
        'outer: for paragraph in &article.paragraphs {
            for sentence in text::split_sentences(paragraph) {
                if cands.len() >= self.params.max_sentences {
                    break 'outer;
                }
                let text = normalise_space(sentence);
                let mut bag: FxHashMap<u32, f32> = FxHashMap::default();
                self.terms.for_each(&text, |t| {
                    let id = match vocab.get(t) {
                        Some(&id) => id,
                        None => {
                            let id = vocab.len() as u32;
                            vocab.insert(t.to_owned(), id);
                            id
                        }
                    };
                    *bag.entry(id).or_insert(0.0) += 1.0;
                });
                let mut bag: Vec<(u32, f32)> = bag.into_iter().collect();
                bag.sort_unstable_by_key(|&(id, _)| id);
                let terms = bag.iter().map(|&(id, _)| id).collect();
                bags.push(bag);
                cands.push(Candidate {
                    terms,
                    words: text::word_count(&text),
                    quoted: is_mostly_quote(&text),
                    text,
                    vector: Vec::new(),
                });
            }
        }
        // Sentence-level IDF: terms found in every sentence carry little.
        let idf = sparse::idf(
            &bags,
            vocab.len(),
            Idf::Plain {
                power: Some(self.params.idf_power),
            },
        );
        for (cand, bag) in cands.iter_mut().zip(bags) {
            cand.vector = sparse::weigh(bag, &idf, Tf::Sublinear);
        }
        (cands, vocab, idf)
    }

    fn score_candidates(&self, article: &Article, budget: Budget) -> (Vec<Candidate>, Vec<f32>) {
        let p = &self.params;
        let (cands, vocab, idf) = self.candidates(article);
        let n = cands.len();
        // Edge weights: TF-IDF cosine, plus TextRank's length-aware overlap
        // (shared terms over the sum of log lengths), mixed by `overlap_share`.
        let mut sim = vec![0f32; n * n];
        for i in 0..n {
            for j in i + 1..n {
                let mut s = (1.0 - p.overlap_share) * cosine(&cands[i].vector, &cands[j].vector);
                if p.overlap_share > 0.0 {
                    s += p.overlap_share * overlap(&cands[i], &cands[j]);
                }
                sim[i * n + j] = s * (1.0 - p.backward_share);
                sim[j * n + i] = s * p.backward_share;
            }
        }
        // Directed degree centrality (PACSUM): similarity to later sentences,
        // and less to earlier ones; optionally refined by PageRank iterations.
        let mut centrality: Vec<f32> = (0..n)
            .map(|i| sim[i * n..(i + 1) * n].iter().sum())
            .collect();
        if p.pagerank_iterations > 0 && n > 1 {
            let out: Vec<f32> = (0..n)
                .map(|j| (0..n).map(|i| sim[i * n + j]).sum::<f32>().max(1e-9))
                .collect();
            let mut rank = vec![1.0 / n as f32; n];
            for _ in 0..p.pagerank_iterations {
                let next: Vec<f32> = (0..n)
                    .map(|i| {
                        let inflow: f32 = (0..n).map(|j| sim[i * n + j] * rank[j] / out[j]).sum();
                        (1.0 - 0.85) / n as f32 + 0.85 * inflow
                    })
                    .collect();
                rank = next;
            }
            centrality = rank;
        }
        let max_c = centrality.iter().cloned().fold(0f32, f32::max);
        let title = (!article.title_derived).then(|| {
            let mut bag: Vec<(u32, f32)> = Vec::new();
            self.terms.for_each(&article.title, |t| {
                if let Some(&id) = vocab.get(t) {
                    match bag.iter_mut().find(|(i, _)| *i == id) {
                        Some((_, tf)) => *tf += 1.0,
                        None => bag.push((id, 1.0)),
                    }
                }
            });
            sparse::weigh(bag, &idf, Tf::Sublinear)
        });
        let scores = cands
            .iter()
            .enumerate()
            .map(|(i, c)| {
                // A quotation with no speaker reads as the article's own
                // narration: never taken.
                if c.words < p.min_words || text::is_bare_quotation(&c.text) {
                    return f32::NEG_INFINITY;
                }
                let position = 1.0 / (1.0 + i as f32).powf(p.position_decay);
                let central = if max_c > 0.0 {
                    centrality[i] / max_c
                } else {
                    0.0
                };
                let mut s = p.position_weight * position + p.centrality_weight * central;
                if let Some(t) = &title {
                    s += p.title_weight * cosine(t, &c.vector);
                }
                if budget.words > 0 {
                    let over = c.words.saturating_sub(p.long_words) as f32;
                    s *= (1.0 - p.long_penalty * over).max(0.1);
                } else {
                    s *= (c.words as f32 / 20.0).powf(p.length_exponent);
                }
                if c.quoted {
                    s -= p.quote_penalty;
                }
                s
            })
            .collect();
        (cands, scores)
    }
}

impl Summarizer for Extractive {
    fn name(&self) -> &str {
        "extractive"
    }

    fn settings(&self) -> String {
        format!(
            "extractive:{}",
            serde_json::to_string(&self.params).expect("params serialize")
        )
    }

    fn summarize(&self, article: &Article, budget: Budget) -> Result<Summary, SummarizeError> {
        let p = &self.params;
        let (cands, scores) = self.score_candidates(article, budget);
        if cands.is_empty() {
            return Err(SummarizeError::NoSentences);
        }
        let max_sentences = budget.sentences.max(1);
        let word_limit = if budget.words == 0 {
            usize::MAX
        } else {
            budget.words
        };
        let best = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let mut chosen: Vec<usize> = Vec::new();
        let mut words = 0usize;
        while chosen.len() < max_sentences {
            let mut pick: Option<(usize, f32)> = None;
            for (i, c) in cands.iter().enumerate() {
                if chosen.contains(&i) || !scores[i].is_finite() || words + c.words > word_limit {
                    continue;
                }
                let overlap = chosen
                    .iter()
                    .map(|&j| cosine(&c.vector, &cands[j].vector))
                    .fold(0f32, f32::max);
                if overlap >= p.duplicate_threshold {
                    continue;
                }
                let value = scores[i] - p.redundancy * overlap;
                if pick.is_none_or(|(_, v)| value > v) {
                    pick = Some((i, value));
                }
            }
            let Some((i, value)) = pick else { break };
            if !chosen.is_empty() && best > 0.0 && value < p.min_relative_score * best {
                break;
            }
            words += cands[i].words;
            chosen.push(i);
        }
        if chosen.is_empty() {
            // Nothing fits the word budget (or every sentence is a fragment):
            // take the best sentence rather than leave the article without a summary.
            let i = (0..cands.len())
                .max_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(b.cmp(&a)))
                .unwrap_or(0);
            chosen.push(i);
        }
        chosen.sort_unstable();
        let sentences = chosen
            .into_iter()
            .map(|i| SummarySentence {
                text: cands[i].text.clone(),
                index: i,
                score: scores[i],
            })
            .collect();
        Ok(Summary {
            sentences,
            fallback: None,
            abstractive: false,
        })
    }
}

/// TextRank similarity: shared terms over the sum of log term counts.
fn overlap(a: &Candidate, b: &Candidate) -> f32 {
    let (la, lb) = (a.terms.len() as f32, b.terms.len() as f32);
    if la < 2.0 || lb < 2.0 {
        return 0.0;
    }
    let shared = sparse::shared_count(&a.terms, &b.terms, |&x| x, |&y| y);
    shared as f32 / (la.ln() + lb.ln())
}

fn normalise_space(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A sentence that is mostly a direct quotation: it opens with a quotation
/// mark and the quote runs past its middle, or it closes a quote it did not
/// open (the tail of a quote split across sentences).
fn is_mostly_quote(s: &str) -> bool {
    let opens = s.matches(['“', '‘']).count();
    let closes = s.matches('”').count();
    if closes > opens {
        return true;
    }
    if !s.starts_with(['"', '“', '‘', '\'']) {
        return false;
    }
    let body = s.trim_start_matches(['"', '“', '‘', '\'']);
    let close = body.find(['"', '”']).unwrap_or(body.len());
    close * 2 > body.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::article::RawArticle;

    fn article(text: &str) -> Article {
        Article::from_raw(
            RawArticle {
                text: text.into(),
                ..Default::default()
            },
            "test",
        )
        .unwrap()
    }

    const STORY: &str =
        "Russian and Ukrainian officials resumed peace talks on Monday by video conference. \
        The talks began at 08:20 GMT, according to Ukrainian negotiator David Arakhamia. \
        Ukraine wants a ceasefire and the withdrawal of Russian troops from its territory. \
        The weather in Kyiv was cold. \
        Russia said the peace talks had made significant progress toward a ceasefire. \
        Officials on both sides said the talks would continue on Tuesday. \
        A spokesman declined to comment.";

    #[test]
    fn respects_the_sentence_budget_and_keeps_article_order() {
        let s = Extractive::default()
            .summarize(
                &article(STORY),
                Budget {
                    sentences: 2,
                    words: 0,
                },
            )
            .unwrap();
        assert_eq!(s.sentences.len(), 2);
        assert!(s.sentences.windows(2).all(|w| w[0].index < w[1].index));
        assert_eq!(
            s.sentences[0].index, 0,
            "the lead of a news story is in its summary"
        );
    }

    #[test]
    fn respects_the_word_budget() {
        for words in [15, 25, 40, 75] {
            let s = Extractive::default()
                .summarize(
                    &article(STORY),
                    Budget {
                        sentences: 5,
                        words,
                    },
                )
                .unwrap();
            assert!(
                s.word_count() <= words,
                "{} words over a budget of {words}",
                s.word_count()
            );
            assert!(!s.sentences.is_empty());
        }
    }

    #[test]
    fn one_long_sentence_still_gets_a_summary() {
        let s = Extractive::default()
            .summarize(
                &article(STORY),
                Budget {
                    sentences: 3,
                    words: 3,
                },
            )
            .unwrap();
        assert_eq!(s.sentences.len(), 1);
    }

    #[test]
    fn skips_fragments_and_off_topic_sentences() {
        let s = Extractive::default()
            .summarize(
                &article(STORY),
                Budget {
                    sentences: 3,
                    words: 0,
                },
            )
            .unwrap();
        let text = s.lines();
        assert!(!text.contains("weather"), "{text}");
        assert!(!text.contains("declined"), "{text}");
    }

    #[test]
    fn redundancy_is_penalised() {
        let dup = "Officials said the peace talks resumed on Monday in Belarus. \
            Officials said the peace talks resumed on Monday in Belarus again. \
            The delegations discussed humanitarian corridors for civilians in Mariupol. \
            Both sides agreed to meet again next week to continue.";
        let all = Params {
            min_relative_score: 0.0,
            ..Params::default()
        };
        let s = Extractive::new(all)
            .summarize(
                &article(dup),
                Budget {
                    sentences: 2,
                    words: 0,
                },
            )
            .unwrap();
        assert_eq!(
            s.sentences.iter().map(|s| s.index).collect::<Vec<_>>(),
            [0, 2]
        );
    }

    #[test]
    fn deterministic() {
        let e = Extractive::default();
        let a = article(STORY);
        let first = e.summarize(&a, Budget::default()).unwrap();
        for _ in 0..5 {
            assert_eq!(e.summarize(&a, Budget::default()).unwrap(), first);
        }
    }

    #[test]
    fn quotes_detected() {
        assert!(is_mostly_quote("“We will fight on,” he said."));
        assert!(!is_mostly_quote(
            "“Yes,” said the minister, who had spent the whole week in talks with the allies."
        ));
        assert!(!is_mostly_quote("He said “no”."));
        assert!(is_mostly_quote(
            "Every fraction of a degree makes extremes more frequent.”"
        ));
    }
}
