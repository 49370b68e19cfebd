//! One summary for a story of several reports, drawn from all of them.
//!
//! Candidates are each report's lead sentences and the sentences its own
//! summary chose. A candidate scores by how much the other reports say the
//! same (its best similarity to each other report, averaged) and by how
//! early it comes in its report; the best are taken greedily within the
//! budget, skipping any too similar to one already taken (by meaning with
//! an encoder, else by words), or most of whose clauses one already taken
//! says.

use std::sync::LazyLock;

use regex::Regex;
use rustc_hash::FxHashMap;

use crate::embed::Embed;
use crate::summarize::Budget;
use crate::text::sparse::{self, cosine, Idf, Sparse, Tf};
use crate::text::{self, Terms};

use super::Entry;

/// Lead sentences of each report that are candidates.
const LEAD: usize = 4;
/// Candidates embedded (in score order) to compare by meaning.
const EMBEDDED: usize = 8;
/// Reports a story summary draws from: the best ones (a story of hundreds
/// of near-identical feed items costs no more than one of a few).
const MAX_REPORTS: usize = 6;

/// Weight of a sentence's earliness (1 / (1 + position)) against its
/// support by the other reports (0-1).
const POSITION_WEIGHT: f32 = 1.0;
/// A small preference for the best report's own sentences.
const MAIN_REPORT_BONUS: f32 = 0.1;
/// A candidate this close to one already taken says the same thing: by
/// word cosine (TF-IDF)...
const REDUNDANT_WORDS: f32 = 0.3;
/// ...or by meaning, with an encoder (tuned on allsides_dev: 0.7 37.87,
/// 0.8 38.09, 0.9 37.89 R-1)...
const REDUNDANT_MEANING: f32 = 0.8;
/// ...and, with or without one, when this share of the shorter sentence's
/// content words (stemmed, stop words out) are in the other: two reports'
/// wordings of one fact that the encoder, or the cosine of two sentences of
/// unequal length, scores apart.
const REDUNDANT_SHARE: f32 = 0.5;
/// ...or when this share of its content words lies in clauses already said
/// (each clause half in one sentence taken): "As Russia and Ukraine resume
/// talks, Ukrainian adviser and negotiator Podolyak said communication is
/// ongoing yet hard" after "Russian and Ukrainian negotiators resumed talks,
/// with Kyiv's delegation saying communication was difficult": two of its
/// three clauses restate, and so, most likely, does the third. A sentence
/// whose new clause carries most of its words ("Talks resumed, and the
/// death toll rose to 50") is kept.
const SAID_SHARE: f32 = 0.6;

struct Candidate {
    text: String,
    /// Content terms of each clause that says something (attribution
    /// clauses and clauses of fewer than three terms left out).
    clauses: Vec<Vec<String>>,
    report: usize,
    position: usize,
    words: usize,
    vector: Vec<(u32, f32)>,
}

/// A story's candidates, in the order they are tried.
pub(crate) struct Plan {
    candidates: Vec<Candidate>,
    order: Vec<usize>,
}

/// The candidates of the reports `members` (best report first), scored
/// and ordered; `None` when there is none.
pub(crate) fn plan(entries: &[Entry], members: &[usize], terms: &Terms) -> Option<Plan> {
    let mut candidates: Vec<Candidate> = Vec::new();
    let members = &members[..members.len().min(MAX_REPORTS)];
    for (r, &i) in members.iter().enumerate() {
        let e = &entries[i];
        let mut picked: Vec<(usize, String)> = e
            .article
            .paragraphs
            .iter()
            .flat_map(|p| text::split_sentences(p))
            .take(LEAD)
            .enumerate()
            .map(|(k, s)| (k, s.to_string()))
            .collect();
        for s in &e.summary.sentences {
            if !picked.iter().any(|(k, _)| *k == s.index) {
                picked.push((s.index, s.text.clone()));
            }
        }
        for (position, t) in picked {
            let words = text::word_count(&t);
            if words < 4 || !text::quotes_balanced(&t) || text::is_bare_quotation(&t) {
                continue;
            }
            candidates.push(Candidate {
                clauses: clause_terms(&t, terms),
                text: t,
                report: r,
                position,
                words,
                vector: Vec::new(),
            });
        }
    }
    if candidates.is_empty() {
        return None;
    }
    let vectors = tfidf(candidates.iter().map(|c| c.text.as_str()), terms);
    for (c, v) in candidates.iter_mut().zip(vectors) {
        c.vector = v;
    }
    let reports = members.len();
    let scores: Vec<f32> = candidates
        .iter()
        .map(|c| {
            let mut support = 0f32;
            for r in (0..reports).filter(|&r| r != c.report) {
                support += candidates
                    .iter()
                    .filter(|o| o.report == r)
                    .map(|o| cosine(&c.vector, &o.vector))
                    .fold(0f32, f32::max);
            }
            support /= (reports - 1).max(1) as f32;
            support
                + POSITION_WEIGHT / (1.0 + c.position as f32)
                + if c.report == 0 {
                    MAIN_REPORT_BONUS
                } else {
                    0.0
                }
        })
        .collect();
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| {
        scores[b]
            .total_cmp(&scores[a])
            .then(candidates[a].report.cmp(&candidates[b].report))
            .then(candidates[a].position.cmp(&candidates[b].position))
    });
    Some(Plan { candidates, order })
}

/// Candidate vectors by meaning, where known.
type Meaning = FxHashMap<usize, Vec<f32>>;

impl Plan {
    /// The sentences taken greedily within the budget, in reading order.
    ///
    /// Two of the best [`EMBEDDED`] candidates compare by meaning (with
    /// `meaning`), any other pair by words. A pair that should compare by
    /// meaning but lacks a vector counts as not alike, and its candidates
    /// are returned in the second list: the choice is final when that list
    /// is empty.
    fn choose(&self, budget: Budget, meaning: Option<&Meaning>) -> (Vec<usize>, Vec<usize>) {
        let candidates = &self.candidates;
        let top = &self.order[..self.order.len().min(EMBEDDED)];
        let mut missing: Vec<usize> = Vec::new();
        let mut similar = |a: usize, b: usize| {
            let (x, y) = (&candidates[a].vector, &candidates[b].vector);
            if shared_share(x, y) >= REDUNDANT_SHARE {
                return true;
            }
            let Some(meaning) = meaning.filter(|_| top.contains(&a) && top.contains(&b)) else {
                return cosine(x, y) >= REDUNDANT_WORDS;
            };
            match (meaning.get(&a), meaning.get(&b)) {
                (Some(x), Some(y)) => crate::embed::dot(x, y) >= REDUNDANT_MEANING,
                _ => {
                    for c in [a, b] {
                        if !meaning.contains_key(&c) && !missing.contains(&c) {
                            missing.push(c);
                        }
                    }
                    false
                }
            }
        };
        let mut chosen: Vec<usize> = Vec::new();
        let mut words = 0;
        for &c in &self.order {
            if chosen.len() >= budget.sentences.max(1) {
                break;
            }
            let w = candidates[c].words;
            if !chosen.is_empty() && budget.words > 0 && words + w > budget.words {
                continue;
            }
            if chosen.iter().any(|&k| similar(k, c)) || mostly_said(candidates, &chosen, c) {
                continue;
            }
            chosen.push(c);
            words += w;
        }
        // Reading order: by report (the best first), then as each report has it.
        chosen.sort_by_key(|&c| (candidates[c].report, candidates[c].position));
        (chosen, missing)
    }

    fn lines(&self, chosen: &[usize]) -> Vec<String> {
        chosen
            .iter()
            .map(|&c| self.candidates[c].text.clone())
            .collect()
    }
}

/// The story summaries of several stories' plans.
///
/// With an encoder, only the candidates a choice compares by meaning are
/// embedded, for all stories in one call (batched by length, on all
/// cores): first those the choice would compare if meaning found nothing
/// alike, then, for the few stories where it did, those the changed path
/// compares. The summaries are those of embedding every story's best
/// candidates; a story of one wire copy's sentences embeds each text once.
pub(crate) fn summarize_all(
    plans: &[Plan],
    budget: Budget,
    embedder: Option<&dyn Embed>,
) -> Vec<Vec<String>> {
    let by_words = || -> Vec<Vec<String>> {
        plans
            .iter()
            .map(|p| p.lines(&p.choose(budget, None).0))
            .collect()
    };
    let Some(embedder) = embedder else {
        return by_words();
    };
    let mut meaning: Vec<Meaning> = vec![Meaning::default(); plans.len()];
    let mut lines: Vec<Vec<String>> = vec![Vec::new(); plans.len()];
    // Stories whose choice still lacks a vector; a choice that lacks none
    // is final (its vectors do not change again).
    let mut pending: Vec<usize> = (0..plans.len()).collect();
    while !pending.is_empty() {
        let mut wanted: Vec<(usize, usize)> = Vec::new();
        pending.retain(|&s| {
            let (chosen, missing) = plans[s].choose(budget, Some(&meaning[s]));
            if missing.is_empty() {
                lines[s] = plans[s].lines(&chosen);
                return false;
            }
            wanted.extend(missing.into_iter().map(|m| (s, m)));
            true
        });
        if wanted.is_empty() {
            break;
        }
        let mut texts: Vec<&str> = wanted
            .iter()
            .map(|&(s, c)| plans[s].candidates[c].text.as_str())
            .collect();
        texts.sort_unstable();
        texts.dedup();
        let vectors = match embedder.embed(&texts) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(
                    "sentence encoder {} failed ({e}): story summaries compare by words",
                    embedder.name()
                );
                return by_words();
            }
        };
        for (s, c) in wanted {
            let text = plans[s].candidates[c].text.as_str();
            let i = texts.binary_search(&text).expect("embedded");
            meaning[s].insert(c, vectors[i].clone());
        }
    }
    lines
}

static ATTRIBUTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(?:[\w'\x{2019}.-]+\s+){0,4}(?:is\s+|are\s+|was\s+|has\s+)?(?:reporting|reported|said|says|told|according\s+to|added)\b")
        .expect("valid regex")
});

/// The content terms of each clause of `sentence` that says something.
fn clause_terms(sentence: &str, terms: &Terms) -> Vec<Vec<String>> {
    sentence
        .split([',', ';', ':', '\u{2014}'])
        .flat_map(|c| c.split(" - "))
        .map(str::trim)
        .filter(|c| !(c.split_whitespace().count() <= 6 && ATTRIBUTION.is_match(c)))
        .map(|c| {
            let mut t: Vec<String> = Vec::new();
            terms.for_each(c, |w| t.push(w.to_owned()));
            t.sort_unstable();
            t.dedup();
            t
        })
        .filter(|t| t.len() >= 3)
        .collect()
}

/// Whether most of candidate `c`'s words lie in clauses that sentences
/// already `chosen` say (`SAID_SHARE`).
fn mostly_said(candidates: &[Candidate], chosen: &[usize], c: usize) -> bool {
    let clauses = &candidates[c].clauses;
    if clauses.len() < 2 || chosen.is_empty() {
        return false;
    }
    let said: Vec<Vec<String>> = chosen
        .iter()
        .map(|&k| {
            let mut all: Vec<String> = candidates[k].clauses.concat();
            all.sort_unstable();
            all.dedup();
            all
        })
        .collect();
    let total: usize = clauses.iter().map(Vec::len).sum();
    let covered: usize = clauses
        .iter()
        .filter(|clause| {
            said.iter().any(|s| {
                let shared = clause.iter().filter(|w| s.binary_search(w).is_ok()).count();
                2 * shared >= clause.len()
            })
        })
        .map(Vec::len)
        .sum();
    covered as f32 >= SAID_SHARE * total as f32
}

/// The share of the shorter vector's terms that the other has too (the
/// vectors are sorted by term id).
fn shared_share(a: &Sparse, b: &Sparse) -> f32 {
    let shorter = a.len().min(b.len());
    if shorter == 0 {
        return 0.0;
    }
    sparse::shared_count(a, b, |x| x.0, |y| y.0) as f32 / shorter as f32
}

/// Unit-length TF-IDF vectors of `texts` (content terms, sublinear term
/// frequency, IDF over these texts), sorted by term id.
pub(super) fn tfidf<'a>(texts: impl Iterator<Item = &'a str>, terms: &Terms) -> Vec<Sparse> {
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
    use std::cell::RefCell;

    /// A stand-in encoder: hashed bags of lower-cased words, unit length
    /// (sentences sharing most words are alike). Records each call's size.
    struct Bags(RefCell<Vec<usize>>);
    impl Embed for Bags {
        fn name(&self) -> &str {
            "bags"
        }
        fn settings(&self) -> String {
            "bags".into()
        }
        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
            self.0.borrow_mut().push(texts.len());
            Ok(texts
                .iter()
                .map(|t| {
                    let mut v = vec![0f32; 64];
                    for w in t
                        .split(|c: char| !c.is_alphanumeric())
                        .filter(|w| !w.is_empty())
                    {
                        let h = w
                            .to_lowercase()
                            .bytes()
                            .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
                        v[h as usize % 64] += 1.0;
                    }
                    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
                    v.iter().map(|x| x / n).collect()
                })
                .collect())
        }
    }

    #[test]
    fn only_what_a_choice_compares_is_embedded_and_it_chooses_as_embedding_all_would() {
        use crate::edition::assemble::tests::entry;
        let entries = vec![
            entry(Some("Storm hits coast"), "A", "A storm hit the northern coast on Monday, cutting power to 40,000 homes. Winds reached 120 km/h near the harbour. Schools in three towns stayed closed. The weather service expects the storm to weaken by Wednesday. Crews worked through the night to restore power."),
            entry(Some("Storm cuts power"), "B", "The storm cut power to 40,000 homes on the northern coast on Monday. Winds of 120 km/h were measured near the harbour. Repair crews worked overnight to restore power to the homes. Three towns closed their schools for the day."),
            entry(None, "C", "Forty thousand homes lost power when a storm hit the northern coast on Monday. The storm is expected to weaken by Wednesday, the weather service said. Ferries between the islands were cancelled until Tuesday."),
            entry(Some("Council approves budget"), "D", "The city council approved a budget of 2.1 billion on Tuesday after a six-hour debate. Spending on buses rises by a tenth. The mayor said the budget keeps taxes flat for a third year. Opposition members voted against the plan."),
            entry(Some("Budget passes"), "E", "After six hours of debate the council approved the city budget of 2.1 billion on Tuesday. Bus spending rises by ten percent under the plan. Opposition councillors voted against it, saying it cut parks."),
        ];
        let terms = Terms::new();
        let plans: Vec<Plan> = [vec![0, 1, 2], vec![3, 4]]
            .iter()
            .map(|m| plan(&entries, m, &terms).expect("candidates"))
            .collect();
        let budget = Budget::default();
        let bags = Bags(RefCell::new(Vec::new()));
        let got = summarize_all(&plans, budget, Some(&bags));
        let calls = bags.0.borrow().clone();
        // The old way: each story's best EMBEDDED candidates, all embedded.
        let plain = Bags(RefCell::new(Vec::new()));
        let mut tops = 0;
        for (p, lines) in plans.iter().zip(&got) {
            let top = &p.order[..p.order.len().min(EMBEDDED)];
            tops += top.len();
            let texts: Vec<&str> = top.iter().map(|&c| p.candidates[c].text.as_str()).collect();
            let all: Meaning = top
                .iter()
                .copied()
                .zip(plain.embed(&texts).unwrap())
                .collect();
            let (chosen, missing) = p.choose(budget, Some(&all));
            assert!(missing.is_empty());
            assert_eq!(&p.lines(&chosen), lines);
            assert!(!lines.is_empty());
        }
        let embedded: usize = calls.iter().sum();
        assert!(
            embedded < tops,
            "embedded {embedded} of the {tops} best candidates ({calls:?})"
        );
        // One call serves both stories at first.
        let first_story = plans[0].choose(budget, Some(&Meaning::default())).1.len();
        assert!(calls[0] > first_story, "{calls:?}");
        // Without an encoder: by words, nothing embedded.
        let by_words = summarize_all(&plans, budget, None);
        assert_eq!(by_words.len(), 2);
    }

    #[test]
    fn a_quotation_with_no_speaker_is_not_narration() {
        assert!(text::is_bare_quotation(
            "“Communication is being held, yet it’s hard.”"
        ));
        assert!(text::is_bare_quotation("\"Don't believe the propaganda.\""));
        assert!(text::is_bare_quotation("“We will not give up”."));
        assert!(!text::is_bare_quotation(
            "“We will not give up,” the president said."
        ));
        assert!(!text::is_bare_quotation(
            "The president said: “We will not give up.”"
        ));
        assert!(!text::is_bare_quotation("Talks resumed on Monday."));
    }

    /// Two wordings of one fact, from two reports, are one sentence in the
    /// story's summary: most of the shorter one's content words are in the
    /// other, even where their cosine is low (one is long).
    #[test]
    fn a_fact_told_twice_is_taken_once() {
        let terms = Terms::new();
        let v = tfidf(
            [
                "Podolyak said on Twitter that communication is ongoing, yet hard, as the delegations met again in Belarus on Monday for a fourth round.",
                "Communication is ongoing but hard, Podolyak said.",
                "Shelling of Kyiv's suburbs continued overnight.",
            ]
            .into_iter(),
            &terms,
        );
        assert!(shared_share(&v[0], &v[1]) >= REDUNDANT_SHARE);
        assert!(cosine(&v[0], &v[1]) < REDUNDANT_WORDS + 0.3);
        assert!(shared_share(&v[0], &v[2]) < REDUNDANT_SHARE);
    }

    #[test]
    fn a_sentence_mostly_said_already_is_not_taken() {
        let terms = Terms::new();
        let c = |t: &str| Candidate {
            text: t.to_owned(),
            clauses: clause_terms(t, &terms),
            report: 0,
            position: 0,
            words: text::word_count(t),
            vector: Vec::new(),
        };
        let candidates = [
            c("Russian and Ukrainian negotiators resumed talks by video link on Monday, with Kyiv's delegation saying communication was difficult but continuing."),
            c("As Russia and Ukraine resume talks, Ukrainian presidential adviser and negotiator, Mykhailo Podolyak, said on Twitter communication is ongoing yet hard, Al Jazeera is reporting."),
            c("Talks resumed by video link on Monday, and the death toll in Mariupol rose to 2,500 as shelling of the port went on."),
        ];
        // "Al Jazeera is reporting" says nothing of its own.
        assert_eq!(
            candidates[1].clauses.len(),
            3,
            "{:?}",
            candidates[1].clauses
        );
        assert!(mostly_said(&candidates, &[0], 1));
        // Its new clause is most of it: kept.
        assert!(!mostly_said(&candidates, &[0], 2));
        assert!(!mostly_said(&candidates, &[], 1));
    }
}
