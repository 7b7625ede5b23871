"""The decontamination index of a run: built once from the `evals/` entries (the one definition
used by every stage) and cached under `<run_dir>/decont/` by the benchmarks' content digests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qwen3_recipe.compiler.fingerprint import digest
from qwen3_recipe.compiler.jobs import entry_digest
from qwen3_recipe.compiler.plan import Plan
from qwen3_recipe.recipe.schema.data import ngram_size


class DecontIndexBuilder:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.catalog = plan.loaded.catalogs.evals

    def index_path(self, benchmarks: list[str], cfg: Any) -> Path:
        from qwen3_recipe.data.decont import NGramIndex, benchmark_items

        n = ngram_size(cfg.method, cfg.n)
        method = "token" if cfg.method == "token_ngram" else "word"
        key = digest({"benchmarks": {b: entry_digest(self.catalog[b]) for b in benchmarks}, "n": n,
                      "method": method, "tokenizer": self._tokenizer_path(cfg) if method == "token" else None})
        path = self.plan.run_dir / "decont" / f"{key}.index"
        if path.exists():
            return path
        items = ((name, item_id, text) for name in benchmarks
                 for item_id, text in benchmark_items(name, self.catalog[name].spec, self.catalog[name].local_path()))
        tokenizer = self.tokenizer(cfg) if method == "token" else None
        index = NGramIndex.build(items, n=n, method=method, tokenizer=tokenizer)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        index.save(tmp)
        tmp.replace(path)
        return path

    def datatrove_index(self, benchmarks: list[str], cfg: Any) -> Path:
        """A folder of datatrove `<benchmark>.index.hashes` files (method: datatrove)."""
        from datatrove.pipeline.decont.n_grams import NGramsDecontConfig

        from qwen3_recipe.data.decont import benchmark_items
        from qwen3_recipe.data.decont_datatrove import write_datatrove_index
        n = ngram_size("datatrove", cfg.n)
        key = digest({"benchmarks": {b: entry_digest(self.catalog[b]) for b in benchmarks}, "n": n, "method": "datatrove"})
        folder = self.plan.run_dir / "decont" / f"{key}.datatrove"
        if not folder.exists():
            items = ((name, item_id, text) for name in benchmarks
                     for item_id, text in benchmark_items(name, self.catalog[name].spec, self.catalog[name].local_path()))
            tmp = folder.with_suffix(".tmp")
            write_datatrove_index(items, tmp, NGramsDecontConfig(n_grams=n))
            tmp.replace(folder)
        return folder

    def _tokenizer_path(self, cfg: Any = None) -> str | None:
        """A compiled job's tokenizer (token n-grams), else the recipe's pretrained one."""
        if getattr(cfg, "tokenizer", None):
            return cfg.tokenizer
        tok = self.plan.loaded.recipe.tokenizer
        return tok.path if tok.type == "pretrained" else None

    def tokenizer(self, cfg: Any = None):
        from tokenizers import Tokenizer
        path = Path(self._tokenizer_path(cfg) or "")
        return Tokenizer.from_file(str(path / "tokenizer.json" if path.is_dir() else path))


def contamination_index(plan: Plan, benchmarks: list[str], settings: dict | None = None):
    """The run's n-gram index over `benchmarks`, for checking any text in Python (SFT data, RL
    prompts, synthetic samples): the same definition as the pretraining filter. (With method
    `datatrove`, which exists for the data pipeline, the word n-gram index of the same n is used.)
    `settings` ({method, n}, from a compiled job) replace the recipe's `data.decontamination`."""
    from types import SimpleNamespace

    from qwen3_recipe.data.decont import NGramIndex
    if not benchmarks:
        return None
    recipe = plan.loaded.recipe.data.decontamination
    settings = settings or {"method": recipe.method, "n": recipe.n}
    # a compiled job's tokenizer (token n-grams) is the one its index is built with and read by
    cfg = SimpleNamespace(method="word_ngram" if settings["method"] == "datatrove" else settings["method"],
                          n=settings["n"], tokenizer=settings.get("tokenizer"))
    builder = DecontIndexBuilder(plan)
    return NGramIndex.load(builder.index_path(benchmarks, cfg), tokenizer=builder.tokenizer(cfg)
                           if cfg.method == "token_ngram" else None)
