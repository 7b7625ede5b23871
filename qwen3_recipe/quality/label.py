"""The `quality.label` job: every curated document of the labelled sources gets each dimension's
predicted label (the classifiers `quality.annotate` trained) in its metadata (`labels`, and the
classifier versions in `label_classifiers`) and a row per dimension in provenance (`labels`, never
thinned); then the recipe's `label` filters keep or drop it (decisions with their reasons, so the
funnel shows them). One task per file; the other sources' files pass through untouched. Its output
folder is what the mixtures and the tokenizer read."""

from __future__ import annotations

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter

from qwen3_recipe.compiler.plan import Plan, PlannedJob


class Labeller(BaseFilter):
    """Predicts every dimension's label; keeps every document. Classifiers load in the task (the
    step travels to workers as paths, not weights). references: dimension -> the metadata field that
    holds the document's known value, copied beside the label (`label_references`)."""

    name = "🏷 labels"

    def __init__(self, classifiers: dict[str, str], references: dict[str, str] | None = None,
                 batch_size: int = 256) -> None:
        super().__init__(batch_size=batch_size)
        self.paths, self.references = classifiers, references or {}
        self._loaded: dict | None = None

    def classifiers(self) -> dict:
        if self._loaded is None:
            from qwen3_recipe.quality.classifier import QualityClassifier
            self._loaded = {name: QualityClassifier.load(path) for name, path in self.paths.items()}
        return self._loaded

    def filter_batch(self, batch: list[Document]) -> list[bool]:
        texts = [doc.text for doc in batch]
        for name, clf in self.classifiers().items():
            for doc, value in zip(batch, clf.predict_values(texts)):
                doc.metadata.setdefault("labels", {})[name] = value
                doc.metadata.setdefault("label_classifiers", {})[name] = clf.version
        if self.references:
            from qwen3_recipe.quality.rubric import as_reference
            for doc in batch:
                doc.metadata["label_references"] = {name: as_reference(doc.metadata.get(field))
                                                    for name, field in self.references.items()}
        return [True] * len(batch)

    def filter(self, doc: Document) -> bool:
        return self.filter_batch([doc])[0]

    def __getstate__(self):
        return {**self.__dict__, "_loaded": None}


class LabelFilter(BaseFilter):
    """A recipe `label` filter over the labels the Labeller wrote: a scale's min/max (inclusive), a
    label set's values. Documents of other sources pass."""

    name = "🏷 label filter"

    def __init__(self, dimension: str, min: float | None = None, max: float | None = None,
                 values: list[str] | None = None, sources: list[str] | None = None) -> None:
        super().__init__()
        self.dimension, self.min, self.max, self.values, self.sources = dimension, min, max, values, sources

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if self.sources is not None and doc.metadata.get("source") not in self.sources:
            return True
        value = doc.metadata.get("labels", {}).get(self.dimension)
        if value is None:
            return False, f"{self.dimension}_missing"
        if self.values is not None:
            return True if value in self.values else (False, f"{self.dimension}_not_in_values")
        if self.min is not None and value < self.min:
            return False, f"{self.dimension}_below_{self.min:g}"
        if self.max is not None and value > self.max:
            return False, f"{self.dimension}_above_{self.max:g}"
        return True


def run_quality_label(p: PlannedJob, plan: Plan) -> None:
    from datatrove.pipeline.writers import JsonlWriter

    from qwen3_recipe.compiler.lowerers import load_lowered
    from qwen3_recipe.data.corpus_io import listing_reader, publish_files, write_listing
    from qwen3_recipe.data.logs import quiet_datatrove
    from qwen3_recipe.data.stages import Stage
    from qwen3_recipe.data.trace import Traced
    from qwen3_recipe.launch.executors import run_stages
    from qwen3_recipe.provenance.database import build_database
    from qwen3_recipe.quality.corpus import curated_inputs

    quiet_datatrove()
    job, folder, root = p.job, plan.run_dir / p.job.dir, plan.run_dir / "jobs"
    cfg = load_lowered(p, plan)
    files = curated_inputs(plan.run_dir, cfg["curated"])
    scope = [(s, f) for s, f in files if s in cfg["sources"]]
    work, prov, rate = folder / "work", str(folder / "provenance"), cfg["kept_sample_rate"]
    if scope:
        write_listing([f for _, f in scope], root, folder / "inputs.txt")
        labeller = Labeller(cfg["classifiers"], cfg.get("references"))
        steps = [Traced(labeller, 1, "labels", job.name, prov, kept_sample_rate=rate, evidence="labels")]
        for index, f in enumerate(cfg["filters"], 2):
            step = LabelFilter(f["dimension"], f.get("min"), f.get("max"), f.get("values"), f.get("sources"))
            steps.append(Traced(step, index, f["step"], job.name, prov, kept_sample_rate=rate))
        run_stages(plan, p, [Stage("", [listing_reader(root, folder / "inputs.txt"), *steps,
                                        JsonlWriter(str(work), output_filename="${rank}.jsonl.gz")],
                                   len(scope), executor=cfg["executor"])])
    kept = [(s, work / f"{rank:05d}.jsonl.gz") for rank, (s, _) in enumerate(scope)]
    publish_files([sf for sf in files if sf not in scope] + [sf for sf in kept if sf[1].exists()], folder / "output")
    db = build_database(plan.run_dir)
    import duckdb

    from qwen3_recipe.console import console
    from qwen3_recipe.provenance.schema import VIEWS
    with duckdb.connect(str(db), read_only=True) as con:
        agreement = con.execute(f"select * from ({VIEWS['label_agreement']}) where job = ?", [job.name]).fetchall()
        n_in = con.execute("select sum(documents_in) from step_counts where job = ? and step_index = 1",
                           [job.name]).fetchone()[0] or 0
        n_kept = con.execute("select sum(kept + modified) from step_counts where job = ? and step_index = ?",
                             [job.name, 1 + len(cfg["filters"])]).fetchone()[0] or 0
    filters = f"; label filters kept {n_kept:,}" if cfg["filters"] else ""
    console().print(f"{job.name}: labelled {n_in:,} documents of {', '.join(cfg['sources'])} along "
                    f"{', '.join(cfg['classifiers'])}{filters} -> {folder / 'output'}")
    for _, source, dimension, n, agree, majority in agreement:
        field = cfg.get("references", {}).get(dimension, "?")
        console().print(f"  {source} {dimension}: the classifier agrees with `{field}` on "
                        f"{agree:.1%} of {n:,} documents (always the most common value: {majority:.1%})")
