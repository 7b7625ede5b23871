"""The label classifiers, one per dimension: scikit-learn's HashingVectorizer (word 1..n-grams,
stateless) and a ridge model on the annotator's labels. A scale's classifier is a ridge regression
predicting a score in [min, max]; a label set's is a one-vs-rest ridge classifier predicting a label
(a label set the annotator gave one label only predicts that label).

Saved without pickle: `model.npz` (the nonzero weights, one row per output, and the intercepts) beside
`classifier.json` (the vectorizer settings, the dimension, what it was trained on, its held-out
metrics and its version). Loading rebuilds the vectorizer from the settings, so a saved classifier
runs unchanged on another scikit-learn. The version is a content hash of what determines the model:
settings, annotator, prompt and the training pairs (document, label, text hash)."""

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


# what a token is (QualityModel.tokens); classifiers saved before the setting existed used `words`
TOKEN_PATTERNS = {"words": r"(?u)\b\w\w+\b", "words_and_symbols": r"(?u)\w+|[^\w\s]"}
ALPHAS = [10.0 ** e for e in range(-4, 3)]  # alpha: auto chooses among these


def _vectorizer(meta: dict[str, Any]):
    from sklearn.feature_extraction.text import HashingVectorizer
    return HashingVectorizer(n_features=meta["n_features"], ngram_range=(1, meta["ngrams"]),
                             alternate_sign=False, norm="l2", token_pattern=TOKEN_PATTERNS[meta.get("tokens", "words")])


class QualityClassifier:
    """weights: (outputs, n_features); one output for a scale (the score) or for two labels (the
    second's side of zero), one per label otherwise (the largest wins)."""

    def __init__(self, weights, intercepts, meta: dict[str, Any]) -> None:
        import numpy as np
        self.weights, self.intercepts, self.meta = np.atleast_2d(weights), np.atleast_1d(intercepts), meta
        self.vectorizer = _vectorizer(meta)

    @property
    def version(self) -> str:
        return self.meta["version"]

    @property
    def is_scale(self) -> bool:
        return "scale" in self.meta

    def _decision(self, texts: list[str]):
        cap = self.meta["max_chars"]
        x = self.vectorizer.transform([t[:cap] for t in texts])
        return (x @ self.weights.T) + self.intercepts

    def predict(self, texts: list[str]) -> list[float]:
        """A scale's predicted scores."""
        import numpy as np
        if not self.is_scale:
            raise TypeError(f"classifier {self.version} predicts labels of {self.meta['dimension']}, not scores")
        lo, hi = self.meta["scale"]
        return np.clip(self._decision(texts)[:, 0], lo, hi).tolist()

    def predict_labels(self, texts: list[str]) -> list[str]:
        """A label set's predicted labels."""
        classes = self.meta["classes"]
        if len(classes) == 1:
            return [classes[0]] * len(texts)
        scores = self._decision(texts)
        if len(classes) == 2:
            return [classes[int(s > 0)] for s in scores[:, 0]]
        return [classes[i] for i in scores.argmax(axis=1)]

    def predict_values(self, texts: list[str]) -> list[float | str]:
        return [round(v, 4) for v in self.predict(texts)] if self.is_scale else self.predict_labels(texts)

    def save(self, folder: Path) -> None:
        """Written next to the target and renamed: a reader never sees half a classifier."""
        import numpy as np
        tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        rows, cols = np.nonzero(self.weights)
        np.savez(tmp / MODEL_FILE, row=rows, index=cols, value=self.weights[rows, cols], intercept=self.intercepts,
                 shape=np.array(self.weights.shape))
        (tmp / META_FILE).write_text(json.dumps(self.meta, indent=2) + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        tmp.replace(folder)

    @classmethod
    def load(cls, path: str | Path) -> QualityClassifier:
        import numpy as np
        folder = Path(path) if Path(path).is_dir() else Path(path).parent
        meta = json.loads((folder / META_FILE).read_text())
        with np.load(folder / MODEL_FILE) as z:
            weights = np.zeros(tuple(int(n) for n in z["shape"]))
            weights[z["row"], z["index"]] = z["value"]
            return cls(weights, z["intercept"].astype(np.float64), meta)


def _fit(fit: list[dict], x, kind: dict, alpha: float | str):
    """(weights, intercepts, classes, alpha) of a ridge model on the fitting rows."""
    import numpy as np
    from sklearn.linear_model import Ridge, RidgeClassifier, RidgeClassifierCV, RidgeCV
    values = [r["value"] for r in fit]
    auto = alpha == "auto" and len(fit) >= 3  # leave-one-out needs a few rows
    alpha = 1.0 if alpha == "auto" and not auto else alpha  # too few: scikit-learn's default
    if "scale" in kind:
        y = np.array(values, dtype=np.float64)
        model = RidgeCV(alphas=ALPHAS).fit(x, y) if auto else Ridge(alpha=alpha).fit(x, y)
        return np.atleast_2d(model.coef_), np.atleast_1d(model.intercept_), None, getattr(model, "alpha_", alpha)
    classes = sorted(set(values), key=kind["labels"].index)
    if len(classes) == 1:  # one label seen: nothing to separate
        return np.zeros((1, x.shape[1])), np.zeros(1), classes, alpha
    model = (RidgeClassifierCV(alphas=ALPHAS) if auto else RidgeClassifier(alpha=alpha)).fit(x, values)
    alpha = getattr(model, "alpha_", alpha)
    coef, intercept, fitted = np.atleast_2d(model.coef_), np.atleast_1d(model.intercept_), list(model.classes_)
    if len(classes) == 2:  # one output: positive for its second class; ours is the label list's second
        sign = 1.0 if fitted == classes else -1.0
        return sign * coef, sign * intercept, classes, alpha
    order = [fitted.index(c) for c in classes]
    return coef[order], intercept[order], classes, alpha


def train(rows: list[dict], settings: dict[str, Any], context: dict[str, Any],
          seed: int) -> tuple[QualityClassifier, set[str]]:
    """rows: {doc_id, text, value} (value None: not used; a score or a label). settings: the recipe's
    `classifier` section; context: dimension, scale [lo, hi] or labels, annotator, prompt_digest,
    max_chars. Returns the classifier and the held-out ids."""
    import numpy as np
    import sklearn
    labelled = [r for r in rows if r["value"] is not None]
    if not labelled:
        raise ValueError(f"no usable {context['dimension']} label in {len(rows)} annotations: nothing to train on "
                         f"(see the annotations table's `output` and `parsed` columns)")
    held = ({r["doc_id"] for r in labelled if held_out(r["doc_id"], seed, settings["holdout"])}
            if len(labelled) >= MIN_HOLDOUT_LABELS else set())
    fit = [r for r in labelled if r["doc_id"] not in held] or labelled
    held -= {r["doc_id"] for r in fit}
    pairs = sorted((r["doc_id"], r["value"], hashlib.sha256(r["text"].encode()).hexdigest()[:16]) for r in fit)
    version = hashlib.sha256(json.dumps([settings, context, pairs], sort_keys=True).encode()).hexdigest()[:12]
    meta: dict[str, Any] = {"version": version, **settings, **context, "seed": seed, "sklearn": sklearn.__version__}
    cap = context["max_chars"]
    weights, intercepts, classes, alpha = _fit(fit, _vectorizer(meta).transform([r["text"][:cap] for r in fit]),
                                               context, settings["alpha"])
    meta["alpha_used"] = None if alpha == "auto" else float(alpha)  # auto and one label: no model fitted
    if classes is not None:
        meta["classes"] = classes
    clf = QualityClassifier(weights, intercepts, meta)
    test = [r for r in labelled if r["doc_id"] in held]
    if test:
        pred = clf.predict_values([r["text"] for r in test])
        gold = [r["value"] for r in test]
        if clf.is_scale:
            meta["holdout_mae"] = round(float(np.abs(np.array(pred) - np.array(gold)).mean()), 4)
            pred = [float(np.rint(p)) for p in pred]
        meta["holdout_accuracy"] = round(sum(p == g for p, g in zip(pred, gold)) / len(test), 4)
    counts: dict[str, int] = {}
    for r in labelled:
        key = f"{r['value']:g}" if clf.is_scale else r["value"]
        counts[key] = counts.get(key, 0) + 1
    meta.update(train_size=len(fit), holdout_size=len(test), unscored=len(rows) - len(labelled),
                label_counts=dict(sorted(counts.items())))
    return clf, held
