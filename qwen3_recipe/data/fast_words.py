"""spaCy's English word and sentence tokenization, served from a cache of whitespace-free chunks.

Why this is exact (spaCy 3 `Tokenizer.__call__`, read from tokenizer.pyx): the text is cut into
runs of `str.isspace` characters and runs of other characters (a single ' ' after a word is not a
token); each run is tokenized alone (specials, affixes, infixes, URL/token match, all functions of
the run's string). The one step that sees several runs is the special-case PhraseMatcher, which
matches ORTH sequences of the bare (rule-free) tokenization of a special case; a match across two
runs needs the last token of one run and the first of the next to be consecutive tokens of such a
pattern (no pattern holds whitespace: checked). Those pairs are computed from the tokenizer's own
rules, and a text where one occurs at a run boundary goes to spaCy whole. So the words of a text
are the concatenation of the words of its `text.split()` chunks, each learnt once from spaCy.

Sentences: datatrove's spaCy pipeline is the tokenizer plus the rule-based `sentencizer`, which
reads only each token's text and `is_punct` (a lexical attribute, so a function of the text). It
is replayed here on the same token sequence; a whitespace run counts as one token (it is never
punctuation, so where spaCy cuts it into several tokens, only the first can start a sentence).
"""

from __future__ import annotations

import re

SEGMENTS = re.compile(r"\S+|\s+")  # re's \s is Py_UNICODE_ISSPACE, like str.isspace / str.split
MAX_CHUNKS = 1_000_000  # learnt chunks kept; the cache restarts when full


def special_pairs(tokenizer) -> set[tuple[str, str]] | None:
    """Consecutive token pairs of the patterns spaCy's special-case matcher can match (a superset:
    every special case with two or more bare tokens). None: a pattern holds whitespace."""
    from spacy.tokenizer import Tokenizer
    bare = Tokenizer(tokenizer.vocab, rules={}, prefix_search=tokenizer.prefix_search,
                     suffix_search=tokenizer.suffix_search, infix_finditer=tokenizer.infix_finditer,
                     token_match=tokenizer.token_match, url_match=tokenizer.url_match)
    pairs = set()
    for key in tokenizer.rules:
        pattern = [t.text for t in bare(key)]
        if len(pattern) > 1 and any(not t or any(c.isspace() for c in t) for t in pattern):
            return None
        pairs.update(zip(pattern, pattern[1:]))
    return pairs


class ChunkTokenizer:
    """`words(text)` / `spans(text)` equal datatrove's SpaCyTokenizer word_tokenize / span_tokenize
    on `nlp` (spacy.blank + sentencizer), or are None when the text must go to spaCy whole."""

    def __init__(self, nlp) -> None:
        self.nlp, self.tokenizer = nlp, nlp.tokenizer
        self.pairs = special_pairs(self.tokenizer)
        self.firsts = {a for a, _ in self.pairs or ()}
        self.punct_chars = nlp.get_pipe("sentencizer").punct_chars
        self.usable = self.pairs is not None and not any(c.isspace() for c in "".join(self.punct_chars))
        self.chunks: dict[str, tuple[str, ...]] = {}
        self.is_punct: dict[str, bool] = {}

    def _learn(self, missing: list[str]) -> None:
        """Tokenize unseen chunks in one spaCy call, '\n'-separated (a whitespace token between
        chunks: no special-case match can cross it)."""
        if len(self.chunks) + len(missing) > MAX_CHUNKS:
            self.chunks.clear()
        missing = list(dict.fromkeys(missing))
        with self.nlp.memory_zone():
            tokens = [(t.text, t.is_punct) for t in self.tokenizer("\n".join(missing))]
        i = 0
        for chunk in missing:
            got, size = [], 0
            while size < len(chunk) and i < len(tokens):
                text, punct = tokens[i]
                got.append(text)
                self.is_punct[text] = punct
                size, i = size + len(text), i + 1
            if "".join(got) != chunk or (i < len(tokens) and tokens[i][0] != "\n"):
                raise AssertionError(f"chunk tokenization did not align: {chunk!r}")
            self.chunks[chunk] = tuple(got)
            i += 1

    def _tokens(self, chunks: list[str]) -> list[tuple[str, ...]] | None:
        cache = self.chunks
        missing = [c for c in chunks if c not in cache]
        if missing:
            try:
                self._learn(missing)
            except Exception:  # e.g. a chunk spaCy's vocab rejects: the whole text goes to spaCy
                return None
        out = [cache[c] for c in chunks]
        firsts, pairs = self.firsts, self.pairs
        for prev, nxt in zip(out, out[1:]):
            if prev[-1] in firsts and (prev[-1], nxt[0]) in pairs:
                return None  # a special case could match across the whitespace: spaCy decides
        return out

    def words(self, text: str) -> list[str] | None:
        if not self.usable or "IS_ALPHA" in text:
            return None
        per_chunk = self._tokens(text.split())
        if per_chunk is None:
            return None
        return [w for toks in per_chunk for w in toks]

    def spans(self, text: str) -> list[tuple[int, int]] | None:
        if not self.usable or "IS_ALPHA" in text or not text:
            return None
        segments = [(m.start(), m.end()) for m in SEGMENTS.finditer(text)]
        per_chunk = self._tokens([text[s:e] for s, e in segments if not text[s].isspace()])
        if per_chunk is None:
            return None
        seq: list[tuple[int, int, str | None]] = []  # (start, end, text; None for whitespace)
        chunk = iter(per_chunk)
        for s, e in segments:
            if text[s].isspace():
                if s > 0 and text[s] == " ":  # the one space after a word is not a token
                    s += 1
                if s < e:
                    seq.append((s, e, None))
            else:
                for t in next(chunk):
                    seq.append((s, s + len(t), t))
                    s += len(t)
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
