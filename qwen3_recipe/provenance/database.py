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


def job_done(run_dir: Path, job: dict) -> bool:
    """The job's done marker holds its current fingerprint (a marker of an older version is not done)."""
    try:
        marker = json.loads((run_dir / "jobs" / job["name"] / "done.json").read_text())
        return marker["fingerprint"] == job["fingerprint"]
    except (OSError, ValueError, KeyError):
        return False


def refresh_jobs(run_dir: Path) -> None:
    """Set `jobs.done` from the markers, in the database as built: a job's marker is written after
    its last build of the database (called once the marker is written)."""
    import duckdb

    target, manifest = run_dir / DB_NAME, run_dir / "manifest.json"
    if not (target.exists() and manifest.exists()):
        return
    jobs = json.loads(manifest.read_text())["jobs"]
    if not jobs:
        return
    try:
        with duckdb.connect(str(target)) as con:
            if con.execute("select count(*) from information_schema.tables where table_name = 'jobs'").fetchone()[0]:
                con.executemany("update jobs set done = ? where name = ? and fingerprint = ?",
                                [(job_done(run_dir, j), j["name"], j["fingerprint"]) for j in jobs])
    except duckdb.IOException:  # a reader holds the file: the next build sets the flags from the markers
        pass


def _clear_stale(run_dir: Path) -> None:
    """Temporary databases (and their WAL files) of builds whose process is gone (killed mid-build)."""
    for stale in run_dir.glob(f".{DB_NAME}.*.tmp*"):
        pid = stale.name[len(DB_NAME) + 2:].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            stale.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def shards(run_dir: Path) -> list[Path]:
    return list(run_dir.glob("jobs/*/provenance/*/*.parquet"))


def usable(target: Path, newest_shard: float) -> bool:
    """A database this version can read, built after the newest shard."""
    import duckdb
    try:
        if target.stat().st_mtime < newest_shard:
            return False
        with duckdb.connect(str(target), read_only=True) as con:
            version = con.execute("select value from meta where key = 'schema_version'").fetchone()
        return version is not None and version[0] == str(SCHEMA_VERSION)
    except (OSError, duckdb.Error):
        return False


def ensure_database(run_dir: Path) -> Path | None:
    """The run's database, rebuilt from its shards (the source of truth) when it is missing, corrupt,
    of another schema version or older than a shard; temporary files of killed builds removed.
    Without shards, a database there is kept as it is (it is all there is: a rebuild would empty
    it), and one is built only for a compiled run (its jobs table); None when there is nothing."""
    _clear_stale(run_dir)
    found, target = shards(run_dir), run_dir / DB_NAME
    if not found and (target.exists() or not (run_dir / "manifest.json").exists()):
        return target if target.exists() else None
    if not usable(target, max((f.stat().st_mtime for f in found), default=0.0)):
        build_database(run_dir)
    return target


def build_database(run_dir: Path) -> Path:
    import duckdb

    target = run_dir / DB_NAME
    _clear_stale(run_dir)
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
            rows = [(j["name"], j["kind"], j["fingerprint"], job_done(run_dir, j)) for j in info["jobs"]]
            if rows:
                con.executemany("insert into jobs values (?, ?, ?, ?)", rows)
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

