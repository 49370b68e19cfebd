//! dailydigest turns each day's news articles into a short digest and
//! emails it to subscribers.
//!
//! Data flows one way: `ingest` reads articles into `Article`s, `text`
//! splits them into sentences and words, `summarize` picks what matters,
//! and `cli` wires the commands together. See `ARCHITECTURE` in the README.

pub mod article;
pub mod cli;
pub mod config;
pub mod digest;
pub mod ingest;
pub mod mail;
pub mod render;
pub mod store;
pub mod summarize;
pub mod text;

pub use article::Article;
