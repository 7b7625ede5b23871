"""Interrupted data jobs resume without lost or duplicated provenance; dedup clusters planted
near-duplicates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from conftest import REPO, run_cli
from corpora import prose, write_project
from qwen3_recipe.compiler.jobs import stage_steps
from qwen3_recipe.provenance.check import violations

pytestmark = pytest.mark.slow
SLOW = "    - {type: custom, step: 'slow_steps:SlowKeep', params: {seconds: 0.05}}\n"
ENV = {"PYTHONPATH": str(REPO / "tests")}


def provenance_rows(run: Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(run / "provenance.duckdb"), read_only=True) as con:
        return {t: sorted(con.sql(f"select * exclude (rank) from {t}").fetchall())
                for t in ("documents", "decisions", "contamination", "step_counts")}


def test_sigkill_mid_run_then_rerun_loses_and_duplicates_nothing(tmp_path):
    root = tmp_path / "proj"
    recipe, _ = write_project(root, files=6)
    text = recipe.read_text().replace("    - {type: gopher_quality}\n", "    - {type: gopher_quality}\n" + SLOW)
    recipe.write_text(text)
    clean = root / "clean"
    assert run_cli("run", str(recipe), "-o", str(clean), "--only", "data.web", cwd=root, env=ENV).returncode == 0

    killed = root / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "qwen3_recipe.cli", "run", str(recipe), "-o", str(killed),
                             "--only", "data.web"], cwd=root, env={**os.environ, **ENV},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    completions = killed / "jobs/data.web/logs/completions"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(completions.glob("*"))) < 2:
        time.sleep(0.05)
    time.sleep(0.3)  # into the middle of the next task
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(completions.glob("*")))
    assert 2 <= done_before < 6, f"kill landed after {done_before} of 6 tasks"
    assert not (killed / "jobs/data.web/done.json").exists()

    rerun = run_cli("run", str(recipe), "-o", str(killed), "--only", "data.web", cwd=root, env=ENV)
    assert rerun.returncode == 0, rerun.stderr
    assert provenance_rows(killed) == provenance_rows(clean)
    assert not any(violations(killed).values())


def test_near_duplicates_cluster_and_exact_copies_drop(tmp_path):
    import random
    root = tmp_path / "proj"
    recipe, _ = write_project(root)
    rng = random.Random(7)
    base = [prose(rng, 16) for _ in range(3)]
    extra = []
    for i, text in enumerate(base):
        words = text.split(" ")
        near = words[:]
        for k in rng.sample(range(len(words)), 3):  # a few words changed: a near-duplicate
            near[k] = "changed"
        extra += [{"id": f"orig-{i}", "text": text}, {"id": f"near-{i}", "text": " ".join(near)},
                  {"id": f"copy-{i}", "text": text}]
    with open(root / "datasets_spec/web/web-00000.jsonl", "a") as fh:
        fh.write("".join(json.dumps(d) + "\n" for d in extra))
    recipe.write_text(recipe.read_text().replace("dedup: {exact: {enabled: false}, minhash: {enabled: false}}",
                                                 "dedup: {}"))
    run = root / "run"
    proc = run_cli("run", str(recipe), "-o", str(run), "--only", "data.dedup", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with duckdb.connect(str(run / "provenance.duckdb"), read_only=True) as con:
        dropped = dict(con.sql("select doc_id, reason from decisions where job = 'data.dedup' "
                               "and decision = 'dropped'").fetchall())
        clusters = con.sql("select doc_id, cluster_id, kept from clusters where method = 'minhash'").fetchall()
    for i in range(3):
        assert dropped[f"web/copy-{i}"] == "exact_duplicate"
        assert dropped[f"web/near-{i}"] == "near_duplicate"
        assert f"web/orig-{i}" not in dropped
    by_doc = {d: (c, k) for d, c, k in clusters}
    for i in range(3):
        assert by_doc[f"web/orig-{i}"][0] == by_doc[f"web/near-{i}"][0]  # one cluster
        assert by_doc[f"web/orig-{i}"][1] and not by_doc[f"web/near-{i}"][1]
    assert len({by_doc[f"web/orig-{i}"][0] for i in range(3)}) == 3
    # nothing else was taken for a duplicate
    assert set(dropped) == {f"web/{k}-{i}" for k in ("copy", "near") for i in range(3)}
    assert not any(violations(run).values())


def test_a_changed_job_starts_clean_instead_of_skipping_old_tasks(tmp_path):
    """Editing a stage's budget reruns its mix job for real: datatrove's completion markers and the
    provenance of the old version do not survive the change (its tokens and mixture rows are new)."""
    stage = ("  mixtures:\n    all: {weights: {web: 1.0}, max_repetition: 4}\npretrain:\n  batch_tokens: 2K\n"
             "  stages:\n    s1: {tokens: TOKENS, seq_len: 256, mixture: all}\n")
    root = tmp_path / "proj"
    recipe, _ = write_project(root, extra_data=stage.replace("TOKENS", "20K"))
    run = root / "run"

    def mix(tokens: str) -> tuple[int, int]:
        recipe.write_text(recipe.read_text().replace("tokens: 20K", f"tokens: {tokens}"))
        proc = run_cli("run", str(recipe), "-o", str(run), "--only", "mix.s1", cwd=root)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        with duckdb.connect(str(run / "provenance.duckdb"), read_only=True) as con:
            budget = con.sql("select distinct budget_tokens from mixture_targets").fetchall()
        ends = list((run / "jobs" / "mix.s1" / "tokens").rglob("*.ds.index"))
        assert len(budget) == 1 and len(ends) == 1
        return budget[0][0], ends[0].stat().st_size

    small = mix("20K")
    large = mix("60K")
    # the mix supplies what the trainer consumes: steps x batch (2K rounds down to whole 256-token rows)
    for (budget, _), tokens in ((small, 20_000), (large, 60_000)):
        batch, steps = stage_steps(tokens, 256, 2_000)
        assert 0 < budget - batch * steps < 1000  # at least what it reads (+1 label), less than a document over
    assert large[1] > small[1]  # more documents tokenized, not the old task's output kept
