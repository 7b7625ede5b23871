"""Rows of a catalog entry or a job's output dataset: local JSON Lines (optionally gzipped) or
Parquet files and folders of them, or an HF dataset by id (on machines with hub access)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SUFFIXES = (".jsonl", ".jsonl.gz", ".json.gz", ".parquet")


def file_rows(path: Path) -> Iterator[dict]:
    path = Path(path)
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.name.endswith(SUFFIXES)):
            yield from file_rows(f)
        return
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq
        for batch in pq.ParquetFile(path).iter_batches():
            yield from batch.to_pylist()
        return
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def entry_rows(name: str, spec: Any, local_path: Path | None) -> Iterator[dict]:
    if local_path is not None:
        yield from file_rows(local_path)
        return
    if getattr(spec, "hf_id", None):
        from datasets import load_dataset  # lazy: hub access only where the dataset lives there
        yield from load_dataset(spec.hf_id, spec.config, split=spec.split, revision=spec.revision)
        return
    raise ValueError(f"catalog entry {name!r}: no local file and no hf_id")
