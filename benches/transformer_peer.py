#!/usr/bin/env python3
"""The PyTorch side of `benches/transformer.rs`, and the checkpoint both read.

  transformer_peer.py make DIR              random-weight BART with distilbart-cnn-6-6's
                                            dimensions, in Hugging Face layout (about 920 MB)
  transformer_peer.py bench DIR --threads N one JSON line: load, encoder, greedy, beam 4

Needs torch and transformers (tests/fixtures/transformer/requirements-lock.txt). The
measurements are the same as the Rust side's: the model load from disk, the encoder on a
512-token input, greedy decoding of 60 new tokens (ms/token = (total - encoder) / 60) and the
whole summary with beam search (4 beams, 60 new tokens, no_repeat_ngram_size 3), and four
articles (512, 448, 384, 320 tokens) one by one and as one padded batch. Each takes
the median of --reps runs. min_length = max_length keeps every run at exactly 60 new tokens.
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import time

NEW_TOKENS = 60
INPUT_TOKENS = 512


def make(out):
    import numpy
    import torch
    from transformers import BartConfig, BartForConditionalGeneration, GenerationConfig

    torch.manual_seed(0)
    cfg = BartConfig(
        vocab_size=50264, d_model=1024, encoder_layers=6, decoder_layers=6,
        encoder_attention_heads=16, decoder_attention_heads=16,
        encoder_ffn_dim=4096, decoder_ffn_dim=4096, max_position_embeddings=1024,
        activation_function="gelu", scale_embedding=False,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
        forced_bos_token_id=0, forced_eos_token_id=2, tie_word_embeddings=True,
    )
    model = BartForConditionalGeneration(cfg).eval()
    model.generation_config = GenerationConfig(
        num_beams=4, min_length=NEW_TOKENS + 1, max_length=NEW_TOKENS + 1,
        no_repeat_ngram_size=3, length_penalty=2.0, early_stopping=True,
        bos_token_id=0, eos_token_id=2, pad_token_id=1, decoder_start_token_id=2,
        forced_bos_token_id=0, forced_eos_token_id=2,
    )
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out)
    # The Rust loader wants a tokenizer; the benchmark feeds token ids, so any will do.
    here = os.path.dirname(os.path.abspath(__file__))
    shutil.copy(os.path.join(here, "..", "tests", "fixtures", "transformer", "models", "tiny-bart",
                             "tokenizer.json"), out)
    rng = numpy.random.default_rng(0)
    ids = [0] + rng.integers(4, 50000, INPUT_TOKENS - 2).tolist() + [2]
    with open(os.path.join(out, "input_ids.json"), "w") as f:
        json.dump(ids, f)
    print(f"wrote {out}", file=sys.stderr)


def bench(path, threads, reps):
    import torch
    from transformers import BartForConditionalGeneration

    torch.set_num_threads(threads)
    started = time.perf_counter()
    model = BartForConditionalGeneration.from_pretrained(path).eval()
    load = time.perf_counter() - started
    with open(os.path.join(path, "input_ids.json")) as f:
        ids = torch.tensor([json.load(f)])

    def median(f):
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            out = f()
            times.append(time.perf_counter() - t)
        return statistics.median(times), out

    with torch.inference_mode():
        encoder, _ = median(lambda: model.get_encoder()(input_ids=ids))
        greedy, g = median(lambda: model.generate(ids, num_beams=1, no_repeat_ngram_size=3))
        beam, b = median(lambda: model.generate(ids))
        # Four articles of 512, 448, 384 and 320 tokens: one by one, then as one padded batch.
        flat = ids[0].tolist()
        articles = [flat[: n - 1] + [flat[-1]] for n in (512, 448, 384, 320)]
        one_by_one, alone = median(lambda: [model.generate(torch.tensor([a]))[0].tolist() for a in articles])
        batch = torch.full((4, 512), 1)  # pad
        mask = torch.zeros((4, 512), dtype=torch.long)
        for i, a in enumerate(articles):
            batch[i, : len(a)] = torch.tensor(a)
            mask[i, : len(a)] = 1
        batched, together = median(lambda: model.generate(batch, attention_mask=mask))
    assert g.shape[1] == NEW_TOKENS + 1 and b.shape[1] == NEW_TOKENS + 1
    print(json.dumps({
        "engine": f"pytorch {torch.__version__} / transformers",
        "threads": threads,
        "load_s": round(load, 3),
        "encoder_ms": round(encoder * 1000, 1),
        "greedy_ms_per_token": round((greedy - encoder) * 1000 / NEW_TOKENS, 2),
        "beam4_s": round(beam, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "beam4_4_articles_one_by_one_s": round(one_by_one, 3),
        "beam4_4_articles_batched_s": round(batched, 3),
        "batched_ids_equal_alone": [t for t in together.tolist()] == alone,
        "greedy_ids": g[0].tolist(),
        "beam_ids": b[0].tolist(),
    }))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["make", "bench"])
    ap.add_argument("dir")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    if args.what == "make":
        make(args.dir)
    else:
        bench(args.dir, args.threads, args.reps)


if __name__ == "__main__":
    main()
