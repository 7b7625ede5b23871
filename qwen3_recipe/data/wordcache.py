"""Word tokenization once per document, shared by every block of a pipeline.

Gopher, FineWeb and MinHash each call spaCy's word tokenizer on the same text; that is most of a
FineWeb-style chain's time. datatrove's blocks accept a `WordTokenizer` instance as `language`,
so the lowering hands all of them one caching tokenizer: the first block pays, the rest read the
cache. Outputs are identical (same tokenizer, same text); callers get their own list copy.
"""

from __future__ import annotations

from collections import OrderedDict

from datatrove.utils.word_tokenizers import WordTokenizer, load_word_tokenizer

CACHE_TEXTS = 8  # a document passes through the blocks of one pipeline back to back


class CachingWordTokenizer(WordTokenizer):
    def __init__(self, language: str = "en") -> None:
        super().__init__(language)
        self.language = language
        self._inner: WordTokenizer | None = None
        self._cache: dict[str, OrderedDict] = {"word": OrderedDict(), "sent": OrderedDict(), "span": OrderedDict()}

    @property
    def inner(self) -> WordTokenizer:
        if self._inner is None:
            self._inner = load_word_tokenizer(self.language)
        return self._inner

    def _cached(self, kind: str, text: str, compute):
        cache = self._cache[kind]
        hit = cache.get(text)
        if hit is None:
            hit = compute(text)
            cache[text] = hit
            if len(cache) > CACHE_TEXTS:
                cache.popitem(last=False)
        return list(hit)

    def word_tokenize(self, text: str) -> list[str]:
        return self._cached("word", text, self.inner.word_tokenize)

    def sent_tokenize(self, text: str) -> list[str]:
        return self._cached("sent", text, self.inner.sent_tokenize)

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return self._cached("span", text, self.inner.span_tokenize)

    def __getstate__(self):  # executors pickle pipelines: ship no cache, no loaded model
        return {"language": self.language}

    def __setstate__(self, state) -> None:
        self.__init__(state["language"])
