"""Our DecontaminationFilter vs datatrove's NGramsDecontFilter on one generated corpus.

Corpus: `--docs` documents of ~`--words` words (sentences with capitals and punctuation) drawn
from a pseudo-word vocabulary; `--planted` of them carry a 13-25 word span of a benchmark item
(re-cased, re-punctuated). Benchmarks: 3 generated benchmarks, items of >= n words. datatrove's
index is written by hand (`<task>.index.hashes`, sorted uint64 xxhash64 of its own normalised
n-grams, computed with datatrove's own simplify_text / spaCy word tokenizer / hash function),
because its NGramsDecontIndexer needs lighteval. Both filters run the same `run()` generator over
the same documents (index load timed separately). Prints one JSON line.

Run: .venv/bin/python benchmarks/decont_vs_datatrove.py [--docs 5000 --words 300 --planted 0.02]
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import tempfile
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datatrove.data import Document  # noqa: E402
from datatrove.pipeline.decont import NGramsDecontFilter  # noqa: E402
from datatrove.pipeline.decont.n_grams import NGramsDecontConfig  # noqa: E402
from datatrove.utils.word_tokenizers import load_word_tokenizer  # noqa: E402

from qwen3_recipe.data.decont import DecontaminationFilter, NGramIndex, normalize_words  # noqa: E402
from qwen3_recipe.data.decont_datatrove import write_datatrove_index  # noqa: E402


def vocabulary(rng: random.Random, size: int, word_tokenizer) -> list[str]:
    """Pseudo-words that spaCy keeps as one token (no tokenizer exceptions like 'im' -> 'i m')."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < size:
        w = "".join(rng.choice(letters) for _ in range(rng.randint(3, 10)))
        if w not in words and word_tokenizer.word_tokenize(w) == [w]:
            words.add(w)
    return sorted(words)


def prose(rng: random.Random, words: list[str]) -> str:
    out, since = [], 0
    for i, w in enumerate(words):
        if since == 0:
            w = w.capitalize()
        since += 1
        if since > 6 and rng.random() < 0.12:
            w += rng.choice([".", ".", "!", "?"])
            since = 0
        elif rng.random() < 0.05:
            w += ","
        out.append(w)
    return " ".join(out)


def make_data(args, word_tokenizer):
    rng = random.Random(args.seed)
    vocab = vocabulary(rng, args.vocab, word_tokenizer)
    items = []  # (benchmark, item_id, text)
    for b in range(3):
        for i in range(args.items):
            q = [rng.choice(vocab) for _ in range(rng.randint(20, 60))]
            a = [rng.choice(vocab) for _ in range(rng.randint(1, 15))]
            items.append((f"bench{b}", f"b{b}-{i}", prose(rng, q) + "\n" + " ".join(a)))
    docs, planted = [], set()
    for d in range(args.docs):
        words = [rng.choice(vocab) for _ in range(rng.randint(int(args.words * 0.8), int(args.words * 1.2)))]
        if rng.random() < args.planted:
            item_words = normalize_words(rng.choice(items)[2])
            span = rng.randint(args.n, min(25, len(item_words)))
            start = rng.randint(0, len(item_words) - span)
            at = rng.randint(0, len(words))
            words[at:at] = [w.upper() if rng.random() < 0.1 else w for w in item_words[start:start + span]]
            planted.add(str(d))
        docs.append(Document(text=prose(rng, words), id=str(d)))
    return items, docs, planted


def run_filter(step, docs) -> tuple[float, set[str]]:
    docs = copy.deepcopy(docs)
    started = time.perf_counter()
    kept = {doc.id for doc in step.run(iter(docs))}
    return time.perf_counter() - started, {d.id for d in docs} - kept


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--words", type=int, default=300)
    parser.add_argument("--planted", type=float, default=0.02)
    parser.add_argument("--items", type=int, default=500, help="items per benchmark (3 benchmarks)")
    parser.add_argument("--vocab", type=int, default=20000)
    parser.add_argument("--n", type=int, default=13)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    word_tokenizer = load_word_tokenizer("en")
    items, docs, planted = make_data(args, word_tokenizer)
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
        ours_s, ours_dropped = run_filter(ours, docs)

        theirs = NGramsDecontFilter(str(tmp / "dt"), config=config)
        started = time.perf_counter()
        theirs.load_index_hashes()
        theirs.tokenizer.word_tokenize("warm up spacy")
        theirs_load = time.perf_counter() - started
        theirs_s, theirs_dropped = run_filter(theirs, docs)

    print(json.dumps({
        "docs": len(docs), "avg_words": round(sum(len(d.text.split()) for d in docs) / len(docs), 1),
        "benchmark_items": len(items), "n": args.n, "planted": len(planted),
        "ours_docs_per_s": round(len(docs) / ours_s, 1),
        "datatrove_docs_per_s": round(len(docs) / theirs_s, 1),
        "speedup_ours_vs_datatrove": round(theirs_s / ours_s, 1),
        "ours_dropped": len(ours_dropped), "datatrove_dropped": len(theirs_dropped),
        "dropped_equal": ours_dropped == theirs_dropped, "dropped_equal_planted": ours_dropped == planted,
        "ours_index_build_s": round(ours_build, 3), "ours_index_load_s": round(ours_load, 4),
        "datatrove_index_load_s": round(theirs_load, 4),
    }))


if __name__ == "__main__":
    main()
