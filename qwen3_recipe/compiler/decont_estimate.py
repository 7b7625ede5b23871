"""Decontamination settings that cannot work, caught at `plan`. Token n-grams are only as
distinctive as the tokenizer makes them: with a small vocabulary 8 tokens span about two words, and
phrases every text shares ("of the") match a benchmark. So `plan` measures, on a sample of the
recipe's own sources, the share of documents the configured token n-grams would flag beyond those
word 13-grams (the reference definition) flag too - real contamination is flagged by both, false
matches by the token n-grams only - and warns, naming the setting, above WARN_EXCESS."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qwen3_recipe.recipe.validate import LoadedRecipe

SAMPLE_PER_SOURCE = 200
WARN_EXCESS = 0.02  # of the sample: a few documents in a hundred flagged by the token n-grams alone
REFERENCE_WORDS = 13


def sample_texts(loaded: LoadedRecipe, per_source: int = SAMPLE_PER_SOURCE) -> list[str]:
    """The first documents of each local source (hub sources are not read at plan); a file that
    cannot be read is the data job's to report."""
    from itertools import islice

    from qwen3_recipe.catalog.rows import file_rows
    out: list[str] = []
    for source in loaded.recipe.data.sources.values():
        if source.synth:  # not generated yet at plan time
            continue
        entry = loaded.catalogs.datasets[source.dataset]
        local, key = entry.local_path(), entry.spec.text_field or "text"
        if local is None or not local.exists():
            continue
        try:
            out += [t for t in (r.get(key) for r in islice(file_rows(local), per_source)) if isinstance(t, str) and t]
        except (OSError, EOFError, ValueError, AttributeError):
            continue
    return out


def false_match_warnings(loaded: LoadedRecipe) -> list[str]:
    """One located warning when token n-grams would flag clearly more of the sources than word
    13-grams; none for other methods or when nothing local can be sampled."""
    cfg = loaded.recipe.data.decontamination
    tok = loaded.recipe.tokenizer
    if cfg.method != "token_ngram" or tok.type != "pretrained" or not Path(tok.path).exists():
        return []
    from tokenizers import Tokenizer

    from qwen3_recipe.data.decont import NGramIndex, benchmark_items
    from qwen3_recipe.recipe.schema.data import ngram_size
    sample = sample_texts(loaded)
    names = sorted(loaded.catalogs.evals) if cfg.benchmarks == "all" else list(cfg.benchmarks)
    local = [n for n in names if (loaded.catalogs.evals[n].local_path() or Path("/nonexistent")).exists()]
    if not sample or not local:  # plan reads no hub benchmark
        return []
    names = local
    path = Path(tok.path)
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json" if path.is_dir() else path))
    items = [(name, item_id, text) for name in names for item_id, text in
             benchmark_items(name, loaded.catalogs.evals[name].spec, loaded.catalogs.evals[name].local_path())]
    n = ngram_size(cfg.method, cfg.n)
    tokens = NGramIndex.build(items, n=n, method="token", tokenizer=tokenizer)
    words = NGramIndex.build(items, n=REFERENCE_WORDS, method="word")
    by_tokens = {i for i, text in enumerate(sample) if tokens.find(text)}
    by_words = {i for i, text in enumerate(sample) if words.find(text)}
    excess = len(by_tokens - by_words) / len(sample)
    if excess <= WARN_EXCESS:
        return []
    per_word = sum(len(tokenizer.encode(t).ids) for t in sample) / max(1, sum(len(t.split()) for t in sample))
    key = ("data", "decontamination", "n")
    loc = loaded.raw.smap.find(key) or loaded.raw.smap.find(key[:-1])
    return [f"{loc or 'default'}: data.decontamination.n: token {n}-grams would flag {len(by_tokens)} of "
            f"{len(sample)} sampled source documents ({len(by_tokens) / len(sample):.0%}; word "
            f"{REFERENCE_WORDS}-grams flag {len(by_words)}): {n} tokens of {tok.path} span ~{n / per_word:.1f} "
            f"words, so common phrases match the benchmarks. Use n >= {math.ceil(REFERENCE_WORDS * per_word)} "
            "or method word_ngram"]
