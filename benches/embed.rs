//! Sentence-encoder speed against PyTorch (`benches/embed_peer.py`): the
//! real all-MiniLM-L6-v2 (`scripts/get-models`), 20 batches of 32 inputs of
//! 64 tokens (the same fixed token ids on both sides), mean pooling and
//! normalisation included; the median of 3 runs. Prints one JSON line, like
//! the peer. Threads: `RAYON_NUM_THREADS` / `OMP_NUM_THREADS`.
//!
//! ```sh
//! scripts/get-models
//! RAYON_NUM_THREADS=2 cargo bench --bench embed -- models/all-MiniLM-L6-v2
//! OMP_NUM_THREADS=2 python3 benches/embed_peer.py models/all-MiniLM-L6-v2 --threads 2
//! ```

use std::path::PathBuf;
use std::time::Instant;

use dailydigest::embed::Encoder;

pub(crate) const BATCH: usize = 32;
/// Tokens an input (`--tokens=N` to change: grouping embeds 32).
pub(crate) const TOKENS: usize = 64;
pub(crate) const BATCHES: usize = 20;
pub(crate) const REPEATS: usize = 3;

/// The token ids both sides embed: `[CLS]`, `tokens - 2` ids from a fixed
/// pseudo-random sequence over the ordinary vocabulary, `[SEP]`.
fn inputs(tokens: usize) -> Vec<Vec<u32>> {
    let mut x: u64 = 12345;
    (0..BATCH)
        .map(|_| {
            let mut row = vec![101u32];
            for _ in 0..tokens - 2 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                row.push(1996 + ((x >> 33) % 28000) as u32);
            }
            row.push(102);
            row
        })
        .collect()
}

fn main() {
    dailydigest::models::keep_freed_memory();
    let dir = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("models/all-MiniLM-L6-v2"));
    let tokens: usize = std::env::args()
        .find_map(|a| a.strip_prefix("--tokens=").map(str::to_owned))
        .map_or(TOKENS, |n| n.parse().expect("--tokens=N"));
    let encoder = Encoder::load(&dir).expect("the encoder loads");
    let batches: Vec<Vec<Vec<u32>>> = (0..BATCHES).map(|_| inputs(tokens)).collect();
    encoder.embed_batches(&batches[..2]).expect("warm-up");
    let mut times = Vec::new();
    for _ in 0..REPEATS {
        let t = Instant::now();
        encoder.embed_batches(&batches).expect("embeds");
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = times[REPEATS / 2];
    println!(
        "{{\"side\": \"dailydigest\", \"threads\": {}, \"batch\": {BATCH}, \"tokens\": {tokens}, \"batches\": {BATCHES}, \"median_s\": {median:.3}, \"sentences_per_s\": {:.1}}}",
        rayon::current_num_threads(),
        (BATCH * BATCHES) as f64 / median
    );
}
