//! The summarizers' settings: the budget, which summarizer runs, and the
//! extractive scorer's weights. They live with the configuration (which
//! reads them from `digest.toml`); `summarize` re-exports them.

use serde::{Deserialize, Serialize};

/// How long a summary may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Budget {
    /// At most this many sentences (at least 1).
    pub sentences: usize,
    /// At most about this many words; 0 means no word limit. A single
    /// sentence longer than the limit is still taken when nothing shorter is
    /// worth taking, so that no article goes without a summary.
    pub words: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            sentences: 3,
            words: 75,
        }
    }
}

/// Which summarizer a run uses (`--summarizer`, `summarizer` in the config).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Choice {
    /// The transformer when a checkpoint loads, else extractive; degenerate
    /// model summaries are replaced by extractive ones.
    #[default]
    Auto,
    /// The transformer's summaries as they are; an error when none loads.
    Transformer,
    /// The extractive summarizer.
    Extractive,
}

/// The weights of the extractive scorer. The defaults were tuned on the
/// development splits of CNN highlights and BBC News Summary (see
/// `BENCHMARKS.md`); `[extractive]` in `digest.toml` overrides them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// The preset the other weights start from: `news` (lead-aware, tuned
    /// on journalists' highlights) or `coverage` (centrality first, for long
    /// extractive summaries under a sentence budget). Keys set beside it
    /// override the preset's.
    pub preset: Preset,
    /// Weight of the position prior.
    pub position_weight: f32,
    /// Exponent of the position prior `1 / (1 + index)^decay`.
    pub position_decay: f32,
    /// Weight of graph centrality.
    pub centrality_weight: f32,
    /// Share of centrality that comes from earlier sentences (0: only later
    /// sentences count, as in PACSUM's forward edges; 0.5: undirected).
    pub backward_share: f32,
    /// Exponent of the IDF factor in term weights (0: plain term frequency,
    /// which favours the article's most repeated words).
    pub idf_power: f32,
    /// Share of TextRank word overlap (vs TF-IDF cosine) in edge weights.
    pub overlap_share: f32,
    /// PageRank iterations over the sentence graph (0: degree centrality).
    pub pagerank_iterations: usize,
    /// Weight of similarity to the title, when the source gave one.
    pub title_weight: f32,
    /// Sentences shorter than this many words are never chosen.
    pub min_words: usize,
    /// Sentence length (words) past which the length penalty starts.
    pub long_words: usize,
    /// Under a word budget: score lost per word beyond `long_words`, as a
    /// fraction (a long sentence takes the place of two).
    pub long_penalty: f32,
    /// Under a sentence budget only: scores are multiplied by
    /// `(words / 20)^length_exponent`, so that the few sentences allowed
    /// carry as much as they can.
    pub length_exponent: f32,
    /// Redundancy penalty: score lost per unit of similarity to a sentence
    /// already chosen.
    pub redundancy: f32,
    /// A sentence at least this similar (cosine) to one already chosen is
    /// a near-duplicate and never chosen.
    pub duplicate_threshold: f32,
    /// Score lost by a sentence that is mostly a direct quotation.
    pub quote_penalty: f32,
    /// Stop adding sentences whose score falls below this fraction of the
    /// best one (0 keeps filling the budget).
    pub min_relative_score: f32,
    /// Only the first this many sentences are scored (long documents).
    pub max_sentences: usize,
}

/// Named starting points for the extractive weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    #[default]
    News,
    Coverage,
}

impl Params {
    /// The weights of a preset.
    pub fn preset(preset: Preset) -> Params {
        match preset {
            Preset::News => Params::default(),
            // Tuned on BBC News Summary, whose references are long,
            // machine-selected extracts: the article's central sentences
            // wherever they are, and its most repeated words.
            Preset::Coverage => Params {
                preset,
                position_weight: 0.05,
                backward_share: 0.5,
                idf_power: 0.0,
                redundancy: 0.0,
                min_relative_score: 0.0,
                ..Params::default()
            },
        }
    }
}

impl Default for Params {
    fn default() -> Self {
        Params {
            preset: Preset::News,
            position_weight: 1.0,
            position_decay: 1.0,
            centrality_weight: 1.0,
            backward_share: 0.3,
            idf_power: 1.0,
            overlap_share: 0.0,
            pagerank_iterations: 0,
            title_weight: 0.5,
            min_words: 5,
            long_words: 35,
            long_penalty: 0.01,
            length_exponent: 0.75,
            redundancy: 0.6,
            duplicate_threshold: 0.7,
            quote_penalty: 0.1,
            min_relative_score: 0.3,
            max_sentences: 400,
        }
    }
}
