"""A content-addressed cache of generation results: what makes a killed synth job resume exactly
once. A request's key hashes everything that determines its output (model, rendered messages,
mode, sampling incl. seed, n, budget); results land in one JSONL shard per finished batch, written
atomically, so a kill loses at most the batch in flight and a rerun regenerates only that batch -
with the same seeds, so the dataset equals an uninterrupted run's."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def request_key(payload: dict[str, Any]) -> str:
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class RequestCache:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._entries: dict[str, Any] = {}
        for shard in sorted(self.folder.glob("*.jsonl")):
            for line in shard.read_text().splitlines():
                row = json.loads(line)
                self._entries[row["key"]] = row["value"]

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Any:
        return self._entries[key]

    def put_batch(self, items: dict[str, Any]) -> None:
        """Store one finished batch: all of it or (killed mid-write) none of it."""
        if not items:
            return
        name = request_key(sorted(items))
        target = self.folder / f"{name}.jsonl"
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "w") as fh:
            for key, value in items.items():
                fh.write(json.dumps({"key": key, "value": value}, separators=(",", ":")) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(target)
        self._entries.update(items)
