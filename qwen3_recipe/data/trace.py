"""Provenance for any datatrove step, without forking datatrove.

`Traced` wraps a step. For a `BaseFilter` it runs the filter itself, so it sees each document's
keep/drop result and reason; for any other order-preserving step it taps the input and diffs it
against the output (a document missing from the output was dropped). Either way every document
that reaches the step gets exactly one decision row, and per-step counts are always written,
so a thinned run (kept_sample_rate < 1) still proves documents in = kept + dropped.
"""

from __future__ import annotations

import json
import zlib
from collections import deque

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter, get_filter_result
from datatrove.utils.batching import batched

from qwen3_recipe.data.readers import text_hash
from qwen3_recipe.provenance.recorder import ShardRecorder

DETAIL_KEYS = ("contamination", "minhash_cluster_id", "minhash_cluster_size", "language", "language_score",
               "quality_score", "quality_classifier", "labels")


def keep_row(doc_id: str, rate: float) -> bool:
    """Deterministic thinning of kept-document rows (the same documents on every rerun)."""
    return rate >= 1.0 or zlib.crc32(doc_id.encode()) % 10_000 < rate * 10_000


class Traced(PipelineStep):
    type = "🔍 - TRACED"

    def __init__(self, inner: PipelineStep, step_index: int, step_name: str, job: str, prov_dir: str,
                 drop_reason: str | None = None, kept_sample_rate: float = 1.0,
                 evidence: str | None = None) -> None:
        super().__init__()
        self.inner, self.step_index, self.step_name = inner, step_index, step_name
        self.job, self.prov_dir = job, prov_dir
        self.drop_reason = drop_reason or step_name
        self.kept_sample_rate = kept_sample_rate
        self.evidence = evidence  # "contamination" | "minhash" | "exact" | "labels": extra rows, never thinned
        self.name = f"{inner.name} (traced)"
        self.stats = inner.stats  # the executor reports the inner step's stats

    def _record(self, rec: ShardRecorder, counts: dict, doc, decision: str, reason: str | None = None) -> None:
        counts.setdefault(doc.metadata.get("source"), {"kept": 0, "dropped": 0, "modified": 0})[decision] += 1
        if self.evidence:
            self._evidence(rec, doc, decision)
        if decision == "kept" and not keep_row(doc.id, self.kept_sample_rate):
            return
        details = {k: doc.metadata[k] for k in DETAIL_KEYS if k in doc.metadata}
        rec.add("decisions", step_index=self.step_index, step=self.step_name,
                source=doc.metadata.get("source"), doc_id=doc.id, decision=decision, reason=reason,
                details=json.dumps(details, default=str) if details else None)

    def _evidence(self, rec: ShardRecorder, doc, decision: str) -> None:
        source = doc.metadata.get("source")
        if self.evidence == "contamination":
            for hit in doc.metadata.get("contamination", ()):
                rec.add("contamination", source=source, doc_id=doc.id,
                        action="dropped" if decision == "dropped" else "flagged", **hit)
        elif self.evidence == "minhash" and doc.metadata.get("minhash_cluster_id", -1) != -1:
            rec.add("clusters", method="minhash", source=source, doc_id=doc.id,
                    cluster_id=str(doc.metadata["minhash_cluster_id"]), kept=decision != "dropped")
        elif self.evidence == "labels":
            versions, references = doc.metadata.get("label_classifiers", {}), doc.metadata.get("label_references", {})
            for dimension, value in doc.metadata.get("labels", {}).items():
                numeric = not isinstance(value, str)
                rec.add("labels", source=source, doc_id=doc.id, dimension=dimension,
                        score=value if numeric else None, label=None if numeric else value,
                        classifier_version=versions.get(dimension), reference=references.get(dimension))
        elif self.evidence == "exact" and decision == "dropped":
            rec.add("clusters", method="exact", source=source, doc_id=doc.id,
                    cluster_id=text_hash(doc.text), kept=False)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        rec = ShardRecorder(self.prov_dir, self.job, f"{self.step_index:02d}-{self.step_name}", rank)
        counts: dict[str | None, dict[str, int]] = {}
        if isinstance(self.inner, BaseFilter):
            yield from self._run_filter(data, rec, counts)
        else:
            yield from self._run_diff(data, rec, counts, rank, world_size)
        for source, by_decision in counts.items():
            rec.add("step_counts", step_index=self.step_index, step=self.step_name, source=source,
                    documents_in=sum(by_decision.values()), **by_decision)
        rec.close()

    def _run_filter(self, data, rec, counts):
        inner = self.inner
        for batch in batched(data, inner.batch_size):
            texts = [doc.text for doc in batch]
            with inner.track_time("batch" if inner.batch_size > 1 else None):
                results = inner.filter_batch(batch)
            for doc, text, result in zip(batch, texts, results):
                inner.stat_update("total")
                keep, reason = get_filter_result(result)
                if keep:
                    inner.stat_update("forwarded")
                    inner.update_doc_stats(doc)
                    self._record(rec, counts, doc, "kept" if doc.text is text else "modified")
                    yield doc
                else:
                    inner.stat_update("dropped")
                    if reason:
                        inner.stat_update(f"dropped_{reason}")
                    self._record(rec, counts, doc, "dropped", reason or self.drop_reason)

    def _run_diff(self, data, rec, counts, rank, world_size):
        pending: deque = deque()

        def tap():
            for doc in data:
                pending.append((doc, doc.text))
                yield doc

        for out in self.inner.run(tap(), rank, world_size):
            while pending and pending[0][0].id != out.id:
                self._record(rec, counts, pending.popleft()[0], "dropped", self.drop_reason)
            if pending:
                doc, text = pending.popleft()
                self._record(rec, counts, out, "kept" if out.text is text else "modified")
            yield out
        while pending:
            self._record(rec, counts, pending.popleft()[0], "dropped", self.drop_reason)
