"""Parity of `digest model embed` with sentence-transformers on the dev texts
of ../shared/eval/stories (title + text, as grouping embeds them), at the
model's own 256 tokens and at grouping's 32. Prints the worst cosine and
the largest absolute difference.

    python3 benches/embed_parity.py models/all-MiniLM-L6-v2   # needs sentence-transformers
"""
import json, os, subprocess, sys, tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np
from sentence_transformers import SentenceTransformer

EVAL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "eval", "stories")


def text(r):
    title = (r.get("title") or "").strip()
    body = " ".join(l.strip() for l in r["text"].split("\n") if l.strip())
    if not title:
        return body
    return title + (" " if title[-1] in ".!?:" else ". ") + body


def main():
    model_dir = sys.argv[1]
    texts = [text(json.loads(l)) for f in ("allsides_dev.jsonl", "ecb_dev.jsonl")
             for l in open(os.path.join(EVAL, f)) if l.strip()]
    model = SentenceTransformer(model_dir, device="cpu")
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for t in texts:
            f.write(json.dumps(t) + "\n")
    for cap in (256, 32):
        model.max_seq_length = cap
        ref = model.encode(texts, batch_size=32, convert_to_numpy=True)
        out = subprocess.run(["target/release/digest", "-q", "--models", os.path.dirname(model_dir),
                              "model", "embed", "--max-tokens", str(cap), f.name],
                             capture_output=True, text=True, check=True).stdout
        ours = np.array([json.loads(l) for l in out.splitlines()])
        cos = (ref * ours).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(ours, axis=1)
        print(json.dumps({"texts": len(texts), "max_tokens": cap, "min_cosine": float(cos.min()),
                          "max_abs_diff": float(np.abs(ref - ours).max())}))


if __name__ == "__main__":
    main()
