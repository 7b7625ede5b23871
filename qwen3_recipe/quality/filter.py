"""A scale dimension's classifier (trained by an earlier run's `quality.annotate`) as a datatrove
filter: the `data.filters` type `quality_classifier`. Each document gets `quality_score` (the
prediction) and `quality_classifier` (the version) in its metadata: the traced step records both in
its decision's details, kept or dropped. (This run's own labels: quality/label.py.)"""

from __future__ import annotations

import json
from pathlib import Path

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter

DROP_REASON = "quality_below_threshold"


class QualityClassifierFilter(BaseFilter):
    """Keep documents whose predicted score is at least `threshold`. The classifier loads in the task
    (the step travels to workers as a path, not as weights)."""

    name = "🎓 quality classifier"

    def __init__(self, model_path: str, threshold: float, batch_size: int = 256) -> None:
        super().__init__(batch_size=batch_size)
        self.model_path, self.threshold = model_path, threshold
        self._clf = None

    def classifier(self):
        if self._clf is None:
            from qwen3_recipe.quality.classifier import QualityClassifier
            self._clf = QualityClassifier.load(self.model_path)
        return self._clf

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        clf = self.classifier()
        out: list[bool | tuple[bool, str]] = []
        for doc, score in zip(batch, clf.predict([doc.text for doc in batch])):
            doc.metadata["quality_score"] = round(score, 4)
            doc.metadata["quality_classifier"] = clf.version
            self.stat_update("quality_score", value=score)
            out.append(True if score >= self.threshold else (False, DROP_REASON))
        return out

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return self.filter_batch([doc])[0]

    def __getstate__(self):
        return {**self.__dict__, "_clf": None}


def resolve_classifier(path: Path) -> Path | None:
    """A scale's classifier folder, or its model file: the folder, when it holds one."""
    from qwen3_recipe.quality.classifier import META_FILE, MODEL_FILE
    folder = path if path.is_dir() else path.parent
    if not ((folder / META_FILE).is_file() and (folder / MODEL_FILE).is_file()):
        return None
    return folder if "scale" in json.loads((folder / META_FILE).read_text()) else None
