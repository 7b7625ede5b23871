"""What a synth job can supply to a pretraining mixture, before its mix job runs: the characters of
its kept samples' turns (question, reasoning and answer: the `text` rendering), read by DuckDB from
the finished job's dataset."""

from __future__ import annotations

from pathlib import Path

SAMPLE_CHARS = """select coalesce(sum(list_sum(list_transform(messages, lambda m:
    coalesce(length(m.content), 0) + coalesce(length(m.reasoning_content), 0)))), 0)
from read_parquet(?)"""


def synth_chars(job_dir: Path) -> int:
    """Characters in the turns of the synth job's dataset under `job_dir` (a finished job)."""
    files = sorted(str(f) for f in (job_dir / "dataset").glob("*.parquet"))
    if not files:
        return 0
    import duckdb
    with duckdb.connect() as con:
        columns = {c[0] for c in con.execute("describe select * from read_parquet(?)", [files]).fetchall()}
        if "messages" not in columns:  # a job that kept no sample writes ids only
            return 0
        return int(con.execute(SAMPLE_CHARS, [files]).fetchone()[0])
