//! Transformer speed against PyTorch (`benches/transformer_peer.py`): on a
//! random-weight checkpoint with distilbart-cnn-6-6's dimensions and a
//! 512-token input, the model load, the encoder, greedy decoding (ms per
//! token) and a whole beam-4 summary of 60 new tokens. One JSON line, like
//! the peer's. Threads: `RAYON_NUM_THREADS`.
//!
//! ```sh
//! python3 benches/transformer_peer.py make /tmp/distilbart-6-6
//! RAYON_NUM_THREADS=1 cargo bench --bench transformer -- /tmp/distilbart-6-6
//! ```

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;
use dailydigest::summarize::transformer::generate::{self, GenerationConfig};
use dailydigest::summarize::transformer::Transformer;

const NEW_TOKENS: usize = 60;

fn median(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[reps / 2]
}

/// Peak resident memory of this process, in MB.
fn peak_rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// One decoder step (at position 30) for 1 to 16 rows, in ms: what
/// batching several inputs (or beams) per forward pass costs.
fn steps_by_rows(net: &dyn generate::Seq2Seq, ids: &[u32]) -> Vec<(usize, f64)> {
    let encoded = net.encode(ids).unwrap();
    [1usize, 4, 8, 16]
        .iter()
        .map(|&rows| {
            let mut state = net.start(&encoded).unwrap();
            let tokens = vec![5u32; rows];
            for _ in 0..30 {
                net.step(&mut state, &tokens).unwrap();
            }
            let t = Instant::now();
            let n = 10;
            for _ in 0..n {
                net.step(&mut state, &tokens).unwrap();
            }
            (
                rows,
                (t.elapsed().as_secs_f64() / n as f64 * 10000.0).round() / 10.0,
            )
        })
        .collect()
}

fn main() {
    dailydigest::models::keep_freed_memory();
    let Some(dir) = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .map(PathBuf::from)
    else {
        eprintln!("usage: cargo bench --bench transformer -- DIR (make DIR with benches/transformer_peer.py make DIR)");
        return;
    };
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let started = Instant::now();
    let t = Transformer::load(&dir, &Device::Cpu).expect("the benchmark checkpoint loads");
    let load = started.elapsed().as_secs_f64();
    let ids: Vec<u32> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("input_ids.json")).unwrap())
            .unwrap();
    let net = t.network();
    // `ONLY=encoder`: just the encoder, 10 times (for profiling).
    if std::env::var("ONLY").as_deref() == Ok("encoder") {
        let encoder = median(10, || {
            net.encode(&ids).unwrap();
        });
        println!("encoder_ms {:.1}", encoder * 1000.0);
        return;
    }
    // `ONLY=step`: just one decoder step by rows (for profiling).
    if std::env::var("ONLY").as_deref() == Ok("step") {
        println!("step_ms_by_rows {:?}", steps_by_rows(net, &ids));
        return;
    }
    let beam_cfg: GenerationConfig = t.checkpoint().generation.clone();
    // `ONLY=beam`: just beam-4 summaries of exactly `LENGTH` tokens (the
    // checkpoint's length unless given), of `BATCH` copies of the input
    // decoded together (1 unless given): where the decoder's self-attention
    // cache costs the most, as it grows.
    if std::env::var("ONLY").as_deref() == Ok("beam") {
        let number = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(default)
        };
        let length = number("LENGTH", beam_cfg.max_length);
        let cfg = GenerationConfig {
            max_length: length,
            min_length: length,
            ..beam_cfg.clone()
        };
        let inputs = vec![ids.as_slice(); number("BATCH", 1)];
        let mut out = Vec::new();
        let beam = median(reps, || {
            out = generate::generate_batch(net, &inputs, &cfg).unwrap();
        });
        let lengths: Vec<usize> = out.iter().map(Vec::len).collect();
        println!("beam4_s {beam:.3} lengths {lengths:?}");
        return;
    }
    assert_eq!(beam_cfg.max_length, NEW_TOKENS + 1);
    let greedy_cfg = GenerationConfig {
        num_beams: 1,
        ..beam_cfg.clone()
    };
    let encoder = median(reps, || {
        net.encode(&ids).unwrap();
    });
    let mut greedy_ids = Vec::new();
    let greedy = median(reps, || {
        greedy_ids = generate::greedy(net, &ids, &greedy_cfg).unwrap();
    });
    let mut beam_ids = Vec::new();
    let beam = median(reps, || {
        beam_ids = generate::beam_search(net, &ids, &beam_cfg).unwrap();
    });
    let step_ms = steps_by_rows(net, &ids);
    // Four articles of 512, 448, 384 and 320 tokens, beam 4: one by one,
    // then in one batch.
    let articles: Vec<Vec<u32>> = [512usize, 448, 384, 320]
        .iter()
        .map(|&n| {
            let mut a = ids[..n - 1].to_vec();
            a.push(*ids.last().unwrap());
            a
        })
        .collect();
    let refs: Vec<&[u32]> = articles.iter().map(Vec::as_slice).collect();
    let mut alone = Vec::new();
    let one_by_one = median(reps, || {
        alone = refs
            .iter()
            .map(|a| generate::beam_search(net, a, &beam_cfg).unwrap())
            .collect();
    });
    let mut together = Vec::new();
    let batched = median(reps, || {
        together = generate::generate_batch(net, &refs, &beam_cfg).unwrap();
    });
    assert_eq!(
        alone, together,
        "a batch gives each article what it gets alone"
    );
    assert_eq!(greedy_ids.len(), NEW_TOKENS + 1);
    assert_eq!(beam_ids.len(), NEW_TOKENS + 1);
    println!(
        "{}",
        serde_json::json!({
            "engine": "dailydigest (candle 0.11.1)",
            "threads": candle_core::utils::get_num_threads(),
            "load_s": (load * 1000.0).round() / 1000.0,
            "encoder_ms": (encoder * 10000.0).round() / 10.0,
            "greedy_ms_per_token": ((greedy - encoder) * 1000.0 / NEW_TOKENS as f64 * 100.0).round() / 100.0,
            "beam4_s": (beam * 1000.0).round() / 1000.0,
            "peak_rss_mb": peak_rss_mb(),
            "step_ms_by_rows": step_ms,
            "beam4_4_articles_one_by_one_s": (one_by_one * 1000.0).round() / 1000.0,
            "beam4_4_articles_batched_s": (batched * 1000.0).round() / 1000.0,
            "greedy_ids": greedy_ids,
            "beam_ids": beam_ids,
        })
    );
}
