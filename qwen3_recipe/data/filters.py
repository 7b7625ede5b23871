"""Recipe filter entries -> datatrove filter steps. Blocks that would download something (a
language-id model, a word list) take a local path from the recipe and fail with an error naming
that setting when the file is missing - never a download attempt, never a hang."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

from datatrove.data import Document
from datatrove.pipeline.filters import C4BadWordsFilter, LanguageFilter
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.utils.lid import FT176LID

from qwen3_recipe.errors import Problem, RecipeError


class LengthFilter(BaseFilter):
    """Keep documents within character and word bounds (whitespace words: no spaCy needed)."""

    name = "📏 length"

    def __init__(self, min_chars=None, max_chars=None, min_words=None, max_words=None) -> None:
        super().__init__()
        self.bounds = (min_chars, max_chars, min_words, max_words)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        min_chars, max_chars, min_words, max_words = self.bounds
        chars = len(doc.text)
        if min_chars is not None and chars < min_chars:
            return False, "too_short_chars"
        if max_chars is not None and chars > max_chars:
            return False, "too_long_chars"
        if min_words is not None or max_words is not None:
            words = len(doc.text.split())
            if min_words is not None and words < min_words:
                return False, "too_short_words"
            if max_words is not None and words > max_words:
                return False, "too_long_words"
        return True


def _local_file(path: str, setting: str, base: Path) -> str:
    resolved = (base / path).resolve()
    if not resolved.is_file():
        raise RecipeError([Problem(f"file not found: {resolved} (set a local path; nothing is downloaded)",
                                   setting)])
    return str(resolved)


def _params(cfg: Any, *exclude: str) -> dict[str, Any]:
    return cfg.model_dump(exclude={"type", "name", "sources", *exclude})


def build_filter(cfg: Any, setting: str, base: Path, words: Any = "en") -> BaseFilter:
    """One datatrove filter for a validated recipe filter entry; `setting` is its key path.
    `words`: the word tokenizer (a shared CachingWordTokenizer tokenizes each document once)."""
    from datatrove.pipeline import filters as f

    kind = cfg.type
    if kind == "gopher_quality":
        return f.GopherQualityFilter(**_params(cfg), language=words)
    if kind == "gopher_repetition":
        return f.GopherRepetitionFilter(**_params(cfg), language=words)
    if kind == "c4_quality":
        return f.C4QualityFilter(**_params(cfg), language=words)
    if kind == "fineweb_quality":
        return f.FineWebQualityFilter(**_params(cfg), language=words)
    if kind == "url":
        return f.URLFilter(extra_domains=cfg.extra_domains, extra_urls=cfg.extra_urls)
    if kind == "length":
        return LengthFilter(**_params(cfg))
    if kind == "fasttext_classifier":
        model = _local_file(cfg.model_path, f"{setting}.model_path", base)
        return f.FastTextClassifierFilter(model_url=model, keep_labels=list(cfg.keep_labels.items()))
    if kind == "quality_classifier":
        return _quality_filter(cfg, setting, base)
    if kind == "language":
        return _language_filter(cfg, _local_file(cfg.model_path, f"{setting}.model_path", base))
    if kind == "c4_badwords":
        return _badwords_filter(cfg, _local_file(cfg.wordlist_path, f"{setting}.wordlist_path", base))
    if kind == "custom":
        module, _, attr = cfg.step.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError, ValueError) as exc:
            raise RecipeError([Problem(f"cannot import '{cfg.step}': {exc}", f"{setting}.step")]) from None
        return cls(**cfg.params)
    raise RecipeError([Problem(f"no datatrove lowering for filter type '{kind}'", f"{setting}.type")])


class LocalFT176LID(FT176LID):
    """fastText language id from a local model file (datatrove's would download lid.176.bin)."""

    def __init__(self, languages: list[str] | None, model_path: str) -> None:
        super().__init__(languages)
        self.MODEL_URL = model_path  # copied into the assets cache from the local file


class LocalBadWordsFilter(C4BadWordsFilter):
    """C4's bad-words filter with one local word list for every language (never downloaded)."""

    def __init__(self, wordlist: str, keep_fraction: float) -> None:
        super().__init__(keep_fraction=keep_fraction, fail_on_missing_language=False)
        self.wordlist = wordlist

    def _get_badwords(self, lang: str):
        if lang not in self._badwords_regex:
            words = [w.strip() for w in Path(self.wordlist).read_text().splitlines() if w.strip()]
            self._badwords_regex[lang] = re.compile(r"(?:\W|^)({})(?:\W|$)".format("|".join(map(re.escape, words))))
        return self._badwords_regex[lang]


def _language_filter(cfg: Any, model_path: str) -> BaseFilter:
    step = LanguageFilter(languages=cfg.languages, language_threshold=cfg.threshold)
    step.model = LocalFT176LID(cfg.languages, model_path)
    return step


def _badwords_filter(cfg: Any, wordlist: str) -> BaseFilter:
    return LocalBadWordsFilter(wordlist, cfg.keep_fraction)


def _quality_filter(cfg: Any, setting: str, base: Path) -> BaseFilter:
    from qwen3_recipe.quality.filter import QualityClassifierFilter, resolve_classifier
    folder = resolve_classifier((base / cfg.model_path).resolve())
    if folder is None:
        raise RecipeError([Problem(f"no quality classifier at {(base / cfg.model_path).resolve()} (a "
                                   f"jobs/quality.annotate/classifier folder of a run)", f"{setting}.model_path")])
    return QualityClassifierFilter(str(folder), cfg.threshold)
