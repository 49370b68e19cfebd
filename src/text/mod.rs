//! Text handling shared by every stage: page debris and paragraphs
//! (`clean.rs`), sentences, words, stop words, stems.

pub mod clean;
pub mod sentences;
pub mod tokens;

pub use sentences::{split as split_sentences, split_spans as sentence_spans};
pub use tokens::{is_stop_word, word_count, words, Terms};
