//! dailydigest turns each day's news articles into a short digest and
//! emails it to subscribers.
//!
//! Layers point down only (README, "How it is built"):
//! `cli` / `serve` → `pipeline` → `mail`, `render` → `digest` →
//! `summarize`, `embed`, `ingest` → `text`, `store`, `config`, `article`,
//! `lock`, `models`.
//! `pipeline` holds one day's flow over one open store; the cli parses,
//! calls it, and prints.

pub mod article;
pub mod cli;
pub mod config;
pub mod digest;
pub mod embed;
pub mod ingest;
pub mod lock;
pub mod mail;
pub mod models;
pub mod pipeline;
pub mod render;
pub mod serve;
pub mod store;
pub mod summarize;
pub mod text;

pub use article::Article;
