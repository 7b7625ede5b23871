"""`decontamination.method: datatrove` - datatrove's own n-gram filter (its normalisation: numbers
to 0, accents stripped, spaCy words), fed from the same `evals/` items as our index. Its index
files are written here because datatrove's NGramsDecontIndexer insists on lighteval."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from datatrove.pipeline.decont import NGramsDecontFilter
from datatrove.pipeline.decont.n_grams import NGramsDecontConfig
from datatrove.utils.hashing import create_hash_func
from datatrove.utils.text import ngrams, simplify_text
from datatrove.utils.word_tokenizers import load_word_tokenizer


def write_datatrove_index(items: Iterable[tuple[str, str, str]], folder: Path, config: NGramsDecontConfig,
                          word_tokenizer=None) -> None:
    """`<benchmark>.index.hashes` files: sorted hashes of datatrove-normalised n-grams."""
    word_tokenizer = word_tokenizer or load_word_tokenizer("en")
    hash_func = create_hash_func(config.hash_config)
    per_task: dict[str, set[int]] = {}
    for bench, _, text in items:
        tokens = word_tokenizer.word_tokenize(simplify_text(text, config.norm_config))
        per_task.setdefault(bench, set()).update(hash_func(" ".join(g)) for g in ngrams(tokens, config.n_grams))
    folder.mkdir(parents=True, exist_ok=True)
    for bench, hashes in per_task.items():
        np.array(sorted(hashes), dtype=config.hash_config.np_descr).tofile(folder / f"{bench}.index.hashes")


class DatatroveDecontFilter(NGramsDecontFilter):
    """datatrove's filter, reporting its evidence in our `contamination` metadata shape (it stops at
    the first hit and knows the benchmark, not the item)."""

    def filter(self, doc):
        result = super().filter(doc)
        if result is not True:
            doc.metadata["contamination"] = [{"benchmark": doc.metadata.get("contaminated_task"), "item_id": None,
                                              "ngram": doc.metadata.get("contaminated_ngram"), "position": -1}]
        return result
