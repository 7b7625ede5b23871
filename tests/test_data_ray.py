"""The same data jobs on a local Ray instance give the same kept set and provenance as the local
executor (datatrove's RayPipelineExecutor, real Ray)."""

from __future__ import annotations

import gzip
import json

import duckdb
import pytest

from conftest import run_cli
from corpora import write_project
from qwen3_recipe.provenance.check import violations

pytestmark = pytest.mark.slow


def kept_ids(run) -> set[str]:
    ids = set()
    for f in (run / "jobs/data.dedup/output").glob("*.jsonl.gz"):
        with gzip.open(f, "rt") as fh:
            ids |= {json.loads(line)["id"] for line in fh}
    return ids


def provenance(run) -> dict[str, list]:
    with duckdb.connect(str(run / "provenance.duckdb"), read_only=True) as con:
        return {
            "decisions": sorted(con.sql("select job, step, doc_id, decision, reason from decisions").fetchall()),
            "counts": sorted(con.sql("select job, step, source, sum(documents_in), sum(kept), sum(dropped) "
                                     "from step_counts group by all").fetchall()),
            "documents": sorted(con.sql("select doc_id, text_hash from documents").fetchall()),
            "contamination": sorted(con.sql("select doc_id, benchmark, item_id from contamination").fetchall()),
        }


def test_ray_matches_local(tmp_path):
    root = tmp_path / "proj"
    recipe, _ = write_project(root, files=3)
    recipe.write_text(recipe.read_text().replace("dedup: {exact: {enabled: false}, minhash: {enabled: false}}",
                                                 "dedup: {}"))
    runs = {}
    for executor in ("local", "ray"):
        runs[executor] = root / f"run-{executor}"
        proc = run_cli("run", str(recipe), "-o", str(runs[executor]), "--only", "data", "--executor", executor,
                       cwd=root)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert kept_ids(runs["local"]) == kept_ids(runs["ray"]) and kept_ids(runs["local"])
    assert provenance(runs["local"]) == provenance(runs["ray"])
    assert not any(violations(runs["ray"]).values())
