"""Benchmark decontamination: ONE definition of "contaminated", used for pretraining documents,
SFT data, RL prompts and synthetic samples alike.

Definition
----------
* Text is normalised GPT-3 / lm-eval-harness style (`normalize_words`): lowercased, every Unicode
  punctuation (P*), symbol (S*) and control (Cc) character replaced by a space, split on
  whitespace. Replacing (not deleting) punctuation makes "well-known" == "well known" and keeps
  "word.Next" two words; "don't" becomes "don t" on both sides, so it still matches itself.
* `method="word"`: units are those words. `method="token"`: units are the token ids of the
  normalised text (" " + " ".join(words)), so a word tokenises the same wherever it appears and
  case/punctuation variants still match; the caller chooses n (8 by default in the recipe).
* Every n-gram of every benchmark item (question + "\\n" + answer by default) is indexed. An item
  shorter than n units is indexed as ONE n-gram of its own length and matches where the whole item
  appears as a contiguous run, so short questions/answers are still caught. Items shorter than
  `min_len` units (default 3) are skipped and counted in `NGramIndex.skipped`: a one- or two-word
  item ("4", "paris") would otherwise flag every document containing that word.
* A document is contaminated when any of its n-grams (or short-item runs) is in the index; every
  (benchmark, item) sharing a matched n-gram is reported (`Hit`), once, at its first position.

Implementation
--------------
Units are mapped to 64-bit values (words: splitmix64 of a polynomial hash of the word's UTF-8
bytes, computed for the whole normalised document with numpy; tokens: splitmix64 of the id). The
hash of a window is a polynomial rolling hash mod 2**64 of those values, computed for all windows
of a document at once with numpy prefix sums, plus a per-length salt; lookups are one
`searchsorted` into a sorted uint64 array (behind a bit prefilter for indexes too large to stay in
cache). No per-word or per-n-gram Python work is done: the
words and the `ngram` string are materialised only for documents with hits. Like datatrove's
filter, a match is a 64-bit hash equality (false-positive odds ~ index size / 2**64
per n-gram); unlike it, all items sharing an n-gram are kept, not one task per hash.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal

import numpy as np
import xxhash
from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter

from qwen3_recipe.catalog.rows import entry_rows

__all__ = ["Hit", "normalize_words", "NGramIndex", "benchmark_items", "DecontaminationFilter"]

FORMAT = "qwen3-recipe-decont/1"
_U64 = np.uint64
_BASE = 0x9E3779B97F4A7C15  # odd, so invertible mod 2**64
_INV_BASE = pow(_BASE, -1, 1 << 64)


@dataclass(frozen=True, slots=True)
class Hit:
    benchmark: str
    """evals/ entry name."""
    item_id: str
    """Benchmark item id."""
    ngram: str
    """The matched normalised n-gram: space-joined words, or token ids joined by spaces."""
    position: int
    """Index of the n-gram's first word/token in the normalised document."""


# --- normalisation -------------------------------------------------------------------------------

_TRANSLATE: list[int] | None = None


def translate_table() -> list[int]:
    """ord -> ord list for str.translate: P*, S*, Cc and every whitespace character -> " " (so
    the only separator left is the ASCII space). A list indexes faster than a dict; code points
    past its end raise IndexError, which str.translate treats as "unchanged"."""
    global _TRANSLATE
    if _TRANSLATE is None:
        table = list(range(0x20000))  # every P/S/Cc/space code point is below U+1FC00 (Unicode 15)
        category = unicodedata.category
        for c in range(0x20000):
            ch = chr(c)
            cat = category(ch)
            if cat[0] in "PS" or cat == "Cc" or ch.isspace():
                table[c] = 32
        _TRANSLATE = table
    return _TRANSLATE


def _normalize(text: str) -> str:
    return text.lower().translate(_TRANSLATE or translate_table())


def normalize_words(text: str) -> list[str]:
    """Lowercase, replace Unicode punctuation/symbols/control characters by spaces, split on
    whitespace (GPT-3 / lm-eval-harness style decontamination normalisation)."""
    return _normalize(text).split()


# --- hashing -------------------------------------------------------------------------------------

_POW = np.ones(1, dtype=_U64)
_INV = np.ones(1, dtype=_U64)


_POW_CACHE_MAX = 1 << 22  # 64 MiB of cached powers at most; longer documents compute their own


def _powers(k: int) -> tuple[np.ndarray, np.ndarray]:
    """BASE**i and BASE**-i mod 2**64 for i < k (at least k entries; cached, grown by doubling)."""
    global _POW, _INV
    if len(_POW) >= k:
        return _POW, _INV
    size = max(k, min(2 * len(_POW), _POW_CACHE_MAX), 1024)
    pw = np.full(size, _BASE, dtype=_U64)
    pw[0] = 1
    inv = np.full(size, _INV_BASE, dtype=_U64)
    inv[0] = 1
    pw, inv = np.cumprod(pw, dtype=_U64), np.cumprod(inv, dtype=_U64)
    if size <= _POW_CACHE_MAX:
        _POW, _INV = pw, inv
    return pw, inv


_C1, _C2, _C3 = _U64(0x9E3779B97F4A7C15), _U64(0xBF58476D1CE4E5B9), _U64(0x94D049BB133111EB)
_FMIX = _U64(0xFF51AFD7ED558CCD)
_S27, _S30, _S31, _S33 = _U64(27), _U64(30), _U64(31), _U64(33)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, vectorised (token id -> pseudo-random 64-bit value)."""
    z = x.astype(_U64) + _C1
    z ^= z >> _S30
    z *= _C2
    z ^= z >> _S27
    z *= _C3
    z ^= z >> _S31
    return z


def _salt(m: int) -> np.uint64:
    return _U64(xxhash.xxh64_intdigest(f"ngram-length:{m}"))


def _word_values(text: str) -> tuple[np.ndarray, str]:
    """(one 64-bit value per normalised word, the normalised text). A word's value is a
    polynomial hash of its UTF-8 bytes (with the space before it) mod 2**64, put through a
    multiply-xorshift mixer; computed for all words at once with numpy (no per-word Python)."""
    norm = _normalize(text)
    b = np.frombuffer(f" {norm} ".encode("utf-8"), dtype=np.uint8)
    spaces = np.flatnonzero(b == 32)  # the only separator left after _normalize
    word = np.diff(spaces) > 1
    starts, ends = spaces[:-1][word], spaces[1:][word]  # [space before the word, space after)
    L = len(b)
    pw, inv = _powers(L)
    prefix = np.empty(L + 1, dtype=_U64)
    prefix[0] = 0
    np.cumsum(b * pw[:L], out=prefix[1:])
    h = prefix[ends] - prefix[starts]
    h *= inv[starts]
    h ^= h >> _S33
    h *= _FMIX
    h ^= h >> _S33
    return h, norm


def _window_hashes(vals: np.ndarray, lengths: Iterable[int]) -> list[tuple[int, np.ndarray]]:
    """For each length m (ascending): hashes of all windows vals[i:i+m], i = 0..L-m, as
    sum_k vals[i+k] * BASE**k + salt(m) mod 2**64 (prefix sums, no per-window work in Python)."""
    L = len(vals)
    pw, inv = _powers(L)
    prefix = np.empty(L + 1, dtype=_U64)
    prefix[0] = 0
    np.cumsum(vals * pw[:L], out=prefix[1:])
    out = []
    for m in lengths:
        if m > L:
            break
        h = prefix[m:] - prefix[: L - m + 1]
        h *= inv[: L - m + 1]
        h += _SALTS[m]
        out.append((m, h))
    return out


_SALTS = [_salt(m) for m in range(256)]


_PREFILTER_MIN_KEYS = 1 << 17  # below this the sorted keys stay in cache and searchsorted is cheaper
_S3, _S7, _ONE8 = _U64(3), _U64(7), np.uint8(1)


def _prefilter(keys: np.ndarray) -> tuple[np.ndarray | None, np.uint64]:
    """A one-hash-function bit filter over the top bits of the (uniform) key hashes: 32-64 bits
    per key, <= 3% false candidates. Derived from the sorted keys (not stored in the file)."""
    if len(keys) < _PREFILTER_MIN_KEYS:
        return None, _U64(0)
    bits = max(16, int(32 * len(keys) - 1).bit_length())
    slot = keys >> _U64(64 - bits)  # sorted, since keys are
    byte = (slot >> _S3).astype(np.int64)
    flag = (np.uint8(1) << (slot & _S7).astype(np.uint8)).astype(np.uint8)
    starts = np.flatnonzero(np.diff(byte, prepend=-1))
    bitmap = np.zeros(1 << (bits - 3), dtype=np.uint8)
    bitmap[byte[starts]] = np.bitwise_or.reduceat(flag, starts)
    return bitmap, _U64(64 - bits)


def _encode(tokenizer: Any, text: str) -> list[int]:
    try:
        enc = tokenizer.encode(text, add_special_tokens=False)
    except TypeError:
        enc = tokenizer.encode(text)
    return list(getattr(enc, "ids", enc))


# --- the index -----------------------------------------------------------------------------------


class NGramIndex:
    """n-grams of benchmark items -> the (benchmark, item) pairs containing them.

    Arrays: `keys` (sorted unique uint64 window hashes), `key_len` (window length of each key),
    `post_ptr`/`post_items` (CSR postings: item numbers of key k are
    post_items[post_ptr[k]:post_ptr[k+1]]), `item_bench` (benchmark number of each item)."""

    def __init__(self, n: int, method: Literal["word", "token"], *, min_len: int, keys: np.ndarray,
                 key_len: np.ndarray, post_ptr: np.ndarray, post_items: np.ndarray, item_bench: np.ndarray,
                 item_ids: list[str], benchmark_names: list[str], tokenizer: Any = None,
                 skipped: int = 0) -> None:
        if method not in ("word", "token"):
            raise ValueError(f"method must be 'word' or 'token', not {method!r}")
        self.n, self.method, self.min_len = n, method, min_len
        self.keys, self.key_len, self.post_ptr, self.post_items = keys, key_len, post_ptr, post_items
        self.item_bench, self.item_ids, self.benchmark_names = item_bench, item_ids, benchmark_names
        self.tokenizer, self.skipped = tokenizer, skipped
        self.lengths = sorted({int(x) for x in np.unique(key_len)}) if len(key_len) else []
        self._bitmap, self._shift = _prefilter(keys)

    # construction --------------------------------------------------------------------------------

    @classmethod
    def build(cls, items: Iterable[tuple[str, str, str]], n: int = 13, method: Literal["word", "token"] = "word",
              tokenizer: Any = None, min_len: int = 3) -> "NGramIndex":
        """Index `(benchmark, item_id, text)` items. Token method: `tokenizer.encode(text)` returns
        token ids, or an Encoding with `.ids` (a `tokenizers.Tokenizer`)."""
        if n < 1 or n > 255:
            raise ValueError(f"n must be in 1..255, not {n}")
        if method == "token" and tokenizer is None:
            raise ValueError("method='token' needs a tokenizer")
        if method not in ("word", "token"):
            raise ValueError(f"method must be 'word' or 'token', not {method!r}")
        min_len = max(1, min(min_len, n))
        benches: dict[str, int] = {}
        items_no: dict[tuple[str, str], int] = {}
        chunks: list[tuple[np.ndarray, int, int]] = []  # (window hashes, item number, window length)
        skipped = 0
        for bench, item_id, text in items:
            benches.setdefault(bench, len(benches))
            if method == "word":
                vals = _word_values(text)[0]
            else:
                vals = _mix64(np.asarray(_token_units(tokenizer, text), dtype=np.int64))
            if len(vals) < min_len:
                skipped += 1
                continue
            no = items_no.setdefault((bench, str(item_id)), len(items_no))
            m = min(n, len(vals))
            ((_, hashes),) = _window_hashes(vals, [m])
            chunks.append((hashes, no, m))
        # CSR postings from (hash, item) pairs, vectorised: sort, drop duplicate pairs, group by hash
        sizes = [len(h) for h, _, _ in chunks]
        all_h = np.concatenate([h for h, _, _ in chunks]) if chunks else np.zeros(0, dtype=_U64)
        all_item = np.repeat(np.array([no for _, no, _ in chunks], dtype=np.int32), sizes)
        all_len = np.repeat(np.array([m for _, _, m in chunks], dtype=np.uint8), sizes)
        order = np.lexsort((all_item, all_h))
        all_h, all_item, all_len = all_h[order], all_item[order], all_len[order]
        fresh = np.ones(len(all_h), dtype=bool)
        fresh[1:] = (all_h[1:] != all_h[:-1]) | (all_item[1:] != all_item[:-1])
        all_h, all_item, all_len = all_h[fresh], all_item[fresh], all_len[fresh]
        keys, first = np.unique(all_h, return_index=True)
        key_len = all_len[first]
        post_ptr = np.append(first, len(all_h)).astype(np.int64)
        post_items = all_item
        item_bench = np.zeros(len(items_no), dtype=np.int32)
        item_ids = [""] * len(items_no)
        for (bench, item_id), no in items_no.items():
            item_bench[no] = benches[bench]
            item_ids[no] = item_id
        return cls(n, method, min_len=min_len, keys=keys, key_len=key_len, post_ptr=post_ptr,
                   post_items=post_items, item_bench=item_bench, item_ids=item_ids,
                   benchmark_names=list(benches), tokenizer=tokenizer, skipped=skipped)

    # queries -------------------------------------------------------------------------------------

    @property
    def benchmarks(self) -> set[str]:
        return set(self.benchmark_names)

    def __len__(self) -> int:
        return len(self.keys)

    def __repr__(self) -> str:
        return (f"NGramIndex(method={self.method!r}, n={self.n}, ngrams={len(self)}, items={len(self.item_ids)}, "
                f"benchmarks={len(self.benchmark_names)}, skipped={self.skipped})")

    def find(self, text: str) -> list[Hit]:
        """Every (benchmark, item) with an n-gram (or whole short item) in `text`, each once at its
        first position in the normalised document; sorted by position."""
        if not self.lengths:
            return []
        if self.method == "word":
            vals, norm = _word_values(text)
            units: Callable[[], list] = norm.split
        else:
            tokens = _token_units(self.tokenizer, text)
            vals = _mix64(np.asarray(tokens, dtype=np.int64))
            units = lambda: tokens  # noqa: E731
        if len(vals) < self.lengths[0]:
            return []
        return self._match(vals, units)

    def _match(self, vals: np.ndarray, get_units: Callable[[], list]) -> list[Hit]:
        windows = _window_hashes(vals, self.lengths)
        if not windows:
            return []
        hashes = windows[0][1] if len(windows) == 1 else np.concatenate([h for _, h in windows])
        keys = self.keys
        if self._bitmap is not None:  # large index: one cache miss per window instead of ~log2(keys)
            slot = hashes >> self._shift
            maybe = np.flatnonzero((self._bitmap[slot >> _S3] >> (slot & _S7).astype(np.uint8)) & _ONE8)
            if not len(maybe):
                return []
            idx = keys.searchsorted(hashes[maybe])
            hit = keys.take(idx, mode="clip") == hashes[maybe]
            if not hit.any():
                return []
            found = np.zeros(len(hashes), dtype=bool)
            found[maybe[hit]] = True
            full_idx = np.zeros(len(hashes), dtype=np.intp)
            full_idx[maybe] = idx
            idx = full_idx
        else:
            idx = keys.searchsorted(hashes)
            found = keys.take(idx, mode="clip") == hashes
            if not found.any():
                return []
        first: dict[int, tuple[int, int]] = {}  # item number -> (position, length)
        offset = 0
        bounds = []
        for m, h in windows:
            bounds.append((offset, offset + len(h), m))
            offset += len(h)
        for j in np.flatnonzero(found).tolist():
            k = int(idx[j])
            for lo, hi, m in bounds:
                if lo <= j < hi:
                    break
            if int(self.key_len[k]) != m:  # cross-length hash collision
                continue
            pos = j - lo
            for item in self.post_items[self.post_ptr[k]:self.post_ptr[k + 1]].tolist():
                if item not in first or pos < first[item][0]:
                    first[item] = (pos, m)
        hits = []
        units = get_units()  # the words/tokens, materialised only for documents with hits
        for item, (pos, m) in first.items():
            gram = units[pos:pos + m]
            ngram = " ".join(gram) if self.method == "word" else " ".join(map(str, gram))
            hits.append(Hit(self.benchmark_names[self.item_bench[item]], self.item_ids[item], ngram, pos))
        hits.sort(key=lambda h: (h.position, h.benchmark, h.item_id))
        return hits

    # persistence ---------------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """One uncompressed .npz file (written to exactly `path`). A token index embeds its
        tokenizer when it is a `tokenizers.Tokenizer` (`to_str()`); otherwise pass it to load()."""
        tok = None
        if self.method == "token" and hasattr(self.tokenizer, "to_str"):
            tok = self.tokenizer.to_str()
        meta = {"format": FORMAT, "n": self.n, "method": self.method, "min_len": self.min_len,
                "benchmarks": self.benchmark_names, "item_ids": self.item_ids, "skipped": self.skipped,
                "tokenizer": tok}
        arrays = {"meta": _blob(json.dumps(meta)), "keys": self.keys, "key_len": self.key_len,
                  "post_ptr": self.post_ptr, "post_items": self.post_items, "item_bench": self.item_bench}
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | Path, tokenizer: Any = None) -> "NGramIndex":
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode())
            if meta.get("format") != FORMAT:
                raise ValueError(f"{path}: not a decontamination index ({meta.get('format')!r} != {FORMAT!r})")
            if meta["method"] == "token" and tokenizer is None:
                if meta.get("tokenizer") is None:
                    raise ValueError(f"{path}: token index saved without its tokenizer; pass tokenizer=")
                from tokenizers import Tokenizer
                tokenizer = Tokenizer.from_str(meta["tokenizer"])
            return cls(meta["n"], meta["method"], min_len=meta["min_len"], keys=z["keys"], key_len=z["key_len"],
                       post_ptr=z["post_ptr"], post_items=z["post_items"], item_bench=z["item_bench"],
                       item_ids=meta["item_ids"], benchmark_names=meta["benchmarks"],
                       tokenizer=tokenizer, skipped=meta.get("skipped", 0))


def _token_units(tokenizer: Any, text: str) -> list[int]:
    words = normalize_words(text)
    return _encode(tokenizer, " " + " ".join(words)) if words else []


def _blob(text: str) -> np.ndarray:
    return np.frombuffer(text.encode(), dtype=np.uint8)


# --- benchmark items -----------------------------------------------------------------------------


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "\n".join(_as_text(v) for v in value)
    return str(value)


def benchmark_items(name: str, spec: Any, local_path: Path | None,
                    fields: Literal["question", "answer", "both"] = "both") -> Iterator[tuple[str, str]]:
    """(item_id, text) of a benchmark (an `EvalSpec`): text = question, answer, or question +
    "\\n" + answer (when the item has one). Item id: the row's "id" field, else its row index."""
    if fields not in ("question", "answer", "both"):
        raise ValueError(f"fields must be 'question', 'answer' or 'both', not {fields!r}")
    if fields == "answer" and not spec.answer_field:
        raise ValueError(f"benchmark {name!r} has no answer_field")
    for i, row in enumerate(entry_rows(name, spec, local_path)):
        if spec.question_field not in row:
            raise ValueError(f"benchmark {name!r}: row {i} has no field {spec.question_field!r} (question_field)")
        item_id = row.get("id")
        item_id = str(i) if item_id is None else str(item_id)
        question = _as_text(row[spec.question_field])
        answer = _as_text(row.get(spec.answer_field)) if spec.answer_field else ""
        if fields == "question":
            text = question
        elif fields == "answer":
            text = answer
        else:
            text = f"{question}\n{answer}" if answer else question
        yield item_id, text


# --- the datatrove step --------------------------------------------------------------------------


class DecontaminationFilter(BaseFilter):
    """Drops (or flags) documents that contain benchmark n-grams. Annotates
    `doc.metadata["contamination"]` with every hit; `on_hits(doc, hits)` is called for each
    contaminated document. The index is loaded lazily, once per process (pickles without it)."""

    name = "decontamination"
    type = "🦠 - DECONT"

    def __init__(self, index_path: str, action: Literal["drop", "flag"] = "drop",
                 on_hits: Callable[[Document, list[Hit]], None] | None = None, exclusion_writer=None) -> None:
        super().__init__(exclusion_writer)
        if action not in ("drop", "flag"):
            raise ValueError(f"action must be 'drop' or 'flag', not {action!r}")
        self.index_path = str(index_path)
        self.action = action
        self.on_hits = on_hits
        self._index: NGramIndex | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_index"] = None
        return state

    @property
    def index(self) -> NGramIndex:
        if self._index is None:
            self._index = NGramIndex.load(self.index_path)
        return self._index

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        hits = self.index.find(doc.text)
        if not hits:
            return True
        if self.on_hits is not None:
            self.on_hits(doc, hits)
        doc.metadata["contamination"] = [
            {"benchmark": h.benchmark, "item_id": h.item_id, "ngram": h.ngram, "position": h.position}
            for h in hits]
        self.stat_update("contaminated")
        self.stat_update("contamination_hits", value=len(hits))
        for bench in sorted({h.benchmark for h in hits}):
            self.stat_update(f"contaminated_{bench}")
        if self.action == "drop":
            return False, "contaminated"
        self.stat_update("flagged")
        return True
