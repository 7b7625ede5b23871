"""Word tokenization shared by every block of a pipeline, spaCy-identical and mostly without spaCy.

Gopher, C4, FineWeb and MinHash each call spaCy's word/sentence tokenizer on a document (C4 on
each line, FineWeb on C4's rewritten text, MinHash on a lowercased, punctuation-free copy); that is
most of a FineWeb-style chain's time. datatrove's blocks accept a `WordTokenizer` instance as
`language`, so the lowering hands all of them this one. For English it answers from a cache of
whitespace-free chunks learnt from spaCy (`fast_words`: why that is exact, and when spaCy still
sees several chunks, or a whole text); the last few texts' answers are also kept. Callers get their
own list copy. Other languages go to datatrove's tokenizer, with the same per-text cache.
"""

from __future__ import annotations

from collections import OrderedDict

from datatrove.utils.word_tokenizers import SpaCyTokenizer, WordTokenizer, load_word_tokenizer

from qwen3_recipe.data.fast_words import ChunkTokenizer

CACHE_TEXTS = 8  # a document passes through the blocks of one pipeline back to back
FAST_LANGUAGES = {"en"}  # spaCy rule-based tokenizers (ja/zh/vi plug in other segmenters)


class CachingWordTokenizer(WordTokenizer):
    def __init__(self, language: str = "en") -> None:
        super().__init__(language)
        self.language = language
        self._inner: WordTokenizer | None = None
        self._chunks: ChunkTokenizer | None | bool = False  # False: not built yet
        self._cache: dict[str, OrderedDict] = {"word": OrderedDict(), "sent": OrderedDict(), "span": OrderedDict()}

    @property
    def inner(self) -> WordTokenizer:
        if self._inner is None:
            self._inner = load_word_tokenizer(self.language)
        return self._inner

    @property
    def chunks(self) -> ChunkTokenizer | None:
        if self._chunks is False:
            inner = self.inner
            import spacy
            from spacy.tokenizer import Tokenizer
            fast = (self.language in FAST_LANGUAGES and spacy.__version__.startswith("3.")  # read from 3.8
                    and type(inner) is SpaCyTokenizer and type(inner.tokenizer.tokenizer) is Tokenizer
                    and inner.tokenizer.pipe_names == ["sentencizer"])
            self._chunks = ChunkTokenizer(inner.tokenizer) if fast else None
        return self._chunks

    def _cached(self, kind: str, text: str, compute):
        cache = self._cache[kind]
        hit = cache.get(text)
        if hit is None:
            hit = compute(text)
            cache[text] = hit
            if len(cache) > CACHE_TEXTS:
                cache.popitem(last=False)
        return list(hit)

    def _words(self, text: str) -> list[str]:
        fast = self.chunks.words(text) if self.chunks is not None else None
        return self.inner.word_tokenize(text) if fast is None else fast

    def _spans(self, text: str) -> list[tuple[int, int]]:
        fast = self.chunks.spans(text) if self.chunks is not None else None
        return self.inner.span_tokenize(text) if fast is None else fast

    def _sents(self, text: str) -> list[str]:  # Span.text is text[start_char:end_char]
        fast = self.chunks.spans(text) if self.chunks is not None else None
        if fast is None:
            return self.inner.sent_tokenize(text)
        return [s for s in (text[a:b].strip() for a, b in fast) if s]

    def word_tokenize(self, text: str) -> list[str]:
        return self._cached("word", text, self._words)

    def sent_tokenize(self, text: str) -> list[str]:
        return self._cached("sent", text, self._sents)

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return self._cached("span", text, self._spans)

    def __getstate__(self):  # executors pickle pipelines: ship no cache, no loaded model
        return {"language": self.language}

    def __setstate__(self, state) -> None:
        self.__init__(state["language"])
