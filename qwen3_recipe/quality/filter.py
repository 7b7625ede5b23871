"""The quality classifier as a datatrove filter, and the `quality.filter` job that runs it over every
curated document of the quality sources (one task per file; the other sources' files pass through
untouched), publishing the job's output folder the mixtures and the tokenizer read.

Each document gets `quality_score` (the prediction) and `quality_classifier` (the version) in its
metadata: the traced step records both in its decision's details, kept or dropped."""

from __future__ import annotations

from pathlib import Path

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter

from qwen3_recipe.compiler.plan import Plan, PlannedJob

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
    """A classifier folder, or its model file: the folder, when it holds a classifier."""
    from qwen3_recipe.quality.classifier import META_FILE, MODEL_FILE
    folder = path if path.is_dir() else path.parent
    return folder if (folder / META_FILE).is_file() and (folder / MODEL_FILE).is_file() else None


def run_quality_filter(p: PlannedJob, plan: Plan) -> None:
    from datatrove.pipeline.writers import JsonlWriter

    from qwen3_recipe.data.corpus_io import listing_reader, publish_files, write_listing
    from qwen3_recipe.data.logs import quiet_datatrove
    from qwen3_recipe.data.stages import Stage
    from qwen3_recipe.data.trace import Traced
    from qwen3_recipe.launch.executors import run_stages
    from qwen3_recipe.provenance.database import build_database
    from qwen3_recipe.quality.corpus import curated_inputs

    from qwen3_recipe.compiler.lowerers import load_lowered

    quiet_datatrove()
    job, folder, root = p.job, plan.run_dir / p.job.dir, plan.run_dir / "jobs"
    cfg = load_lowered(p, plan)
    files = curated_inputs(plan.run_dir, cfg["curated"])
    scope = [(s, f) for s, f in files if s in cfg["sources"]]
    work = folder / "work"
    if scope:
        write_listing([f for _, f in scope], root, folder / "inputs.txt")
        step = QualityClassifierFilter(cfg["classifier"], cfg["threshold"])
        rate = cfg["kept_sample_rate"]
        run_stages(plan, p, [Stage("", [
            listing_reader(root, folder / "inputs.txt"),
            Traced(step, 1, "quality_classifier", job.name, str(folder / "provenance"), drop_reason=DROP_REASON,
                   kept_sample_rate=rate),
            JsonlWriter(str(work), output_filename="${rank}.jsonl.gz"),
        ], len(scope), executor=cfg["executor"])])
    kept = [(s, work / f"{rank:05d}.jsonl.gz") for rank, (s, _) in enumerate(scope)]
    publish_files([sf for sf in files if sf not in scope] + [sf for sf in kept if sf[1].exists()], folder / "output")
    db = build_database(plan.run_dir)
    import duckdb

    from qwen3_recipe.console import console
    with duckdb.connect(str(db), read_only=True) as con:
        n_in, n_kept = con.execute("select sum(documents_in), sum(kept) from step_counts where job = ?",
                                   [job.name]).fetchone()
    console().print(f"{job.name}: kept {n_kept or 0:,} of {n_in or 0:,} documents of "
                    f"{', '.join(cfg['sources'])} with predicted score >= {cfg['threshold']:g} -> {folder / 'output'}")
