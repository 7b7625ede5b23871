"""Flag mode: contaminated documents stay, are visible to SQL next to the stage that would train on
them, and a stage above the threshold is refused unless the recipe allows it."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from corpora import write_project

pytestmark = pytest.mark.slow

STAGE = """
  mixtures:
    all: {weights: {web: 1.0}, max_repetition: 2}
pretrain:
  batch_tokens: 2K
  stages:
    s1: {tokens: 20K, seq_len: 256, mixture: all}
"""


@pytest.mark.parametrize("allow", [False, True])
def test_flagged_contamination_is_refused_or_queryable(tmp_path, allow):
    decont = f"{{benchmarks: [bench], n: 13, action: flag, threshold: 0.01, allow_contamination: {str(allow).lower()}}}"
    recipe, fates = write_project(tmp_path / "p", extra_data=STAGE, decont=decont)
    run = tmp_path / "r"
    proc = run_cli("run", str(recipe), "-o", str(run), "--only", "mix.s1", cwd=tmp_path / "p")
    if not allow:
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert "data.decontamination.threshold" in proc.stderr and "allow_contamination" in proc.stderr
        assert "recipes/data.yaml:" in proc.stderr
        # plan time: the provenance the data jobs left is enough for `plan` to refuse the stage,
        # and a rerun refuses up front instead of redoing work
        planned = run_cli("plan", str(recipe), "-o", str(run), cwd=tmp_path / "p")
        assert planned.returncode == 1 and "stage 's1' would train on" in planned.stderr
        assert "data.decontamination.threshold" in planned.stderr and "Traceback" not in planned.stderr
        again = run_cli("run", str(recipe), "-o", str(run), "--only", "mix.s1", cwd=tmp_path / "p")
        assert again.returncode == 1 and "stage 's1' would train on" in again.stderr
        assert "mix.s1 (data_mix)" not in again.stdout
        return
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert run_cli("plan", str(recipe), "-o", str(run), cwd=tmp_path / "p").returncode == 0
    sql = ("select distinct m.stage, c.benchmark, c.item_id, m.doc_id from mixture m "
           "join contamination c using (doc_id) where c.benchmark = 'bench' order by m.doc_id")
    rows = json.loads(run_cli("query", str(run), sql, "--format", "json").stdout)
    planted = {d for d, f in fates.items() if f == "contaminated"}
    assert rows and {r["doc_id"] for r in rows} <= planted and all(r["stage"] == "s1" for r in rows)
