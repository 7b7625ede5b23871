"""Language identification for general RL's "one language" rule, with lingua.

The detector is built once per candidate set, on first use, with its models preloaded: over all 75
of lingua's languages it takes ~8 s and ~1.3 GB; over the languages below (the widely spoken ones
and those multilingual benchmarks ask in) plus a prompt set's own ~2.5 s (6 s on two busy cores)
and ~0.5 GB, then ~0.1 ms per short text and ~1 ms per 2K characters. A text in a language outside
the set is read as its nearest candidate, for the prompt and the answer alike, so the rule still
compares like with like. High-accuracy mode: the low one reads short English sentences as French
or German.
"""

from __future__ import annotations

import re
from functools import lru_cache

LANGUAGES = ("en", "zh", "es", "fr", "de", "ru", "ja", "ko", "pt", "it", "ar", "hi", "bn", "id", "vi", "th",
             "tr", "pl", "nl", "uk", "sv", "cs", "he", "fa", "sw", "te")
"""ISO 639-1 codes the detector always tells apart."""

MIN_RELATIVE_DISTANCE = 0.1
"""lingua's margin between the best and the second-best language: below it (a word or two, a name,
a number, a sentence shared by two languages) the text has no reliable language and detect says None."""

# Not natural language: code, maths, markup and links would pull any answer towards English.
_NOISE = re.compile(r"```.*?(?:```|$)|`[^`\n]*`|\$\$.*?\$\$|\$[^$\n]*\$|\\\[.*?\\\]|\\\(.*?\\\)"
                    r"|\\[a-zA-Z]+\*?|https?://\S+|</?think>", re.DOTALL)


def known(codes) -> tuple[str, ...]:
    """The codes lingua has a model for, lowercased, in order, without repeats ("code" and the like dropped)."""
    from lingua import IsoCode639_1
    out = []
    for c in codes or ():
        c = str(c).lower()
        if c not in out and hasattr(IsoCode639_1, c.upper()):
            out.append(c)
    return tuple(out)


@lru_cache(maxsize=4)
def detector(extra: tuple[str, ...] = ()):
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder
    langs = [Language.from_iso_code_639_1(getattr(IsoCode639_1, c.upper())) for c in sorted(set(LANGUAGES + extra))]
    return (LanguageDetectorBuilder.from_languages(*langs).with_minimum_relative_distance(MIN_RELATIVE_DISTANCE)
            .with_preloaded_language_models().build())


def detector_for(codes=()):
    """The detector telling LANGUAGES and `codes` apart (one per candidate set, cached)."""
    return detector(tuple(sorted(set(known(codes)) - set(LANGUAGES))))


def prose(text: str) -> str:
    return _NOISE.sub(" ", text)


def detect(text: str, extra: tuple[str, ...] = ()) -> str | None:
    """The ISO 639-1 code of the text's language, or None when no language is reliably detected."""
    text = prose(text)
    if not any(c.isalpha() for c in text):
        return None
    lang = detector_for(extra).detect_language_of(text)
    return None if lang is None else lang.iso_code_639_1.name.lower()
