"""A source whose ids repeat (issue 15): the data job fails naming both rows, or resolves them as
`on_duplicate_id` declares (keep_first, suffix), recorded in provenance, and `check` passes. Real
datatrove pipelines and DuckDB on a generated project."""

from __future__ import annotations

import gzip
import json

import duckdb
import pytest
from conftest import run_cli
from corpora import write_project

pytestmark = pytest.mark.slow


def _json(line: str):
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) and value.get("id") and value.get("text") else None


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """Two files; the first good record of the second file takes the id of the first file's, and a
    third record is named `<that id>#2` already (a rename must not collide with it)."""
    root = tmp_path_factory.mktemp("dup")
    recipe, _ = write_project(root, files=2)
    first, second = sorted((root / "datasets_spec/web").iterdir())
    a, b = first.read_text().splitlines(), second.read_text().splitlines()
    i = next(n for n, line in enumerate(a) if _json(line))
    j, k = [n for n, line in enumerate(b) if _json(line)][:2]
    repeated = _json(a[i])["id"]
    for n, new_id in ((j, repeated), (k, f"{repeated}#2")):
        record = _json(b[n]) | {"id": new_id}
        b[n] = json.dumps(record)
    second.write_text("\n".join(b) + "\n")
    return root, recipe, repeated, (first, i + 1), (second, j + 1)


def _run(root, recipe, run, policy=None):
    sets = ["--set", f"data.sources.web={{dataset: web, on_duplicate_id: {policy}}}"] if policy else []
    return run_cli("run", str(recipe), "-o", str(run), "--only", "data.web", *sets, cwd=root)


def test_a_repeated_id_fails_the_job_naming_both_rows(project):
    root, recipe, repeated, (f1, l1), (f2, l2) = project
    proc = _run(root, recipe, root / "fail")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in out, out
    failed = next(line for line in out.splitlines() if line.startswith("failed data.web"))
    assert f"id 'web/{repeated}'" in failed and f"{f1} line {l1} and {f2} line {l2}" in failed, failed
    assert "on_duplicate_id: keep_first or suffix" in failed
    assert not (root / "fail/jobs/data.web/done.json").exists()  # not a success


@pytest.mark.parametrize("policy,decision", [("keep_first", "dropped"), ("suffix", "modified")])
def test_a_declared_policy_resolves_them_and_provenance_records_it(project, policy, decision):
    root, recipe, repeated, (f1, l1), (f2, l2) = project
    run = root / policy
    proc = _run(root, recipe, run, policy)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert run_cli("check", str(run)).returncode == 0
    with duckdb.connect(str(run / "provenance.duckdb"), read_only=True) as con:
        rows = con.sql("select d.doc_id, d.decision, d.details, c.file, c.\"offset\" from decisions d "
                       "join documents c using (job, doc_id) where d.reason = 'duplicate_id'").fetchall()
        ids = [r[0] for r in con.sql("select doc_id from documents").fetchall()]
    # the later row (file order) is the one renamed or dropped; the first keeps its id
    assert len(rows) == 1
    doc_id, got, details, file, offset = rows[0]
    assert (got, file, offset + 1) == (decision, f2.name, l2) and json.loads(details) == {"id": f"web/{repeated}"}
    assert doc_id == f"web/{repeated}#2'"  # `#2` was taken by a natural id
    assert len(ids) == len(set(ids)) and f"web/{repeated}" in ids and f"web/{repeated}#2" in ids
    written = [json.loads(line)["id"] for f in (run / "jobs/data.web/output").glob("*.jsonl.gz")
               for line in gzip.open(f, "rt")]
    assert len(written) == len(set(written))
    with duckdb.connect(str(run / "provenance.duckdb"), read_only=True) as con:
        dropped_later = con.execute("select count(*) from decisions where doc_id = ? and step_index > 0 "
                                    "and decision = 'dropped'", [doc_id]).fetchall()[0][0]
    if policy == "keep_first":
        assert doc_id not in written and not dropped_later  # it went no further than the read
    else:
        assert (doc_id in written) != bool(dropped_later)  # it went on, under its new id


def test_keep_first_with_a_limit_reads_the_rows_the_scan_saw(project):
    """`limit` counts rows read, so the read that drops the later row reads no further than the id
    scan did (it read one row more, past what the scan had checked)."""
    root, recipe, repeated, _, (f2, l2) = project
    limit = l2 + 1  # the repeated row and one after it, in the second file's task
    run = root / "limited"
    sets = ["--set", f"data.sources.web={{dataset: web, on_duplicate_id: keep_first, limit: {limit}}}"]
    proc = run_cli("run", str(recipe), "-o", str(run), "--only", "data.web", *sets, cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with duckdb.connect(str(run / "provenance.duckdb"), read_only=True) as con:
        per_file = dict(con.sql("select file, count(*) from documents group by file").fetchall())
        dropped = con.sql("select count(*) from decisions where reason = 'duplicate_id'").fetchall()[0][0]
    for f in sorted((root / "datasets_spec/web").iterdir()):
        records = sum(1 for line in f.read_text().splitlines() if line.strip())
        assert per_file[f.name] == min(limit, records), (f.name, per_file)
    assert dropped == 1
