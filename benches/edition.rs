//! Benchmark: assemble and render an edition of 500 articles, summaries
//! included (ingest from memory excluded: the articles are read once).
//!
//! Input: the first 500 articles of `../shared/eval/{cnndm,bbc}_dev.jsonl`
//! when the evaluation kit is there, else `examples/` repeated.
//! Run: `cargo bench --bench edition`.

use std::path::Path;

use chrono::NaiveDate;
use criterion::{criterion_group, criterion_main, Criterion};
use dailydigest::edition::{assemble, EditionOptions, Entry};
use dailydigest::ingest::{Ingest, Input};
use dailydigest::render::{Recipient, Renderer};
use dailydigest::summarize::{Budget, Extractive, Summarizer};
use dailydigest::Article;

fn articles() -> Vec<Article> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let eval = root.join("../shared/eval");
    let inputs: Vec<Input> = if eval.is_dir() {
        vec![
            Input::Path(eval.join("cnndm_dev.jsonl")),
            Input::Path(eval.join("bbc_dev.jsonl")),
        ]
    } else {
        (0..100)
            .map(|_| Input::Path(root.join("examples")))
            .collect()
    };
    Ingest::new(inputs)
        .filter_map(Result::ok)
        .take(500)
        .collect()
}

fn bench(c: &mut Criterion) {
    let articles = articles();
    let date = NaiveDate::from_ymd_opt(2022, 3, 14).unwrap();
    let opts = EditionOptions {
        date,
        max_stories: 30,
        top_stories: 5,
        source_weights: Default::default(),
        merge_threshold: 0.2,
        budget: dailydigest::summarize::Budget::default(),
    };
    let renderer = Renderer::load(None, "Daily Digest").unwrap();
    let reader = Recipient::preview("https://digest.example.com");
    let summarizer = Extractive::default();
    c.bench_function(
        &format!(
            "edition of {} articles: summarize, assemble, render",
            articles.len()
        ),
        |b| {
            b.iter(|| {
                let entries: Vec<Entry> = articles
                    .iter()
                    .map(|a| Entry {
                        article: a.clone(),
                        summary: summarizer.summarize(a, Budget::default()).unwrap(),
                    })
                    .collect();
                let edition = assemble(entries, &opts, None);
                renderer.render(&edition, &reader).unwrap().html.len()
            })
        },
    );
}

criterion_group!(edition, bench);
criterion_main!(edition);
