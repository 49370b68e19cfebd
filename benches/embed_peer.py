"""The PyTorch peer of `benches/embed.rs`: the same model, the same token
ids (20 batches of 32 inputs of 64 tokens, one after the other; median of 3), transformers' BertModel + mean
pooling + normalisation as sentence-transformers computes them.

    OMP_NUM_THREADS=2 python3 benches/embed_peer.py models/all-MiniLM-L6-v2 --threads 2

Needs torch and transformers (any recent version)."""
import argparse, json, time

import torch
from transformers import AutoModel

BATCH, TOKENS, BATCHES, REPEATS = 32, 64, 20, 3


def inputs(tokens):
    x = 12345
    rows = []
    for _ in range(BATCH):
        row = [101]
        for _ in range(tokens - 2):
            x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
            row.append(1996 + (x >> 33) % 28000)
        row.append(102)
        rows.append(row)
    return torch.tensor(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=TOKENS, help="tokens an input (grouping embeds 32)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = AutoModel.from_pretrained(a.model).eval()
    ids = inputs(a.tokens)
    mask = torch.ones_like(ids)

    def run():
        with torch.inference_mode():
            h = model(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).float()
            e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(e, dim=-1)

    run()
    times = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        for _ in range(BATCHES):
            run()
        times.append(time.perf_counter() - t)
    times.sort()
    med = times[REPEATS // 2]
    print(json.dumps({"side": "pytorch " + torch.__version__, "threads": a.threads, "batch": BATCH,
                      "tokens": a.tokens, "batches": BATCHES, "median_s": round(med, 3),
                      "sentences_per_s": round(BATCH * BATCHES / med, 1)}))


if __name__ == "__main__":
    main()
