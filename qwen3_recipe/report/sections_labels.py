"""The labels section: what the quality classifiers said about every document (distribution per
source and dimension), how much of each source a threshold on a scale keeps, the classifiers'
agreement with reference labels where a dimension names them, and how the annotations went."""

from __future__ import annotations

from qwen3_recipe.provenance.schema import VIEWS
from qwen3_recipe.report.page import Section, Table
from qwen3_recipe.report.queries import Db
from qwen3_recipe.report.rundata import RunInfo


def _pct(share: float | None) -> float | None:
    return None if share is None else round(100 * share, 2)


def labels_section(run: RunInfo, db: Db) -> Section:
    s = Section("labels", "LLM labels (data.quality): an annotator labels a sample of each source, a classifier "
                          "per dimension is trained on it and labels every document; label filters and label "
                          "slices of the mixtures act on those labels.")
    dist = db.rows(f"select * from ({VIEWS['label_distribution']})", needs=("labels",))
    if not dist:
        if run.of_kind("quality_label"):
            s.no_data(run.command("data"))
        else:
            s.empty = "the recipe declares no LLM labels (data.quality)"
        return s
    totals: dict[tuple, int] = {}
    for r in dist:
        totals[(r["source"], r["dimension"])] = totals.get((r["source"], r["dimension"]), 0) + r["documents"]
    s.add(Table(["source", "dimension", "value", "documents", "share %"],
                [[r["source"], r["dimension"], r["value"], r["documents"],
                  _pct(r["documents"] / totals[(r["source"], r["dimension"])])] for r in dist],
                caption="predicted labels per source (a scale's scores by whole point)", numeric={3, 4}))
    # seven thresholds evenly between the lowest and highest predicted score of each source and dimension
    kept = db.rows("""with b as (select source, dimension, min(score) as lo, max(score) as hi
                                 from labels where score is not null group by all),
                           t as (select source, dimension, round(lo + k * (hi - lo) / 8, 2) as threshold
                                 from b, range(1, 8) r(k) where hi > lo)
                      select t.source, t.dimension, t.threshold, count(*) as documents,
                             count(*) filter (where l.score >= t.threshold) as kept
                      from t join labels l using (source, dimension) group by all order by all""",
                   needs=("labels",))
    if kept:
        s.add(Table(["source", "dimension", "threshold (score ≥)", "documents", "kept", "kept %"],
                    [[r["source"], r["dimension"], r["threshold"], r["documents"], r["kept"],
                      _pct(r["kept"] / r["documents"])] for r in kept],
                    caption="what a label filter's `min` would keep", numeric={2, 3, 4, 5}))
    agree = db.rows(f"select * from ({VIEWS['label_agreement']})", needs=("labels",))
    if agree:
        s.add(Table(["source", "dimension", "documents", "agreement %", "most common value alone %"],
                    [[r["source"], r["dimension"], r["documents"], _pct(r["agreement"]), _pct(r["majority_share"])]
                     for r in agree], caption="classifier vs the documents' reference labels", numeric={2, 3, 4}))
    clf = db.rows(f"select * from ({VIEWS['classifiers']})", needs=("annotations",))
    if clf:
        s.add(Table(["dimension", "classifier", "annotator", "annotated", "parsed", "train", "held out",
                     "held-out MAE", "held-out accuracy %"],
                    [[r["dimension"], r["classifier_version"], r["annotator"], r["annotated"], r["scored"],
                      r["train_size"], r["holdout_size"], r["holdout_mae"], _pct(r["holdout_accuracy"])]
                     for r in clf], caption="annotations and classifiers", numeric={3, 4, 5, 6, 7, 8}))
    return s
