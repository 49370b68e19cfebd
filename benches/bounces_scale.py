"""Bounce imports at scale, through the real binary: a list of N
subscribers, a Maildir of N bounce messages (the fixtures of
tests/fixtures/bounces/, in turn: RFC 3464 failure and delay reports, Exim
texts, ARF complaints), then `digest bounces import`
timed, and timed again when every message is already processed.

    cargo build --release
    python3 benches/bounces_scale.py 1000
    python3 benches/bounces_scale.py 10000

Each bounce carries its subscriber's VERP token (read from the list's
database, as the envelope sender of a sent digest carries it): a report is
bound to what we sent, never to an address alone, so that is what an
import looks up (an index lookup).
"""
import argparse, json, os, resource, sqlite3, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "bounces")
# RFC 3464 failure and delay reports, an Exim text bounce, an ARF complaint.
KINDS = ["postfix-dsn-5.1.1.eml", "exim-text-550.eml", "postfix-dsn-delayed-4.4.1.eml",
         "arf-abuse.eml"]


def binary():
    for build in ["release", "debug"]:
        path = os.path.join(ROOT, "target", build, "digest")
        if os.path.exists(path):
            return path, build
    sys.exit("build first: cargo build --release")


def timed(cmd, cwd):
    """Wall time and peak memory of the largest child so far (MB)."""
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return out, wall, peak


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    args = ap.parse_args()
    digest, build = binary()
    texts = {k: open(os.path.join(FIXTURES, k)).read() for k in KINDS}
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "digest.toml"), "w") as f:
            f.write('bounce_address = "bounces@example.com"\n')
        with open(os.path.join(d, "list.csv"), "w") as f:
            for i in range(args.n):
                f.write(f"reader{i:07}@example.org\n")
        subprocess.run([digest, "subscribers", "import", "list.csv"], cwd=d, check=True,
                       capture_output=True)
        db = sqlite3.connect(os.path.join(d, "dailydigest.db"))
        tokens = dict(db.execute("SELECT email, bounce_token FROM subscribers"))
        db.close()
        for sub in ["new", "cur", "tmp"]:
            os.makedirs(os.path.join(d, "maildir", sub))
        for i in range(args.n):
            kind = KINDS[i % len(KINDS)]
            rcpt = f"reader{i:07}@example.org"
            text = (texts[kind].replace("@@VERP@@", f"bounces+{tokens[rcpt]}@example.com")
                    .replace("@@RCPT@@", rcpt)
                    .replace("@@MESSAGE_ID@@", f"<old.{i}@example.com>")
                    .replace("@@UNIQUE@@", f"b{i}"))
            with open(os.path.join(d, "maildir", "new", f"{1647237600 + i}.M{i}P1.mx"), "w") as f:
                f.write(text)
        out, first, peak = timed([digest, "bounces", "import", "maildir", "--json"], d)
        if out.returncode not in (0, 1) or not out.stdout:
            sys.exit(out.stderr[-2000:])
        report = json.loads(out.stdout)
        out2, again, _ = timed([digest, "bounces", "import", "maildir", "--json"], d)
        report2 = json.loads(out2.stdout)
        print(json.dumps({
            "build": build, "messages": report["messages"], "import_s": round(first, 2),
            "messages_per_s": round(report["messages"] / first),
            "peak_rss_mb": round(peak), "hard": report["hard_bounces"],
            "soft": report["soft_bounces"], "complaints": report["complaints"],
            "left": len(report["unrecognised"]), "again_s": round(again, 2),
            "again_duplicates": report2["duplicates"],
        }))


if __name__ == "__main__":
    main()
