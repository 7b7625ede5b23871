"""The curated documents the quality jobs read: the output files of the data jobs before them (one
source per file), and a deterministic per-source sample of them."""

from __future__ import annotations

import gzip
import hashlib
import heapq
import json
from pathlib import Path

Files = list[tuple[str, Path]]  # (source, file)


def curated_inputs(run_dir: Path, curated: list[str]) -> Files:
    """`data.<source>` jobs write `<rank>.jsonl.gz`; `data.dedup` writes `<source>-<n>.jsonl.gz`."""
    out: Files = []
    for dep in curated:
        for f in sorted((run_dir / "jobs" / dep / "output").glob("*.jsonl.gz")):
            source = f.name.rsplit("-", 1)[0] if dep == "data.dedup" else dep.split(".", 1)[1]
            out.append((source, f))
    return out


def sample_documents(files: Files, sources: list[str], n: int, seed: int, max_chars: int,
                     fields: tuple[str, ...] = ()) -> list[dict]:
    """Per source, the n documents with the smallest hash of (seed, id): the same sample whatever the
    file order or task count, in one streaming pass (texts cut to max_chars, all the annotator sees),
    each with `metadata`: its values of `fields` (the reference labels)."""
    heaps: dict[str, list] = {s: [] for s in sources}
    for source, f in files:
        heap = heaps.get(source)
        if heap is None:
            continue
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            for line in fh:
                doc = json.loads(line)
                key = int(hashlib.sha256(f"{seed}:{doc['id']}".encode()).hexdigest()[:16], 16)
                meta = doc.get("metadata") or {}
                item = (-key, doc["id"], doc["text"][:max_chars], {f: meta.get(f) for f in fields})
                if len(heap) < n:
                    heapq.heappush(heap, item)
                elif item > heap[0]:
                    heapq.heapreplace(heap, item)
    return [{"source": s, "doc_id": doc_id, "text": text, "metadata": meta}
            for s in sources for _, doc_id, text, meta in sorted(heaps[s], reverse=True)]
