//! dailydigest turns each day's news articles into a short digest and
//! emails it to subscribers.
//!
//! Layers point down only (ARCHITECTURE.md): `serve` → `pipeline` →
//! `mail`, `render` → `edition` → `summarize`, `embed`, `ingest` → `text`,
//! `store`, `config`, `article`, `lock`, `models`, `progress`. `pipeline` holds one
//! day's flow over one open store. The command line (`src/cli/`) belongs
//! to the `digest` binary: it parses, calls the pipeline, prints, and maps
//! outcomes to exit codes.

pub mod article;
pub mod config;
pub mod edition;
pub mod embed;
pub mod ingest;
pub mod lock;
pub mod mail;
pub mod models;
pub mod pipeline;
pub mod progress;
pub mod render;
pub mod serve;
pub mod store;
pub mod summarize;
pub mod text;

pub use article::Article;
