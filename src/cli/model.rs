//! `digest model info` and `digest model check`: which transformer would
//! summarize, and whether it works.

use std::process::ExitCode;
use std::time::Instant;

use dailydigest::config::{Config, Embedder};
use dailydigest::embed::{self, Embed, Encoder, EncoderInfo};
use dailydigest::summarize::transformer::generate::EarlyStopping;
use dailydigest::summarize::transformer::{self, Checkpoint, Transformer};
use dailydigest::summarize::{format_parameters, guard, Choice};

/// The article `model check` summarizes.
const SAMPLE: &str = "Engineers in the port city of Halden launched a battery-powered \
ferry on Tuesday that can carry two hundred passengers and forty cars across the fjord \
without burning any diesel. The ferry charges for ten minutes at each end of its \
twenty-minute crossing, using power from the region's hydroelectric plants. The city \
council, which paid for half of the 18 million euro vessel, said the ferry would cut the \
crossing's carbon emissions by about 4,000 tonnes a year and make the harbour quieter. \
Local residents had complained for years about noise and fumes from the old diesel \
ferries. The shipyard that built the ferry said it had received orders for three more \
from other coastal towns, and that it expected electric ferries to replace most diesel \
ones on short routes within a decade.";

fn row(label: &str, value: impl std::fmt::Display) {
    println!("{label:<13}{value}");
}

/// Prints what would summarize and what groups stories, without loading
/// the weights.
pub(crate) fn info(config: &Config) -> anyhow::Result<ExitCode> {
    let found = dailydigest::models::scan(&config.models);
    row(
        "models",
        match found.len() {
            0 => format!("{} (nothing)", config.models.display()),
            n => format!(
                "{} ({n} folder{}: {})",
                config.models.display(),
                if n == 1 { "" } else { "s" },
                found
                    .iter()
                    .map(|(p, role)| format!(
                        "{} ({})",
                        p.strip_prefix(&config.models).unwrap_or(p).display(),
                        role.as_str()
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    );
    println!();
    let summarizer = summarizer_info(config)?;
    println!();
    let encoder = encoder_info(config);
    Ok(if summarizer == ExitCode::SUCCESS {
        encoder
    } else {
        summarizer
    })
}

/// The summarizer half of `info`.
fn summarizer_info(config: &Config) -> anyhow::Result<ExitCode> {
    let choice = match config.summarizer {
        Choice::Auto => "auto",
        Choice::Transformer => "transformer",
        Choice::Extractive => "extractive",
    };
    row("summarizer", choice);
    let runs_extractive = |why: &str| {
        row("runs", format!("the extractive summarizer ({why})"));
        Ok(ExitCode::SUCCESS)
    };
    if config.summarizer == Choice::Extractive {
        return runs_extractive("summarizer = extractive");
    }
    let dir = match transformer::find(&config.models, config.transformer.model.as_deref()) {
        Ok(Some(dir)) => dir,
        Ok(None) => return unusable(config, "none"),
        Err(e) => return unusable(config, &e),
    };
    let c = match Checkpoint::open(&dir) {
        Ok(c) => c,
        Err(e) => return unusable(config, &e),
    };
    row("checkpoint", c.dir.display());
    row(
        "architecture",
        format!(
            "{} ({})",
            c.class.as_deref().unwrap_or("?"),
            c.arch.as_str()
        ),
    );
    let weights: Vec<String> = c
        .weights
        .iter()
        .map(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    match c.parameters() {
        Ok(n) => row(
            "parameters",
            format!(
                "{} ({:.1} MB as float32; {})",
                format_parameters(n),
                n as f64 * 4.0 / 1e6,
                weights.join(", ")
            ),
        ),
        Err(e) => return unusable(config, &e),
    }
    match transformer::load_tokenizer(&c) {
        Ok(t) => row(
            "tokenizer",
            format!("{}, {} tokens", c.tokenizer, t.get_vocab_size(true)),
        ),
        Err(e) => return unusable(config, &e),
    }
    row(
        "input",
        format!(
            "at most {} tokens (longer articles are cut){}",
            c.max_input_tokens,
            if c.prefix.is_empty() {
                String::new()
            } else {
                format!(", prefix {:?}", c.prefix)
            }
        ),
    );
    let g = &c.generation;
    let mut gen = vec![
        if g.num_beams > 1 {
            format!("beam search, {} beams", g.num_beams)
        } else {
            "greedy".to_string()
        },
        format!("{}-{} tokens", g.min_length, g.max_length),
    ];
    if g.no_repeat_ngram_size > 0 {
        gen.push(format!("no_repeat_ngram_size {}", g.no_repeat_ngram_size));
    }
    if g.num_beams > 1 {
        gen.push(format!("length_penalty {}", g.length_penalty));
        gen.push(format!(
            "early_stopping {}",
            match g.early_stopping {
                EarlyStopping::Yes => "true",
                EarlyStopping::No => "false",
                EarlyStopping::Never => "never",
            }
        ));
    }
    if let Some(t) = g.forced_bos_token_id {
        gen.push(format!("forced BOS {t}"));
    }
    if let Some(t) = g.forced_eos_token_id {
        gen.push(format!("forced EOS {t}"));
    }
    row("generation", gen.join(", "));
    row(
        "device",
        transformer::describe_device(&transformer::device()),
    );
    row(
        "runs",
        match config.summarizer {
            Choice::Auto => format!(
                "the transformer {}; degenerate summaries are replaced by extractive ones \
                 (transformer.min_overlap {})",
                c.name, config.transformer.min_overlap
            ),
            _ => format!("the transformer {}, its summaries as they are", c.name),
        },
    );
    Ok(ExitCode::SUCCESS)
}

/// `info` when no checkpoint can run.
fn unusable(config: &Config, why: &str) -> anyhow::Result<ExitCode> {
    row("checkpoint", why);
    if config.summarizer == Choice::Transformer {
        row(
            "runs",
            "nothing: summarizer = transformer needs a checkpoint that loads",
        );
        return Ok(ExitCode::from(1));
    }
    row(
        "runs",
        "the extractive summarizer (auto, no usable checkpoint)",
    );
    Ok(ExitCode::SUCCESS)
}

/// Loads the checkpoint and summarizes the built-in sample, with timings.
pub(crate) fn check(config: &Config) -> anyhow::Result<ExitCode> {
    let dir = match transformer::find(&config.models, config.transformer.model.as_deref()) {
        Ok(Some(dir)) => dir,
        Ok(None) => {
            eprintln!(
                "error: no transformer checkpoint in {} (a folder with config.json){}",
                config.models.display(),
                match config.summarizer {
                    Choice::Transformer => "",
                    _ => "; the extractive summarizer runs",
                }
            );
            return Ok(ExitCode::from(1));
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let device = transformer::device();
    let started = Instant::now();
    let t = match Transformer::load(&dir, &device) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot load the checkpoint: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let load = started.elapsed();
    row("checkpoint", dir.display());
    row(
        "loaded",
        format!(
            "in {:.2} s on the {}",
            load.as_secs_f64(),
            transformer::describe_device(&device)
        ),
    );
    let (input, _) = t.encode(SAMPLE).map_err(anyhow::Error::msg)?;
    let started = Instant::now();
    let ids = match t.generate_ids(SAMPLE) {
        Ok(ids) => ids,
        Err(e) => {
            eprintln!("error: generation failed: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let took = started.elapsed();
    let new_tokens = ids.len().saturating_sub(1).max(1);
    row(
        "summarized",
        format!(
            "{} input tokens -> {} new tokens in {:.2} s ({:.0} ms/token, {} beams)",
            input.len(),
            new_tokens,
            took.as_secs_f64(),
            took.as_secs_f64() * 1000.0 / new_tokens as f64,
            t.checkpoint().generation.num_beams
        ),
    );
    let text = t.decode(&ids).map_err(anyhow::Error::msg)?;
    row("summary", &text);
    let verdict = guard::check(
        &text,
        SAMPLE,
        config.transformer.min_overlap,
        &dailydigest::text::Terms::new(),
    );
    row(
        "guard",
        match verdict {
            None => "passes: used as written".to_string(),
            Some(why) => format!("{why}: in auto the extractive summary would replace it"),
        },
    );
    Ok(ExitCode::SUCCESS)
}

/// The grouping half of `info`: which sentence encoder would run.
fn encoder_info(config: &Config) -> ExitCode {
    row("embedder", &config.embedder);
    let by_words = |why: &str| {
        row(
            "grouping",
            format!("by shared words (title and lead) only: {why}"),
        );
        ExitCode::SUCCESS
    };
    if config.embedder == Embedder::None {
        return by_words("embedder = none");
    }
    let dir = match embed::find(&config.models, config.embedder.folder()) {
        Ok(Some(dir)) => dir,
        Ok(None) => {
            return by_words("no sentence encoder (scripts/get-models installs all-MiniLM-L6-v2)")
        }
        Err(e) => return by_words(&e),
    };
    let info = match EncoderInfo::open(&dir) {
        Ok(i) => i,
        Err(e) => return by_words(&e),
    };
    row("encoder", info.dir.display());
    row(
        "vectors",
        format!(
            "{} dimensions, {} pooling{}, inputs cut at {} tokens for grouping (model: {})",
            info.dimensions,
            info.pooling.as_str(),
            if info.normalize { ", normalised" } else { "" },
            dailydigest::edition::GROUPING_TOKENS.min(info.max_seq_length),
            info.max_seq_length
        ),
    );
    row(
        "grouping",
        format!(
            "by meaning ({}) and shared names, places and numbers",
            info.name
        ),
    );
    ExitCode::SUCCESS
}

/// `digest model embed`: the encoder's vectors of texts, one JSON array a
/// line (for checking it against sentence-transformers).
pub(crate) fn embed_texts(
    config: &Config,
    input: Option<&std::path::Path>,
    max_tokens: Option<usize>,
) -> anyhow::Result<ExitCode> {
    // Asked for vectors, even with `embedder = "none"`: the first encoder.
    let dir = match embed::find(&config.models, config.embedder.folder()) {
        Ok(Some(dir)) => dir,
        Ok(None) => {
            eprintln!(
                "error: no sentence encoder in {} (scripts/get-models installs all-MiniLM-L6-v2)",
                config.models.display()
            );
            return Ok(ExitCode::from(1));
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let mut encoder = match Encoder::load(&dir) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot load the sentence encoder: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    if let Some(n) = max_tokens {
        encoder = encoder.with_max_tokens(n);
    }
    let text = match input {
        Some(p) if p != std::path::Path::new("-") => {
            std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
        _ => std::io::read_to_string(std::io::stdin())?,
    };
    // One text a line; a line that is a JSON string is that string.
    let texts: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with('"') {
                serde_json::from_str(l).unwrap_or_else(|_| l.to_string())
            } else {
                l.to_string()
            }
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let started = Instant::now();
    let vectors = encoder.embed(&refs).map_err(anyhow::Error::msg)?;
    let took = started.elapsed().as_secs_f64();
    let mut out = std::io::stdout().lock();
    for v in vectors {
        use std::io::Write;
        writeln!(out, "{}", serde_json::to_string(&v)?)?;
    }
    tracing::info!(
        "{} texts embedded in {took:.2} s ({:.0}/s) on the CPU, {} threads",
        texts.len(),
        texts.len() as f64 / took.max(1e-9),
        rayon::current_num_threads()
    );
    Ok(ExitCode::SUCCESS)
}
