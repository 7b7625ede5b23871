"""Benchmark corpora, in one place.

* `generated_corpus`: the provenance, FineWeb-chain and loader corpus (template English prose, German, spam).
* `decont_corpus`: the decontamination corpus (pseudo-words both normalisations read alike; the code moved
  here from decont_vs_datatrove.py as it was, so its figures reproduce).
* `real_corpus`: real text built offline from what installed Debian packages ship (Python's HTML docs via
  trafilatura, licenses, copyright files, Debian changelogs, translated man pages): digits, contractions,
  accents and non-English text, which the generated corpora avoid on purpose.

CLI: .venv/bin/python benchmarks/bench_corpora.py real [--max-docs N] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "benchmarks")]

from corpora import german, prose  # noqa: E402 (tests/corpora.py: the sentence generators the tests use too)

# --- generated --------------------------------------------------------------------------------------------


def generated_corpus(folder: Path, docs: int, files: int = 1, seed: int = 0) -> None:
    """`files` JSONL files (part-000.jsonl, ...), documents dealt in turn: 70% template English prose, 15%
    German, 15% a spam line repeated (what the Gopher and FineWeb filters drop)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    handles = [open(folder / f"part-{i:03d}.jsonl", "w") for i in range(files)]
    for i in range(docs):
        kind = rng.random()
        text = (prose(rng, 12) if kind < 0.7 else german(rng) if kind < 0.85
                else "\n".join(["Buy now, best prices, free shipping today."] * 20))
        handles[i % files].write(json.dumps({"id": f"d{i}", "text": text}) + "\n")
    for h in handles:
        h.close()


def vocabulary(rng: random.Random, size: int, word_tokenizer) -> list[str]:
    """Pseudo-words that spaCy keeps as one token (no tokenizer exceptions like 'im' -> 'i m')."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < size:
        w = "".join(rng.choice(letters) for _ in range(rng.randint(3, 10)))
        if w not in words and word_tokenizer.word_tokenize(w) == [w]:
            words.add(w)
    return sorted(words)


def pseudo_prose(rng: random.Random, words: list[str]) -> str:
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


def decont_corpus(docs: int, words: int, planted: float, items: int, vocab: int, n: int, seed: int,
                  word_tokenizer):
    """(benchmark items, datatrove Documents, ids of the documents carrying a planted item span)."""
    from datatrove.data import Document

    from qwen3_recipe.data.decont import normalize_words
    rng = random.Random(seed)
    vocab_words = vocabulary(rng, vocab, word_tokenizer)
    bench_items = []  # (benchmark, item_id, text)
    for b in range(3):
        for i in range(items):
            q = [rng.choice(vocab_words) for _ in range(rng.randint(20, 60))]
            a = [rng.choice(vocab_words) for _ in range(rng.randint(1, 15))]
            bench_items.append((f"bench{b}", f"b{b}-{i}", pseudo_prose(rng, q) + "\n" + " ".join(a)))
    out, planted_ids = [], set()
    for d in range(docs):
        ws = [rng.choice(vocab_words) for _ in range(rng.randint(int(words * 0.8), int(words * 1.2)))]
        if rng.random() < planted:
            item_words = normalize_words(rng.choice(bench_items)[2])
            span = rng.randint(n, min(25, len(item_words)))
            start = rng.randint(0, len(item_words) - span)
            at = rng.randint(0, len(ws))
            ws[at:at] = [w.upper() if rng.random() < 0.1 else w for w in item_words[start:start + span]]
            planted_ids.add(str(d))
        out.append(Document(text=pseudo_prose(rng, ws), id=str(d)))
    return bench_items, out, planted_ids

# --- real -------------------------------------------------------------------------------------------------


BUILD = "real/1"  # bump when the extraction below changes: it is part of the cache name
MIN_WORDS, PART_WORDS, MAX_PARTS = 50, 500, 4  # a long file (changelog, library page): <= 4 parts of 500+ words
CACHE_DIR = Path.home() / ".cache" / "qwen3-recipe" / "corpora"


def _html(raw: bytes) -> str:
    import logging

    import trafilatura
    logging.getLogger("trafilatura").setLevel(logging.ERROR)
    return trafilatura.extract(raw.decode("utf-8", "replace")) or ""


_TROFF_ESCAPES = [(r"\\f(\[[^]]*\]|\(..|.)", ""), (r"\\\*(\[[^]]*\]|\(..|.)", ""), (r"\\\((em|en)", "-"),
                  (r"\\\(aq", "'"), (r"\\\([lr]q", '"'), (r"\\\(..", ""), (r"\\-", "-"), (r"\\e", "\\\\"),
                  (r"\\[&|^,/%:]", ""), (r"\\ ", " ")]
_TEXT_MACROS = {"SH", "SS", "B", "I", "BR", "BI", "IB", "IR", "RB", "RI", "SM", "SB"}


def _man(raw: bytes) -> str:
    """Man page (troff) to text, roughly: text lines and the words of font/heading macros, escapes removed."""
    out = []
    for line in gzip.decompress(raw).decode("utf-8", "replace").splitlines():
        if line.startswith((".", "'")):
            macro, _, rest = line[1:].strip().partition(" ")
            if macro not in _TEXT_MACROS:
                continue
            line = rest.replace('"', "")
        for pattern, repl in _TROFF_ESCAPES:
            line = re.sub(pattern, repl, line)
        out.append(line)
    return "\n".join(out)


def _plain(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # a few old copyright files


# (source, glob under the root, reader). Non-English text comes from the translated man pages.
SOURCES = [("python-doc", "usr/share/doc/python3/html/**/*.html", _html),
           ("common-licenses", "usr/share/common-licenses/*", _plain),
           ("copyright", "usr/share/doc/*/copyright", _plain),
           ("changelog", "usr/share/doc/*/changelog.Debian.gz", lambda raw: _plain(gzip.decompress(raw))),
           ("man-i18n", "usr/share/man/*/man*/*.gz", _man)]


def _parts(text: str) -> list[str]:
    """The text, or up to MAX_PARTS runs of whole lines of about PART_WORDS words."""
    if len(text.split()) <= PART_WORDS:
        return [text]
    parts, current, words = [], [], 0
    for line in text.splitlines():
        current.append(line)
        words += len(line.split())
        if words >= PART_WORDS:
            parts.append("\n".join(current))
            current, words = [], 0
    return (parts + ["\n".join(current)] if current else parts)[:MAX_PARTS]


def _interleaved(paths: list[Path]) -> list[Path]:
    """Sorted paths taken in turn from each folder (man1 of each language, library/ and c-api/ of the Python
    docs), so a capped corpus still spans them."""
    rank: dict[Path, int] = {}
    folders: dict[Path, int] = {}
    for p in sorted(paths):
        rank[p] = folders[p.parent] = folders.get(p.parent, -1) + 1
    return sorted(paths, key=lambda p: (rank[p], p.parent.as_posix(), p.name))


def _files(root: Path) -> dict[str, list[Path]]:
    found = {name: _interleaved([p for p in root.glob(pattern) if p.is_file()]) for name, pattern, _ in SOURCES}
    return {name: files for name, files in found.items() if files}


def _documents(root: Path, name: str, files: list[Path], read):
    for path in files:
        rel = path.relative_to(root).as_posix()
        try:
            text = read(path.read_bytes())
        except (OSError, ValueError, EOFError):  # unreadable or corrupt gzip: skipped, like a missing source
            continue
        parts = _parts(text.strip())
        for k, part in enumerate(parts):
            yield {"id": rel if len(parts) == 1 else f"{rel}#{k}", "text": part.strip(), "source": name}


def real_corpus(*args, **kwargs) -> list[dict]:
    """Documents {id, text, source}: `real_corpus_summary`'s, without the summary."""
    return real_corpus_summary(*args, **kwargs)[0]


def real_corpus_summary(cache_dir: str | Path | None = None, max_docs: int | None = None, root: str | Path = "/",
                        min_words: int = MIN_WORDS, quiet: bool = False) -> tuple[list[dict], dict]:
    """Documents {id, text, source} from the sources present under `root`, taken in turn from each source
    (deterministic order, so `max_docs` keeps every source), >= `min_words` words, deduplicated by text. Cached as
    JSONL.gz under a name that digests the source file list (paths and sizes), the build and its limits."""
    root = Path(root)
    files = _files(root)
    listing = sorted((p.relative_to(root).as_posix(), p.stat().st_size) for fs in files.values() for p in fs)

    def cached(limit: int | None) -> Path:
        key = json.dumps([BUILD, limit, min_words, PART_WORDS, MAX_PARTS, listing]).encode()
        return Path(cache_dir or CACHE_DIR) / f"real-{hashlib.sha256(key).hexdigest()[:16]}.jsonl.gz"
    cache, whole = cached(max_docs), cached(None)
    if not cache.is_file() and whole.is_file():
        cache = whole  # a capped build is the whole corpus's first max_docs documents: same order, same dedup
    if cache.is_file():
        with gzip.open(cache, "rt", encoding="utf-8") as fh:
            docs = [json.loads(line) for line in fh][:max_docs]
    else:
        streams = [_documents(root, name, files[name], read) for name, _, read in SOURCES if name in files]
        docs, seen = [], set()
        while streams and (max_docs is None or len(docs) < max_docs):
            for stream in list(streams):  # one document per source in turn
                doc = next(stream, None)
                if doc is None:
                    streams.remove(stream)
                    continue
                digest = hashlib.sha256(doc["text"].encode()).digest()
                if len(doc["text"].split()) >= min_words and digest not in seen:
                    seen.add(digest)
                    docs.append(doc)
                if max_docs is not None and len(docs) >= max_docs:
                    break
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        with gzip.open(tmp, "wt", encoding="utf-8") as fh:
            fh.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in docs)
        tmp.replace(cache)
    summary = describe(docs, missing=[name for name, _, _ in SOURCES if name not in files], cache=cache)
    if not quiet:
        print(f"real corpus: {json.dumps(summary, ensure_ascii=False)}", file=sys.stderr)
    return docs, summary


_APOSTROPHE = re.compile(r"\w['’]\w")


def describe(docs: list[dict], missing: list[str] = (), cache: Path | None = None) -> dict:
    """Counts per source, words, and the share of documents with digits, apostrophes between letters
    (contractions, possessives) and non-ASCII letters (accents, other scripts)."""
    def share(test) -> float:
        return round(sum(map(test, (d["text"] for d in docs))) / max(1, len(docs)), 3)
    sources = {s: sum(d["source"] == s for d in docs) for s in dict.fromkeys(d["source"] for d in docs)}
    return {"docs": len(docs), "words": sum(len(d["text"].split()) for d in docs), "sources": sources,
            "missing_sources": list(missing), "share_digits": share(lambda t: any(c.isdigit() for c in t)),
            "share_apostrophes": share(lambda t: bool(_APOSTROPHE.search(t))),
            "share_non_ascii_letters": share(lambda t: any(c.isalpha() and not c.isascii() for c in t)),
            "cache": str(cache) if cache else None}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus", choices=["real"])
    parser.add_argument("--max-docs", type=int, default=None)
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    print(json.dumps(real_corpus_summary(args.cache_dir, args.max_docs, quiet=True)[1], ensure_ascii=False))


if __name__ == "__main__":
    main()
