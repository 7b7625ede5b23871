"""The quality classifier: scikit-learn's HashingVectorizer (word 1..n-grams, stateless) and a ridge
regression on the annotator's scores, predicting a score in [0, max_score].

Saved without pickle: `model.npz` (the nonzero weights and the intercept) beside `classifier.json`
(the vectorizer settings, what it was trained on, its held-out metrics and its version). Loading
rebuilds the vectorizer from the settings, so a saved classifier runs unchanged on another scikit-learn.
The version is a content hash of what determines the model: settings, annotator, prompt and the
training pairs (document, score, text hash)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zlib
from pathlib import Path
from typing import Any

MODEL_FILE, META_FILE = "model.npz", "classifier.json"
MIN_HOLDOUT_LABELS = 10  # fewer labelled documents: all train, no held-out metrics


def held_out(doc_id: str, seed: int, share: float) -> bool:
    return zlib.crc32(f"{seed}:{doc_id}".encode()) % 10_000 < share * 10_000


def _vectorizer(meta: dict[str, Any]):
    from sklearn.feature_extraction.text import HashingVectorizer
    return HashingVectorizer(n_features=meta["n_features"], ngram_range=(1, meta["ngrams"]),
                             alternate_sign=False, norm="l2")


class QualityClassifier:
    def __init__(self, weights, intercept: float, meta: dict[str, Any]) -> None:
        self.weights, self.intercept, self.meta = weights, float(intercept), meta
        self.vectorizer = _vectorizer(meta)

    @property
    def version(self) -> str:
        return self.meta["version"]

    def predict(self, texts: list[str]) -> list[float]:
        import numpy as np
        cap = self.meta["max_chars"]
        x = self.vectorizer.transform([t[:cap] for t in texts])
        return np.clip(x @ self.weights + self.intercept, 0.0, self.meta["max_score"]).tolist()

    def save(self, folder: Path) -> None:
        """Written next to the target and renamed: a reader never sees half a classifier."""
        import numpy as np
        tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        nz = np.flatnonzero(self.weights)
        np.savez(tmp / MODEL_FILE, index=nz, value=self.weights[nz], intercept=np.array([self.intercept]),
                 n_features=np.array([self.meta["n_features"]]))
        (tmp / META_FILE).write_text(json.dumps(self.meta, indent=2) + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        tmp.replace(folder)

    @classmethod
    def load(cls, path: str | Path) -> QualityClassifier:
        import numpy as np
        folder = Path(path) if Path(path).is_dir() else Path(path).parent
        meta = json.loads((folder / META_FILE).read_text())
        with np.load(folder / MODEL_FILE) as z:
            weights = np.zeros(int(z["n_features"][0]))
            weights[z["index"]] = z["value"]
            return cls(weights, float(z["intercept"][0]), meta)


def train(rows: list[dict], settings: dict[str, Any], context: dict[str, Any],
          seed: int) -> tuple[QualityClassifier, set[str]]:
    """rows: {doc_id, text, score} (score None: not used). settings: recipe `classifier` section;
    context: annotator, prompt_digest, max_score, max_chars. Returns the classifier and the held-out ids."""
    import numpy as np
    import sklearn
    from sklearn.linear_model import Ridge
    labelled = [r for r in rows if r["score"] is not None]
    if not labelled:
        raise ValueError(f"no usable score in {len(rows)} annotations: nothing to train on")
    held = ({r["doc_id"] for r in labelled if held_out(r["doc_id"], seed, settings["holdout"])}
            if len(labelled) >= MIN_HOLDOUT_LABELS else set())
    fit = [r for r in labelled if r["doc_id"] not in held] or labelled
    held -= {r["doc_id"] for r in fit}
    pairs = sorted((r["doc_id"], r["score"], hashlib.sha256(r["text"].encode()).hexdigest()[:16]) for r in fit)
    version = hashlib.sha256(json.dumps([settings, context, pairs], sort_keys=True).encode()).hexdigest()[:12]
    meta: dict[str, Any] = {"version": version, **settings, **context, "seed": seed, "sklearn": sklearn.__version__}
    vec = _vectorizer(meta)
    cap = context["max_chars"]
    model = Ridge(alpha=settings["alpha"]).fit(vec.transform([r["text"][:cap] for r in fit]),
                                               np.array([r["score"] for r in fit]))
    clf = QualityClassifier(np.asarray(model.coef_, dtype=np.float64), float(model.intercept_), meta)
    test = [r for r in labelled if r["doc_id"] in held]
    if test:
        pred = np.array(clf.predict([r["text"] for r in test]))
        gold = np.array([r["score"] for r in test])
        meta["holdout_mae"] = round(float(np.abs(pred - gold).mean()), 4)
        meta["holdout_accuracy"] = round(float((np.rint(pred) == gold).mean()), 4)
    counts: dict[str, int] = {}
    for r in labelled:
        counts[f"{r['score']:g}"] = counts.get(f"{r['score']:g}", 0) + 1
    meta.update(train_size=len(fit), holdout_size=len(test), unscored=len(rows) - len(labelled),
                label_counts=dict(sorted(counts.items())))
    return clf, held
