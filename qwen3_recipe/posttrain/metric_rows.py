"""A stage's per-step metrics file (`metrics.jsonl`, one JSON row per step, `step` counted from 1): what the
progress display follows and the report reads. Rewritten whole on each step (a temp file renamed), so a
stage resumed from step k keeps rows 1..k and writes the rest again: no row lost or repeated."""

from __future__ import annotations

import json
from pathlib import Path


def read_rows(path: Path, below: int | None = None) -> list[dict]:
    """The rows of the file (those with step <= `below` when given)."""
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if below is None or r["step"] <= below]


def write_rows(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(path)
