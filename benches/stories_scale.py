"""Editions at scale, through the real binary: writes a JSONL edition of
synthetic articles and prints how `digest preview` handled it (wall time,
peak memory, stories, the largest story). Nothing is downloaded; the
articles are generated from fixed seeds.

    cargo build --release
    python3 benches/stories_scale.py varied 10000      # 10,000 different articles, some reported twice
    python3 benches/stories_scale.py feed 20000        # 20,000 near-identical feed items
    python3 benches/stories_scale.py varied 10000 --embedder none

`varied`: articles about made-up events (a name, a place, a number, a
topic), every tenth event reported by a second outlet in other words.
`feed`: one source's items "Shares in <Company> rose <X>% on <day>", which
share almost every word and differ in the company and the numbers.
`copies`: real articles (the dev CNN and BBC files in ../shared/eval, 927
originals, then the 684 dev reports of ../shared/eval/stories) each filed
again by several of 37 outlets, each copy with sentences dropped, its lead
moved and words changed, until there are n reports (all originals once
make about 17,700; beyond that they are filed again); every original is
one event (an AllSides roundup's reports count as separate events here). The
first 10,000 reports are those of the CNN and BBC files.
`stories_of_unrelated_events` counts stories that hold reports of more than
one made-up event (each should hold one).
"""
import argparse, json, os, random, resource, subprocess, sys, tempfile, time

FIRST = ["Anna", "Marek", "Ines", "Tomas", "Leila", "Kwame", "Sofia", "Rahul", "Mei", "Omar", "Elena", "Jonas"]
LAST = ["Novak", "Garcia", "Okafor", "Lindqvist", "Tanaka", "Haddad", "Moreau", "Kowalski", "Silva", "Brennan"]
PLACES = ["Lisbon", "Gdansk", "Nairobi", "Osaka", "Quito", "Tbilisi", "Hobart", "Valencia", "Tromso", "Cebu",
          "Leipzig", "Accra", "Mendoza", "Izmir", "Dundee", "Perth", "Bergen", "Cusco", "Lyon", "Surabaya"]
TOPICS = [
    ("port strike", "dock workers walked out over pay", "cargo ships waited outside the harbour"),
    ("bridge closure", "engineers found cracks in the main span", "drivers faced long detours"),
    ("flood warning", "the river rose above its banks", "residents moved to higher ground"),
    ("election result", "the opposition won a narrow majority", "turnout was the highest in a decade"),
    ("factory fire", "a blaze broke out in a paint warehouse", "firefighters worked through the night"),
    ("rail deal", "the city signed a contract for new trains", "the first carriages arrive next spring"),
    ("vaccine trial", "researchers reported early results", "the study enrolled hundreds of volunteers"),
    ("tax reform", "the finance ministry proposed new rates", "business groups asked for more time"),
    ("museum opening", "a new museum of science opened its doors", "visitors queued from early morning"),
    ("airline strike", "pilots stopped work over schedules", "hundreds of flights were cancelled"),
]
OUTLETS = ["Daily Ledger", "Morning Post", "Civic Times", "Harbour Herald", "Evening Wire", "Metro Courier"]


def varied(n, rnd):
    rows, i = [], 0
    while len(rows) < n:
        topic, what, then = rnd.choice(TOPICS)
        who = f"{rnd.choice(FIRST)} {rnd.choice(LAST)}"
        place = rnd.choice(PLACES)
        num = rnd.randint(12, 9800)
        title = f"{place} {topic}: {who} speaks after {num} affected"
        text = (f"In {place}, {what} on Monday, officials said, and {who} told reporters that {num} people "
                f"were affected. {then.capitalize()}.\n\n"
                f"The {topic} in {place} followed weeks of warnings, according to local councillors, who "
                f"said a review would report within {rnd.randint(2, 30)} days.\n\n"
                f"{who} said the response had been quick but that more help was needed for families in the "
                f"{rnd.choice(['north', 'south', 'east', 'west'])} of the city.")
        rows.append({"id": f"a{i}", "title": title, "text": text, "source": rnd.choice(OUTLETS),
                     "date": "2022-03-14"})
        if i % 10 == 0 and len(rows) < n:
            rows.append({"id": f"a{i}b", "title": f"{who} on the {topic} that hit {place}",
                         "text": f"{who} spoke on Monday about the {topic} in {place}, where {num} people were "
                                 f"affected after {what}.\n\n{then.capitalize()}, local media reported.",
                         "source": "Second Outlet", "date": "2022-03-14"})
        i += 1
    return rows[:n]


def feed(n, rnd):
    names = ["Acme", "Borealis", "Cobalt", "Dexzen", "Everline", "Fjord", "Granite", "Helios", "Ionix", "Juniper"]
    kinds = ["Energy", "Foods", "Motors", "Mining", "Systems", "Holdings", "Pharma", "Logistics"]
    days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
    rows = []
    for i in range(n):
        company = f"{rnd.choice(names)} {rnd.choice(kinds)} {i}"
        x = rnd.randint(1, 40) / 10
        rows.append({"id": f"f{i}", "title": f"Shares in {company} rose {x}% on {rnd.choice(days)}",
                     "text": f"Shares in {company} rose {x}% on {rnd.choice(days)} in early trading, "
                             f"closing at {rnd.randint(10, 900)}.{rnd.randint(10, 99)}.",
                     "source": "Market Feed", "date": "2022-03-14"})
    return rows


SWAPS = {"said": "told reporters", "says": "told reporters", "people": "residents", "police": "officers",
         "government": "authorities", "company": "firm", "announced": "confirmed", "big": "large",
         "president": "leader", "killed": "left dead", "the city": "the town", "also": "additionally"}


def copies(n, rnd, files):
    originals = []
    for path in files:
        with open(path) as f:
            originals += [json.loads(l) for l in f if l.strip()]
    outlets = [f"Outlet {k}" for k in range(37)]
    split = lambda t: [x for x in __import__("re").split(r"(?<=[.!?])\s+", t.replace("\n", " ")) if x]
    rows, k, again = [], 0, 0
    while len(rows) < n:
        if k == len(originals):
            # Every original filed: file them all again (more reports of
            # the same events, under ids of the same event).
            k, again = 0, again + 1
        o = originals[k]
        sents = split(o["text"])
        for c in range(rnd.randint(4, 18)):
            if len(rows) >= n:
                break
            kept = [x for i, x in enumerate(sents) if i == 0 or rnd.random() > 0.25]
            if len(kept) > 3 and rnd.random() < 0.3:
                kept = kept[1:2] + kept[:1] + kept[2:]
            kept = kept[:rnd.randint(4, 25)]
            text = " ".join(kept)
            for a, b in SWAPS.items():
                if rnd.random() < 0.5:
                    text = text.replace(f" {a} ", f" {b} ")
            copy = f"c{c}" if again == 0 else f"r{again}c{c}"
            row = {"id": f"o{k}-{copy}", "text": text, "source": rnd.choice(outlets), "date": "2022-03-14"}
            if o.get("title") and rnd.random() < 0.7:
                row["title"] = o["title"]
            rows.append(row)
        k += 1
    return rows[:n]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["varied", "feed", "copies"])
    ap.add_argument("n", type=int)
    ap.add_argument("--digest", default=os.path.abspath("target/release/digest"))
    ap.add_argument("--embedder", default="auto")
    ap.add_argument("--models", default="models")
    ap.add_argument("--originals", nargs="*", default=["../shared/eval/cnndm_dev.jsonl", "../shared/eval/bbc_dev.jsonl",
                                                        "../shared/eval/stories/allsides_dev.jsonl",
                                                        "../shared/eval/stories/ecb_dev.jsonl"])
    a = ap.parse_args()
    rnd = random.Random(7)
    rows = copies(a.n, rnd, a.originals) if a.kind == "copies" else (varied if a.kind == "varied" else feed)(a.n, rnd)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "edition.jsonl")
        with open(path, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        cmd = [a.digest, "-q", "--models", os.path.abspath(a.models), "--embedder", a.embedder,
               "--db", os.path.join(tmp, "none.db"), "preview", "--date", "2022-03-14", "--input", path,
               "--format", "json"]
        t = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
        wall = time.perf_counter() - t
        if p.returncode != 0:
            sys.exit(p.stderr[-2000:])
        text = subprocess.run(cmd[:-1] + ["text"], capture_output=True, text=True, cwd=tmp).stdout
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    ed = json.loads(p.stdout)
    sizes = sorted((len(s["article_ids"]) for s in ed["stories"]), reverse=True)
    # A story may hold one event's reports only: `varied` `a7` and `a7b`,
    # `copies` `o7-c0`, `o7-c1`, ...; `feed`: every item is its own event.
    event = {"varied": lambda i: i.rstrip("b"), "copies": lambda i: i.split("-")[0]}.get(a.kind, lambda i: i)
    mixed = [s for s in ed["stories"] if len({event(i) for i in s["article_ids"]}) > 1]
    longest_also = max(line.count(",") + 1 for line in text.splitlines() if "Also reported by" in line) \
        if "Also reported by" in text else 0
    print(json.dumps({"kind": a.kind, "articles": a.n, "embedder": a.embedder, "wall_s": round(wall, 1),
                      "peak_rss_mb": round(peak), "stories": len(ed["stories"]), "largest_story": sizes[0],
                      "stories_over_5": sum(1 for s in sizes if s > 5),
                      "stories_of_unrelated_events": len(mixed),
                      "most_events_in_a_story": max((len({event(i) for i in s["article_ids"]}) for s in ed["stories"]),
                                                    default=0),
                      "longest_also_reported_line_names": longest_also,
                      "email_text_kb": round(len(text.encode()) / 1024)}))


if __name__ == "__main__":
    main()
