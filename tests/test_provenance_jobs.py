"""The `jobs` table tells the truth: a job is done when its marker holds its current fingerprint,
including the job whose run built the database just before writing its marker; a killed build's
temporary files are cleared by the next build."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import duckdb

from qwen3_recipe.provenance.database import DB_NAME, build_database
from qwen3_recipe.runners import mark_done


def _done(run) -> dict[str, bool]:
    with duckdb.connect(str(run / DB_NAME), read_only=True) as con:
        return dict(con.execute("select name, done from jobs order by name").fetchall())


def test_jobs_table_follows_the_markers(tmp_path):
    run = tmp_path / "run"
    jobs = [{"name": "data.web", "kind": "data_prepare", "fingerprint": "f1"},
            {"name": "data.dedup", "kind": "data_dedup", "fingerprint": "f2"}]
    (run / "jobs" / "data.web").mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"recipe": "t", "jobs": jobs}))
    (run / "jobs" / "data.web" / "done.json").write_text(json.dumps({"fingerprint": "old"}))  # another version
    build_database(run)
    assert _done(run) == {"data.dedup": False, "data.web": False}
    # a job builds the database as its last step, then writes its marker: the table follows
    plan = SimpleNamespace(run_dir=run)
    mark_done(plan, SimpleNamespace(job=SimpleNamespace(name="data.dedup", dir="jobs/data.dedup", fingerprint="f2")))
    assert _done(run) == {"data.dedup": True, "data.web": False}
    mark_done(plan, SimpleNamespace(job=SimpleNamespace(name="data.web", dir="jobs/data.web", fingerprint="f1")))
    build_database(run)
    assert _done(run) == {"data.dedup": True, "data.web": True}


def test_a_killed_build_leaves_nothing_behind(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # a process that has exited
    stale = [run / f".{DB_NAME}.{pid}.tmp", run / f".{DB_NAME}.{pid}.tmp.wal"]
    for f in stale:
        f.write_bytes(b"half a database")
    live = run / f".{DB_NAME}.{os.getppid()}.tmp"  # a build still running in another process
    live.write_bytes(b"in progress")
    build_database(run)
    assert not any(f.exists() for f in stale) and live.exists()
    assert sorted(f.name for f in run.iterdir()) == sorted([DB_NAME, live.name])


def _tables(db) -> dict[str, list]:
    with duckdb.connect(str(db), read_only=True) as con:
        names = [r[0] for r in con.execute("select table_name from information_schema.tables order by 1").fetchall()]
        return {n: sorted(map(str, con.execute(f'select * from "{n}"').fetchall())) for n in names}


def test_the_database_comes_back_from_the_shards(tmp_path):
    """Deleted, truncated, replaced with junk or older than a shard: query, check and
    `provenance rebuild` give back the run's tables (with the newer shard's rows), and a killed
    build's temporary file is gone after the next query. Without shards the database is the only
    copy: rebuild refuses and leaves it."""
    from conftest import run_cli

    from qwen3_recipe.provenance.recorder import ShardRecorder

    run = tmp_path / "run"
    (run / "jobs").mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"recipe": "t", "jobs": []}))

    def shard(job: str, n: int) -> None:
        rec = ShardRecorder(run / "jobs" / job / "provenance", job, "mix", 0)
        for i in range(n):
            rec.add("mixture", stage="s1", source="web", doc_id=f"{job}-{i}", tokens=10 * i, repetitions=1,
                    packed_into=None)
        rec.close()

    shard("mix.s1", 5)
    db = build_database(run)
    want = _tables(db)
    assert len(want["mixture"]) == 5

    def damage(how: str) -> None:
        if how == "deleted":
            db.unlink()
        elif how == "truncated":
            db.write_bytes(db.read_bytes()[:4096])
        elif how == "junk":
            db.write_bytes(b"42\n")

    for how, command, rc in (("deleted", ["query", str(run), "select count(*) from mixture"], 0),
                             ("truncated", ["check", str(run)], None),
                             ("junk", ["provenance", "rebuild", str(run)], 0)):
        damage(how)
        proc = run_cli(*command)
        assert "Traceback" not in proc.stderr and "not a valid DuckDB" not in proc.stderr, (how, proc.stderr)
        assert rc is None or proc.returncode == rc, (how, proc.stdout, proc.stderr)
        assert _tables(db) == want, how
        assert sorted(f.name for f in run.iterdir()) == sorted(["jobs", "manifest.json", DB_NAME]), how

    # a shard newer than the database, and a killed build's leftover: the next query reads the shard
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run / f".{DB_NAME}.{int(dead.stdout)}.tmp.wal").write_bytes(b"half")
    shard("mix.s2", 2)
    os.utime(db, (1, 1))
    proc = run_cli("query", str(run), "select count(*) as n from mixture", "--format", "csv")
    assert proc.returncode == 0 and proc.stdout.split() == ["n", "7"], proc.stdout + proc.stderr
    assert sorted(f.name for f in run.iterdir()) == sorted(["jobs", "manifest.json", DB_NAME])

    # shards gone, manifest gone: the database is all there is
    import shutil
    shutil.rmtree(run / "jobs")
    (run / "manifest.json").unlink()
    before = db.read_bytes()
    proc = run_cli("provenance", "rebuild", str(run))
    assert proc.returncode == 1 and "no provenance shards" in proc.stderr and "kept as it is" in proc.stderr
    assert db.read_bytes() == before
    proc = run_cli("query", str(run), "select count(*) as n from mixture", "--format", "csv")
    assert proc.returncode == 0 and proc.stdout.split() == ["n", "7"], proc.stderr
