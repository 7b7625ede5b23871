"""Our DecontaminationFilter vs datatrove's NGramsDecontFilter on one corpus.

`--corpus generated` (the default): `--docs` documents of ~`--words` words (sentences
with capitals and punctuation) drawn from a pseudo-word vocabulary; `--planted` of them carry a 13-25
word span of a benchmark item (re-cased, re-punctuated). Benchmarks: 3 generated benchmarks, items of
>= n words.

`--corpus real`: the documents of benchmarks/bench_corpora.py's real corpus (Python docs, licenses, copyright
files, Debian changelogs, translated man pages: digits, contractions, accents, other languages). The
benchmark items are spans of 15-60 words of some of its documents (held out of the filtered set);
`--planted` of the others get a copy of an item span, re-cased and re-punctuated word by word, and
natural overlaps (license boilerplate, changelog lines) stay. Every document the two filters decide
differently is explained by replaying datatrove's normalisation with its ingredients swapped for ours
(digits, accents, punctuation set, word tokenizer, short items): the smallest swap that gives our
decision is the cause.

datatrove's index is written by hand (`<task>.index.hashes`, sorted uint64 xxhash64 of its own
normalised n-grams, computed with datatrove's own simplify_text / spaCy word tokenizer / hash function),
because its NGramsDecontIndexer needs lighteval. Both filters run the same `run()` generator over the
same documents (index load timed separately). Prints one JSON line (disagreements also to stderr).

Run: .venv/bin/python benchmarks/decont_vs_datatrove.py [--docs 5000 --words 300 --planted 0.02] [--repeats 3]
     [--record]
     .venv/bin/python benchmarks/decont_vs_datatrove.py --corpus real [--docs N] [--examples 20]
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import re
import sys
import tempfile
import time
import unicodedata
from itertools import combinations
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_corpora import decont_corpus, real_corpus_summary  # noqa: E402
from datatrove.data import Document  # noqa: E402
from datatrove.pipeline.decont import NGramsDecontFilter  # noqa: E402
from datatrove.pipeline.decont.n_grams import NGramsDecontConfig  # noqa: E402
from datatrove.utils.text import NUMBERS_PATTERN, PUNCTUATION_TRANS, WHITESPACE_PATTERN  # noqa: E402
from datatrove.utils.word_tokenizers import load_word_tokenizer  # noqa: E402
from record import Recorder, spread  # noqa: E402

# translate_table: our normalisation's own character table, so the replay blanks exactly what ours does
from qwen3_recipe.data.decont import DecontaminationFilter, NGramIndex, translate_table  # noqa: E402
from qwen3_recipe.data.decont_datatrove import write_datatrove_index  # noqa: E402

# --- real corpus ------------------------------------------------------------------------------------------

def _strip_punct(token: str) -> str:
    while token and unicodedata.category(token[0])[0] == "P":
        token = token[1:]
    while token and unicodedata.category(token[-1])[0] == "P":
        token = token[:-1]
    return token


def _perturbed(rng: random.Random, token: str) -> str:
    """A word as a copy-editor might retype it: re-cased, edge punctuation dropped or added (normalised by
    neither side's rules, so the planting favours neither)."""
    r = rng.random()
    token = token.upper() if r < 0.1 else token.lower() if r < 0.2 else token.capitalize() if r < 0.3 else token
    r = rng.random()
    return _strip_punct(token) if r < 0.15 else token + rng.choice(".,;!?") if r < 0.25 else token


def real_data(args):
    """(items, docs, planted, corpus summary): items are spans of held-out documents."""
    rng = random.Random(args.seed)
    corpus, summary = real_corpus_summary(max_docs=args.docs)
    per_doc = 3  # spans per held-out document; 3 benchmarks x --items spans in all
    held = set(rng.sample(range(len(corpus)), k=min(len(corpus) // 2, -(-3 * args.items // per_doc))))
    items = []  # (benchmark, item_id, text)
    for k in sorted(held):
        tokens = corpus[k]["text"].split()
        for _ in range(per_doc):
            width = min(len(tokens), rng.randint(args.n + 2, 60))
            start = rng.randint(0, len(tokens) - width)
            span, answer = tokens[start:start + width], rng.randint(1, max(1, min(15, width // 3)))
            items.append((f"bench{len(items) % 3}", f"i{len(items)}:{corpus[k]['id']}@{start}",
                          " ".join(span[:-answer]) + "\n" + " ".join(span[-answer:])))
    docs, planted = [], set()
    for k, doc in enumerate(corpus):
        if k in held:
            continue
        text = doc["text"]
        if rng.random() < args.planted:
            words = rng.choice(items)[2].split()
            width = rng.randint(min(args.n + 2, len(words)), len(words))
            start = rng.randint(0, len(words) - width)
            span = " ".join(w for w in (_perturbed(rng, t) for t in words[start:start + width]) if w)
            at = rng.choice([m.start() for m in re.finditer(r"\S+", text)])
            text = text[:at] + span + " " + text[at:]
            planted.add(doc["id"])
        docs.append(Document(text=text, id=doc["id"], metadata={"source": doc["source"]}))
    return items, docs, planted, summary


INGREDIENTS = ("digits", "accents", "punctuation", "tokenizer", "short_items")
CAUSES = {
    "digits": "datatrove maps every number to 0; ours keeps digits (and splits 3.11 or 1,000 at the separator)",
    "accents": "datatrove strips diacritics (NFD, Mn dropped); ours keeps them",
    "punctuation": "ours blanks every Unicode P*/S*/Cc character; datatrove a fixed list (not e.g. ‐ − ‘ • § © °)",
    "tokenizer": "datatrove's spaCy word tokenizer splits words ours keeps whole (cannot, dont, symbols)",
    "short_items": "ours indexes an item of fewer than n words whole; datatrove has no n-gram for it",
}


class Replay:
    """datatrove's normalisation (simplify_text, then spaCy words) with the ingredients in `ours` done our way
    instead; with all of them swapped it is our normalize_words and short-item rule."""

    def __init__(self, n: int, tokenizer) -> None:
        self.n, self.tokenizer, self.table, self._units = n, tokenizer, translate_table(), {}

    def units(self, text: str, ours: frozenset) -> tuple[str, ...]:
        key = (text, ours & {"digits", "accents", "punctuation", "tokenizer"})
        if key not in self._units:
            t = text.lower()
            if "digits" not in ours:
                t = NUMBERS_PATTERN.sub("0", t)
            t = WHITESPACE_PATTERN.sub(" ", t.translate(self.table if "punctuation" in ours else PUNCTUATION_TRANS)
                                       .strip())
            if "accents" not in ours:
                t = "".join(c for c in unicodedata.normalize("NFD", t) if unicodedata.category(c) != "Mn")
            t = t.strip()
            self._units[key] = tuple(t.split() if "tokenizer" in ours else self.tokenizer.word_tokenize(t))
        return self._units[key]

    def matches(self, doc: str, items: list[tuple], ours: frozenset) -> dict[str, list[str]]:
        """item id -> the n-grams (or whole short items) of it that the document contains."""
        d, windows, found = self.units(doc, ours), {}, {}
        for _, item_id, text in items:
            u = self.units(text, ours)
            m = self.n if len(u) >= self.n else len(u) if "short_items" in ours and len(u) >= 3 else 0
            if m and m not in windows:
                windows[m] = {d[i:i + m] for i in range(len(d) - m + 1)}
            hit = windows[m] & {u[i:i + m] for i in range(len(u) - m + 1)} if m else ()
            if hit:
                found[item_id] = sorted(" ".join(g) for g in hit)
        return found


def evidence(items: list[tuple], cause: tuple[str, ...], replay: Replay) -> dict[str, list[str]]:
    """What, in the items involved, each ingredient of the cause acts on (first few of each)."""
    text = " ".join(t for _, _, t in items)
    words = set(text.lower().split())
    found = {
        "digits": [m.group() for m in NUMBERS_PATTERN.finditer(text)],
        "accents": sorted(w for w in words if any(unicodedata.category(c) == "Mn"
                                                  for c in unicodedata.normalize("NFD", w))),
        "punctuation": sorted({c for c in text if (c.translate(PUNCTUATION_TRANS) == " ")
                               != (unicodedata.category(c)[0] in "PS" or unicodedata.category(c) == "Cc")
                               and not c.isspace()}),
        "tokenizer": sorted(w for w in set(replay.units(text, frozenset({"tokenizer"})))
                            if replay.tokenizer.word_tokenize(w) != [w]),
        "short_items": [f"{i}: {len(t.split())} words" for _, i, t in items if len(t.split()) < 15],
    }
    return {c: found[c][:5] or ["(in the document's text)"] for c in cause}


_CONTRACTION_PIECES = {"nt", "s", "m", "re", "ve", "ll", "d", "na"}  # what spaCy splits off dont, im, gonna, ...


def label(ingredient: str, found: list[str], replay: Replay) -> str:
    """The ingredient, with what kind of characters or words it acted on: punctuation(hyphen),
    tokenizer(contraction), ..."""
    if ingredient == "punctuation":
        def kind(c: str) -> str:
            cat = unicodedata.category(c)
            return ("hyphen" if cat == "Pd" else "quote" if cat in ("Pi", "Pf") or c in "'`´ʼ"
                    else "symbol" if cat[0] == "S" else "other")
        kinds = sorted({kind(c) for c in found if len(c) == 1})
    elif ingredient == "tokenizer":
        kinds = sorted({"contraction" if _CONTRACTION_PIECES & set(replay.tokenizer.word_tokenize(w)) else "split word"
                        for w in found if not w.startswith("(")})
    else:
        return ingredient
    return f"{ingredient}({','.join(kinds)})" if kinds else ingredient


def explain(doc: Document, dropped_by: str, items: list[tuple], replay: Replay) -> dict:
    """The smallest sets of ingredients that, done our way, turn datatrove's decision into ours."""
    if dropped_by == "ours":
        hit_ids = {h["item_id"] for h in doc.metadata["contamination"]}
        relevant = [it for it in items if it[1] in hit_ids]
        ngrams = sorted({h["ngram"] for h in doc.metadata["contamination"]})
    else:
        relevant = [it for it in items if it[1] in replay.matches(doc.text, items, frozenset())]
        ngrams = [doc.metadata.get("contaminated_ngram")]
    want = dropped_by == "ours"  # our decision: a match
    consistent = relevant and bool(replay.matches(doc.text, relevant, frozenset())) != want \
        and bool(replay.matches(doc.text, relevant, frozenset(INGREDIENTS))) == want
    causes = []
    for size in range(1, len(INGREDIENTS) + 1) if consistent else ():
        causes = [c for c in combinations(INGREDIENTS, size)
                  if bool(replay.matches(doc.text, relevant, frozenset(c))) == want]
        if causes:
            break
    found = evidence(relevant, tuple(sorted({i for c in causes for i in c})), replay)
    return {"id": doc.id, "dropped_by": dropped_by, "source": doc.metadata.get("source"), "ngrams": ngrams,
            "items": [it[1] for it in relevant][:5], "evidence": found,
            "cause": " | ".join("+".join(label(i, found[i], replay) for i in c) for c in causes) or "unattributed"}


# --- both -------------------------------------------------------------------------------------------------

def run_filter(step, docs) -> tuple[float, set[str], dict[str, Document]]:
    docs = copy.deepcopy(docs)
    started = time.perf_counter()
    kept = {doc.id for doc in step.run(iter(docs))}
    return time.perf_counter() - started, {d.id for d in docs} - kept, {d.id: d for d in docs}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", choices=["generated", "real"], default="generated")
    parser.add_argument("--docs", type=int, default=None, help="generated: 5000; real: the first N (all)")
    parser.add_argument("--words", type=int, default=300, help="generated only")
    parser.add_argument("--planted", type=float, default=0.02)
    parser.add_argument("--items", type=int, default=None, help="items per benchmark (3 benchmarks): 500, real 50")
    parser.add_argument("--vocab", type=int, default=20000, help="generated only")
    parser.add_argument("--n", type=int, default=13)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--examples", type=int, default=20, help="real: disagreements printed in full")
    parser.add_argument("--repeats", type=int, default=3, help="filter runs per side, alternating")
    parser.add_argument("--record", action="store_true", help="write results/3b-<corpus>.json (benchmarks/table.py)")
    args = parser.parse_args()
    recorder = Recorder(f"3b-{args.corpus}", args.record)
    real = args.corpus == "real"
    args.items = args.items or (50 if real else 500)
    args.docs = args.docs or (None if real else 5000)

    word_tokenizer = load_word_tokenizer("en")
    if real:
        items, docs, planted, summary = real_data(args)
    else:
        summary = None
        items, docs, planted = decont_corpus(args.docs, args.words, args.planted, args.items, args.vocab, args.n,
                                             args.seed, word_tokenizer)
    config = NGramsDecontConfig(n_grams=args.n)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        NGramIndex.build(items, n=args.n).save(tmp / "ours.index")
        ours_build = time.perf_counter() - started
        (tmp / "dt").mkdir()
        write_datatrove_index(items, tmp / "dt", config, word_tokenizer)

        ours = DecontaminationFilter(str(tmp / "ours.index"))
        started = time.perf_counter()
        ours.index  # noqa: B018 - lazy load, timed apart from filtering
        ours_load = time.perf_counter() - started

        theirs = NGramsDecontFilter(str(tmp / "dt"), config=config)
        started = time.perf_counter()
        theirs.load_index_hashes()
        theirs.tokenizer.word_tokenize("warm up spacy")
        theirs_load = time.perf_counter() - started
        ours_times, theirs_times = [], []
        for r in range(args.repeats):  # alternating, the order switching, so a busy moment hits both sides
            if r % 2:
                theirs_s, theirs_dropped, theirs_docs = run_filter(theirs, docs)
                ours_s, ours_dropped, ours_docs = run_filter(ours, docs)
            else:
                ours_s, ours_dropped, ours_docs = run_filter(ours, docs)
                theirs_s, theirs_dropped, theirs_docs = run_filter(theirs, docs)
            ours_times.append(ours_s)
            theirs_times.append(theirs_s)

    result = {
        "corpus": args.corpus,
        "docs": len(docs), "avg_words": round(sum(len(d.text.split()) for d in docs) / len(docs), 1),
        "benchmark_items": len(items), "n": args.n, "planted": len(planted),
        "repeats": args.repeats,
        "ours_docs_per_s": spread((len(docs) / t for t in ours_times), 1),
        "datatrove_docs_per_s": spread((len(docs) / t for t in theirs_times), 1),
        "speedup_ours_vs_datatrove": spread((t / o for o, t in zip(ours_times, theirs_times)), 1),
        "ours_dropped": len(ours_dropped), "datatrove_dropped": len(theirs_dropped),
        "dropped_equal": ours_dropped == theirs_dropped, "dropped_equal_planted": ours_dropped == planted,
        "ours_index_build_s": round(ours_build, 3), "ours_index_load_s": round(ours_load, 4),
        "datatrove_index_load_s": round(theirs_load, 4),
        "identical_decision_rate": round(1 - len(ours_dropped ^ theirs_dropped) / len(docs), 5),
    }
    if real:
        replay = Replay(args.n, word_tokenizer)
        differ = sorted([explain(ours_docs[i], "ours", items, replay) for i in ours_dropped - theirs_dropped]
                        + [explain(theirs_docs[i], "datatrove", items, replay) for i in theirs_dropped - ours_dropped],
                        key=lambda d: d["id"])
        causes: dict[str, int] = {}
        for d in differ:
            d["planted"] = d["id"] in planted
            causes[d["cause"]] = causes.get(d["cause"], 0) + 1
        for d in differ[:args.examples]:
            print(f"disagreement: {json.dumps(d, ensure_ascii=False)}", file=sys.stderr)
        result.update({
            "real_corpus": summary, "disagreements": len(differ), "disagreement_causes": causes,
            "cause_meanings": {c: CAUSES[c] for c in INGREDIENTS if any(c in k for k in causes)},
            "planted_missed": {"ours": len(planted - ours_dropped), "datatrove": len(planted - theirs_dropped)},
            "natural_dropped": {"ours": len(ours_dropped - planted), "datatrove": len(theirs_dropped - planted),
                                "both": len((ours_dropped & theirs_dropped) - planted)},
            "disagreement_examples": differ[:args.examples]})
    print(json.dumps(result, ensure_ascii=False))
    recorder.save(result)


if __name__ == "__main__":
    main()
