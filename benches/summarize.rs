//! Benchmarks of the sentence splitter and the extractive summarizer.
//!
//! Input: the articles of `../shared/eval/cnndm_dev.jsonl` when that file is
//! there (the evaluation kit beside the repository), else `examples/`.
//! Run: `cargo bench --bench summarize`.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dailydigest::ingest::{Ingest, Input};
use dailydigest::summarize::{Budget, Extractive, Summarizer};
use dailydigest::{text, Article};

fn articles() -> Vec<Article> {
    let eval = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/eval/cnndm_dev.jsonl");
    let input = if eval.is_file() {
        eval
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
    };
    Ingest::new([Input::Path(input)])
        .filter_map(Result::ok)
        .collect()
}

fn benches(c: &mut Criterion) {
    let articles = articles();
    let bytes: usize = articles.iter().map(|a| a.text().len()).sum();
    let mut group = c.benchmark_group(format!("{} articles", articles.len()));
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("split sentences", |b| {
        b.iter(|| {
            articles
                .iter()
                .flat_map(|a| a.paragraphs.iter())
                .map(|p| text::split_sentences(p).len())
                .sum::<usize>()
        })
    });
    let summarizer = Extractive::default();
    group.bench_function("summarize (extractive, default budget)", |b| {
        b.iter(|| {
            articles
                .iter()
                .map(|a| {
                    summarizer
                        .summarize(a, Budget::default())
                        .map_or(0, |s| s.sentences.len())
                })
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(summarize, benches);
criterion_main!(summarize);
