"""spaCy's English word and sentence tokenization, served from a cache of whitespace-free chunks.

Why this is exact (spaCy 3 `Tokenizer.__call__`, read from tokenizer.pyx): the text is cut into
runs of `str.isspace` characters and runs of other characters (a single ' ' after a word is not a
token); each run is tokenized alone (specials, affixes, infixes, URL/token match: all functions of
the run's string). Only the last step sees several runs: a PhraseMatcher over the token texts finds
special cases whose bare (rule-free) tokenization spans several tokens and retokenizes them,
longest match first. A match across two runs changes nothing itself (its text holds whitespace; the
only such rules are single whitespace characters) but can shadow an overlapping match inside a run.
It needs the last pre-matcher token of one run and the first of the next to be consecutive tokens
of such a pattern (no pattern holds whitespace: checked). Those pairs come from the tokenizer's
own rules, each chunk's pre-matcher edge tokens from a copy of the tokenizer without matcher, and
neighbouring chunks with such a pair at their boundary go to spaCy together (a "group", cached
too). So a text's words are the concatenation of its `text.split()` chunks' (or groups') words,
each chunk learnt once from spaCy.

Sentences: datatrove's spaCy pipeline is the tokenizer plus the rule-based `sentencizer`, which
reads only each token's text and `is_punct` (a lexical attribute, so a function of the text). It
is replayed here on the same token sequence; a whitespace run counts as one token (it is never
punctuation, so where spaCy cuts it into several tokens, only the first can start a sentence).
"""

from __future__ import annotations

import re
from itertools import pairwise

NON_SPACE = re.compile(r"\S+")  # re's \s is Py_UNICODE_ISSPACE, as str.isspace and str.split
MAX_CHUNKS = 1_000_000  # learnt chunks kept; the caches restart when full


class _Switch:
    """An affix function that matches nothing until switched on."""

    def __init__(self, fn, nothing) -> None:
        self.fn, self.nothing, self.on = fn, nothing, False

    def __call__(self, text: str):
        return self.fn(text) if self.on and self.fn is not None else self.nothing


def helper_tokenizers(tokenizer):
    """(bare, pre): `bare` has no special cases (its tokens of a rule key are the matcher's pattern
    for it); `pre` has them all, but they were loaded while its affix functions matched nothing, so
    its matcher holds none with several tokens: pre(text) is spaCy's sequence before the matcher."""
    from spacy.tokenizer import Tokenizer
    common = {"token_match": tokenizer.token_match, "url_match": tokenizer.url_match}
    bare = Tokenizer(tokenizer.vocab, rules={}, prefix_search=tokenizer.prefix_search,
                     suffix_search=tokenizer.suffix_search, infix_finditer=tokenizer.infix_finditer, **common)
    switches = [_Switch(tokenizer.prefix_search, None), _Switch(tokenizer.suffix_search, None),
                _Switch(tokenizer.infix_finditer, ())]
    pre = Tokenizer(tokenizer.vocab, rules=tokenizer.rules, prefix_search=switches[0],
                    suffix_search=switches[1], infix_finditer=switches[2], **common)
    for switch in switches:
        switch.on = True
    pre._flush_cache()  # anything tokenized while loading used the switched-off affixes
    return bare, pre


def special_pairs(nlp, bare) -> set[tuple[str, str]] | None:
    """Consecutive token pairs of the patterns the special-case matcher can hold (a superset: every
    special case with two or more bare tokens). None: a pattern holds whitespace."""
    pairs = set()
    with nlp.memory_zone():
        for key in nlp.tokenizer.rules:
            pattern = [t.text for t in bare(key)]
            if len(pattern) > 1 and any(not t or any(c.isspace() for c in t) for t in pattern):
                return None
            pairs.update(pairwise(pattern))
    return pairs


class ChunkTokenizer:
    """`words(text)` / `spans(text)` equal datatrove's SpaCyTokenizer word_tokenize / span_tokenize
    on `nlp` (spacy.blank + sentencizer), or are None when the text must go to spaCy whole
    (a chunk spaCy fails on, datatrove's "IS_ALPHA" workaround)."""

    def __init__(self, nlp) -> None:
        self.nlp, self.tokenizer = nlp, nlp.tokenizer
        bare, self.pre = helper_tokenizers(self.tokenizer)
        self.pairs = special_pairs(nlp, bare)
        self.firsts = {a for a, _ in self.pairs or ()}
        self.seconds = {b for _, b in self.pairs or ()}
        self.punct_chars = nlp.get_pipe("sentencizer").punct_chars
        self.usable = self.pairs is not None and not any(c.isspace() for c in "".join(self.punct_chars))
        self.chunks: dict[str, tuple[str, ...]] = {}
        self.lasts: dict[str, str] = {}  # chunk -> its last pre-matcher token, when that starts a pair
        self.heads: dict[str, str] = {}  # chunk -> its first pre-matcher token, when that ends a pair
        self.is_punct: dict[str, bool] = {}
        self.groups: dict[str, tuple[tuple[str, int], ...]] = {}

    def _split(self, tokenizer, missing: list[str], keep: bool) -> list[list[str]]:
        """Tokenize chunks in one call, '\n'-separated: a whitespace token between chunks, which no
        special-case pattern holds, so each chunk is tokenized as alone."""
        with self.nlp.memory_zone():
            tokens = [(t.text, t.is_punct) for t in tokenizer("\n".join(missing))]
        out, i = [], 0
        for chunk in missing:
            got, size = [], 0
            while size < len(chunk) and i < len(tokens):
                text, punct = tokens[i]
                got.append(text)
                if keep:
                    self.is_punct[text] = punct
                size, i = size + len(text), i + 1
            if "".join(got) != chunk or (i < len(tokens) and tokens[i][0] != "\n"):
                raise AssertionError(f"chunk tokenization did not align: {chunk!r}")
            out.append(got)
            i += 1
        return out

    def _learn(self, missing: list[str]) -> None:
        missing = list(dict.fromkeys(missing))
        for chunk, final, pre in zip(missing, self._split(self.tokenizer, missing, True),
                                     self._split(self.pre, missing, False)):
            if pre[-1] in self.firsts:
                self.lasts[chunk] = pre[-1]
            if pre[0] in self.seconds:
                self.heads[chunk] = pre[0]
            self.chunks[chunk] = tuple(final)

    def _group(self, text: str) -> tuple[tuple[str, int], ...]:
        """Tokens (text, offset; whitespace tokens included) of chunks joined by risky boundaries,
        tokenized together by spaCy: no special case matches across the group's edges."""
        group = self.groups.get(text)
        if group is None:
            with self.nlp.memory_zone():
                doc = self.tokenizer(text)
                group = tuple((t.text, t.idx) for t in doc)
                self.is_punct.update((t.text, t.is_punct) for t in doc)
            self.groups[text] = group
        return group

    def _units(self, chunks: list[str]) -> list[tuple[int, int]] | None:
        """Learn unseen chunks, then cut the chunk list into runs i..j (inclusive) that spaCy must see
        together: neighbours whose pre-matcher edge tokens are consecutive in a special-case pattern."""
        cache = self.chunks
        if len(cache) > MAX_CHUNKS or len(self.groups) > MAX_CHUNKS // 10:
            for table in (cache, self.lasts, self.heads, self.is_punct, self.groups):
                table.clear()
        missing = [c for c in chunks if c not in cache]
        if missing:
            try:
                self._learn(missing)
            except Exception:  # noqa: BLE001 - a chunk spaCy's vocab rejects: the text goes to spaCy whole
                return None
        lasts, heads, pairs = self.lasts, self.heads, self.pairs
        units, start = [], 0
        for i in range(len(chunks) - 1):
            last = lasts.get(chunks[i])
            if last is None or (last, heads.get(chunks[i + 1])) not in pairs:
                units.append((start, i))
                start = i + 1
        if chunks:
            units.append((start, len(chunks) - 1))
        return units

    def words(self, text: str) -> list[str] | None:
        if not self.usable or "IS_ALPHA" in text:
            return None
        chunks = text.split()
        units = self._units(chunks)
        if units is None:
            return None
        cache = self.chunks
        if len(units) == len(chunks):
            return [w for c in chunks for w in cache[c]]
        where = [m.span() for m in NON_SPACE.finditer(text)]
        words: list[str] = []
        for a, b in units:
            if a == b:
                words += cache[chunks[a]]
            else:
                words += [t for t, _ in self._group(text[where[a][0]:where[b][1]]) if not t.isspace()]
        return words

    def spans(self, text: str) -> list[tuple[int, int]] | None:
        if not self.usable or "IS_ALPHA" in text or not text:
            return None
        where = [m.span() for m in NON_SPACE.finditer(text)]
        chunks = [text[s:e] for s, e in where]
        units = self._units(chunks)
        if units is None:
            return None
        seq: list[tuple[int, int, str | None]] = []  # (start, end, text; None for whitespace)
        gaps = [(0, where[0][0] if where else len(text))]  # whitespace before each unit, then after all
        gaps += [(where[b][1], where[a2][0]) for (_, b), (a2, _) in pairwise(units)]
        gaps.append((where[-1][1] if where else len(text), len(text)))
        for k, (s, e) in enumerate(gaps):
            if s > 0 and s < e and text[s] == " ":  # the one space after a word is not a token
                s += 1
            if s < e:
                seq.append((s, e, None))
            if k == len(units):
                break
            a, b = units[k]
            s = where[a][0]
            if a == b:
                for t in self.chunks[chunks[a]]:
                    seq.append((s, s + len(t), t))
                    s += len(t)
            else:
                for t, idx in self._group(text[s:where[b][1]]):
                    seq.append((s + idx, s + idx + len(t), None if t.isspace() else t))
        # spacy.pipeline.Sentencizer.predict, then Doc.sents
        starts, seen_period = [0], False
        punct_chars, is_punct = self.punct_chars, self.is_punct
        for i, (_, _, t) in enumerate(seq):
            in_punct_chars = t is not None and t in punct_chars
            if seen_period and not (t is not None and is_punct[t]) and not in_punct_chars:
                starts.append(i)
                seen_period = False
            elif in_punct_chars:
                seen_period = True
        ends = starts[1:] + [len(seq)]
        return [(seq[a][0], seq[b - 1][1]) for a, b in zip(starts, ends)]
