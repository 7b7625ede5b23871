"""Recipe filter entries -> datatrove filter steps. Blocks that would download something (a
language-id model, a word list) take a local path from the recipe and fail with an error naming
that setting when the file is missing - never a download attempt, never a hang."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

from datatrove.data import Document
from datatrove.pipeline.filters import C4BadWordsFilter
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.utils.lid import FT176LID

from qwen3_recipe.errors import Loc, Problem, RecipeError


class LengthFilter(BaseFilter):
    """Keep documents within character and word bounds (whitespace words: no spaCy needed)."""

    name = "📏 length"

    def __init__(self, min_chars=None, max_chars=None, min_words=None, max_words=None) -> None:
        super().__init__()
        self.min_chars, self.max_chars, self.min_words, self.max_words = min_chars, max_chars, min_words, max_words

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        min_chars, max_chars, min_words, max_words = self.min_chars, self.max_chars, self.min_words, self.max_words
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


# word-statistics filters: datatrove's, each told the shared word tokenizer at instantiation
WORD_FILTERS = {"gopher_quality": "GopherQualityFilter", "gopher_repetition": "GopherRepetitionFilter",
                "c4_quality": "C4QualityFilter", "fineweb_quality": "FineWebQualityFilter"}
DATATROVE = "datatrove.pipeline.filters"
HERE = "qwen3_recipe.data.filters"


def filter_block(cfg: Any, setting: str, base: Path) -> dict[str, Any]:
    """What runs for a validated recipe filter entry (`setting`: its key path), as plain JSON for
    the compiled artifact: {type, setting, block (the class), args}. Local files are resolved and
    checked here, at compile time; nothing is imported."""
    kind = cfg.type
    out = {"type": kind, "setting": setting}
    if kind in WORD_FILTERS:
        return out | {"block": f"{DATATROVE}.{WORD_FILTERS[kind]}", "args": _params(cfg) | {"language": "en"}}
    if kind == "url":
        return out | {"block": f"{DATATROVE}.URLFilter",
                      "args": {"extra_domains": cfg.extra_domains, "extra_urls": cfg.extra_urls}}
    if kind == "length":
        return out | {"block": f"{HERE}.LengthFilter", "args": _params(cfg)}
    if kind == "fasttext_classifier":
        model = _local_file(cfg.model_path, f"{setting}.model_path", base)
        return out | {"block": f"{DATATROVE}.FastTextClassifierFilter",
                      "args": {"model_url": model, "keep_labels": [list(kv) for kv in cfg.keep_labels.items()]}}
    if kind == "quality_classifier":  # the folder may be made by an earlier job: resolved when it runs
        return out | {"block": "qwen3_recipe.quality.filter.QualityClassifierFilter",
                      "args": {"model_path": str((base / cfg.model_path).resolve()), "threshold": cfg.threshold}}
    if kind == "language" and cfg.backend == "lingua":
        return out | {"block": "qwen3_recipe.data.language_id.LinguaLanguageFilter",
                      "args": {"languages": cfg.languages, "threshold": cfg.threshold}}
    if kind == "language":  # checked where the job runs: a cluster's model file need not be on the submit host
        return out | {"block": f"{DATATROVE}.LanguageFilter",
                      "args": {"languages": cfg.languages, "language_threshold": cfg.threshold,
                               "model_path": str((base / cfg.model_path).resolve())}}
    if kind == "c4_badwords":
        words = _local_file(cfg.wordlist_path, f"{setting}.wordlist_path", base)
        return out | {"block": f"{HERE}.LocalBadWordsFilter",
                      "args": {"wordlist": words, "keep_fraction": cfg.keep_fraction}}
    if kind == "custom":
        module, _, attr = cfg.step.partition(":")
        return out | {"block": f"{module}.{attr}", "args": dict(cfg.params)}
    raise RecipeError([Problem(f"no datatrove lowering for filter type '{kind}'", f"{setting}.type")])


def build_block(block: dict[str, Any], words: Any = "en") -> BaseFilter:
    """Instantiate a compiled filter block. `words`: the word tokenizer for word-statistics filters
    (a shared CachingWordTokenizer tokenizes each document once)."""
    kind, args, setting = block["type"], dict(block["args"]), block["setting"]
    module, _, attr = block["block"].rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        step = f"{module}:{attr}" if kind == "custom" else block["block"]
        raise RecipeError([Problem(f"cannot import '{step}': {exc}", f"{setting}.step")]) from None
    if kind in WORD_FILTERS:
        args["language"] = words
    if kind == "language" and "model_path" in args:
        model_path = args.pop("model_path")
        if not Path(model_path).is_file():
            where = block.get("where")
            raise RecipeError([Problem(f"file not found: {model_path} (set a local path; nothing is downloaded)",
                                       f"{setting}.model_path", Loc(**where) if where else None)])
        step = cls(**args)
        step.model = LocalFT176LID(args["languages"], model_path)
        return step
    if kind == "quality_classifier":
        from qwen3_recipe.quality.filter import resolve_classifier
        folder = resolve_classifier(Path(args["model_path"]))
        if folder is None:
            raise RecipeError([Problem(f"no quality classifier of a scale at {args['model_path']} (a "
                                       f"jobs/quality.annotate/classifiers/<dimension> folder of a run)",
                                       f"{setting}.model_path")])
        return cls(str(folder), args["threshold"])
    if kind == "fasttext_classifier":
        args["keep_labels"] = [tuple(kv) for kv in args["keep_labels"]]
    return cls(**args)


def build_filter(cfg: Any, setting: str, base: Path, words: Any = "en") -> BaseFilter:
    """One datatrove filter for a validated recipe filter entry: its block, instantiated."""
    return build_block(filter_block(cfg, setting, base), words)


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
