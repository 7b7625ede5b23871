"""`provenance.duckdb`: the run's shards loaded into tables (plus views), opened by `query`,
`check`, `report` or the plain duckdb CLI. Rebuilt after each data job; built in a temporary
file and renamed, so a reader never sees half a database."""

from __future__ import annotations

import json
import os
from pathlib import Path

from qwen3_recipe.provenance.schema import SCHEMA_VERSION, TABLES, VIEWS

DB_NAME = "provenance.duckdb"


def shard_glob(run_dir: Path, table: str) -> list[str]:
    return sorted(str(p) for p in run_dir.glob(f"jobs/*/provenance/{table}/*.parquet"))


def build_database(run_dir: Path) -> Path:
    import duckdb

    target = run_dir / DB_NAME
    tmp = run_dir / f".{DB_NAME}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    with duckdb.connect(str(tmp)) as con:
        con.execute("create table meta(key varchar, value varchar)")
        con.execute("insert into meta values ('schema_version', ?)", [str(SCHEMA_VERSION)])
        manifest = run_dir / "manifest.json"
        if manifest.exists():
            info = json.loads(manifest.read_text())
            con.execute("create table runs as select ? as recipe, ? as recipe_files, ? as overrides, ? as packages",
                        [info.get("recipe"), json.dumps(info.get("recipe_files")),
                         json.dumps(info.get("overrides")), json.dumps(info.get("packages"))])
            con.execute("create table jobs(name varchar, kind varchar, fingerprint varchar, done boolean)")
            con.executemany("insert into jobs values (?, ?, ?, ?)",
                            [(j["name"], j["kind"], j["fingerprint"],
                              (run_dir / "jobs" / j["name"] / "done.json").exists()) for j in info["jobs"]])
        for table, columns in TABLES.items():
            files = shard_glob(run_dir, table)
            cols = ", ".join(f'"{name}" {kind}' for name, kind in columns.items())
            con.execute(f"create table {table} ({cols})")
            if files:
                con.execute(f"insert into {table} by name select * from read_parquet(?, union_by_name = true)", [files])
        con.execute("create table sources as select source, count(*) as documents, sum(bytes) as bytes "
                    "from documents group by source order by source")
        for name, sql in VIEWS.items():
            con.execute(f"create view {name} as {sql}")
    tmp.replace(target)
    return target

