"""Per-task shard writers: rows stay in memory and land in one Parquet file per (table, step,
rank) when the step finishes, written atomically. A task killed midway leaves no partial shard;
its rerun writes the same file names, so rows are neither lost nor duplicated."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from qwen3_recipe.provenance.schema import TABLES

_ARROW = {"VARCHAR": "string", "BIGINT": "int64", "INTEGER": "int32", "BOOLEAN": "bool_", "DOUBLE": "float64"}


def arrow_schema(table: str):
    import pyarrow as pa
    return pa.schema([(name, getattr(pa, _ARROW[kind])()) for name, kind in TABLES[table].items()])


class ShardRecorder:
    """Collects rows for one step of one task; `close()` writes them."""

    def __init__(self, folder: str | Path, job: str, shard: str, rank: int) -> None:
        self.folder, self.job, self.shard, self.rank = Path(folder), job, shard, rank
        self.rows: dict[str, list[dict[str, Any]]] = {}

    def add(self, table: str, **row: Any) -> None:
        row.setdefault("job", self.job)
        if "rank" in TABLES[table]:
            row.setdefault("rank", self.rank)
        self.rows.setdefault(table, []).append(row)

    def close(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq
        for table, rows in self.rows.items():
            schema = arrow_schema(table)
            columns = {name: [r.get(name) for r in rows] for name in schema.names}
            target = self.folder / table / f"{self.shard}-r{self.rank:05d}.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(f".tmp{os.getpid()}")
            pq.write_table(pa.table(columns, schema=schema), tmp, compression="zstd")
            tmp.replace(target)
        self.rows.clear()
