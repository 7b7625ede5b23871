"""`qwen3-recipe query` reads a run's provenance and cannot write or reach outside the run: each
write or escape attempt fails with one line and leaves the database byte-identical, while reading
the run's own Parquet shards (the README's tour does) keeps working."""

from __future__ import annotations

import json

import duckdb
import pytest
from conftest import run_cli


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = tmp_path_factory.mktemp("q") / "run"
    shards = run / "jobs" / "data.web" / "provenance"
    shards.mkdir(parents=True)
    with duckdb.connect(str(run / "provenance.duckdb")) as con:
        con.execute("create table documents as select 'doc-' || i as doc_id, i % 3 as step from range(5) t(i)")
        con.execute(f"copy documents to '{shards}/documents-00000.parquet' (format parquet)")
    return run


ATTEMPTS = {
    "copy over the database": "copy (select 42 as x) to '{run}/provenance.duckdb' (format csv)",
    "copy elsewhere": "copy documents to '{outside}/anywhere.csv'",
    "copy inside the run": "copy documents to '{run}/jobs/leak.csv'",
    "export": "export database '{run}/dump'",
    "attach elsewhere": "attach '{outside}/other.duckdb' as other",
    "attach inside": "attach '{run}/new.duckdb' as other",
    "install": "install httpfs",
    "load": "load httpfs",
    "read a host file": "select * from read_csv('/etc/passwd')",
    "glob the host": "select * from glob('/etc/*')",
    "unlock": "set enable_external_access = true",
    "widen": "set allowed_directories = ['/']",
    "write in a second statement": "select 1; copy documents to '{outside}/second.csv'",
    "create": "create table t as select 1",
    "insert": "insert into documents values ('x', 1)",
    "pragma": "pragma enable_profiling",
    "empty": "",
    "whitespace": "   \n\t ",
    "semicolons": ";;",
    "comment only": "-- nothing here\n/* nor here */",
}


@pytest.mark.parametrize("name", ATTEMPTS)
def test_writes_and_escapes_are_refused_in_one_line(run, tmp_path, name):
    before = (run / "provenance.duckdb").read_bytes()
    files = sorted(p for p in run.rglob("*"))
    sql = ATTEMPTS[name].format(run=run, outside=tmp_path)
    proc = run_cli("query", str(run), sql)
    assert proc.returncode == 1, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    assert (run / "provenance.duckdb").read_bytes() == before
    assert sorted(p for p in run.rglob("*")) == files and not list(tmp_path.iterdir())


def test_reading_the_runs_own_tables_and_shards_still_works(run, tmp_path):
    proc = run_cli("query", str(run), "select count(*) as n from documents", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [{"n": 5}]
    shards = run / "jobs" / "*" / "provenance" / "documents-*.parquet"
    proc = run_cli("query", str(run), f"select doc_id from read_parquet('{shards}') where step = 0 order by 1",
                   "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["doc_id", "doc-0", "doc-3"]
    # results reach a file only through --output, written by this process (parquet too)
    out = tmp_path / "docs.parquet"
    proc = run_cli("query", str(run), "select * from documents", "--format", "parquet", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert duckdb.sql(f"select count(*) from '{out}'").fetchall() == [(5,)]
    for sql in ("show tables", "describe documents", "summarize documents", "explain select * from documents",
                "from documents limit 1", "with d as (select * from documents) select count(*) from d"):
        proc = run_cli("query", str(run), sql)
        assert proc.returncode == 0, (sql, proc.stderr)
