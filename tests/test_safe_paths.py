"""Names become folders of the run directory: bad ones are located errors, and nothing the runner
writes or deletes lies outside the run directory (safe_paths.py)."""

from __future__ import annotations

import dataclasses
import os

import pytest

from conftest import REPO, run_cli, write
from qwen3_recipe.compiler.plan import make_plan
from qwen3_recipe.compiler.rundir import compile_run_dir
from qwen3_recipe.recipe.validate import load_recipe
from qwen3_recipe.runners import mark_done, start_clean
from qwen3_recipe.safe_paths import OutsideRunDir, name_problem

TINY = REPO / "recipes/tiny.yaml"


def files_under(root) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("name", ["web", "s1_general", "data.web", "Qwen3-8B", "_x", "v1.2"])
def test_good_names(name):
    assert name_problem(name) is None


@pytest.mark.parametrize("name", ["", "../x", "a/b", "/etc", "..", "a..b", "x\0y", ".hidden", "-x", "a b", "ü", 3])
def test_bad_names(name):
    assert name_problem(name)


def test_compile_refuses_an_escaping_name_and_writes_nothing(tmp_path):
    project = tmp_path / "project"
    recipe = write(project / "bad.yaml", f"""
        extends: {TINY}
        data:
          sources:
            ../../escape: tiny_web
    """)
    before = files_under(tmp_path)
    proc = run_cli("compile", str(recipe), "-o", str(project / "run"))
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    assert "bad.yaml:4:" in proc.stderr and "data.sources.../../escape" in proc.stderr, proc.stderr
    assert "cannot be a name" in proc.stderr
    assert files_under(tmp_path) == before  # no run directory, nothing beside it


@pytest.fixture
def plan(tmp_path):
    plan = make_plan(load_recipe(TINY), tmp_path / "run")
    compile_run_dir(plan)
    return plan


def forged(plan, name: str):
    """A planned job whose name escapes, as if built by a path the recipe checks do not cover."""
    p = plan.jobs[0]
    return dataclasses.replace(p, job=dataclasses.replace(p.job, name=name))


def test_runner_refuses_job_folders_outside_the_run(plan, tmp_path):
    before = files_under(tmp_path)
    for bad in ("../../outside", "../manifest-clash", "sub/../../.."):
        p = forged(plan, bad)
        with pytest.raises(OutsideRunDir):
            start_clean(plan, p)
        with pytest.raises(OutsideRunDir):
            mark_done(plan, p)
        with pytest.raises(OutsideRunDir):
            compile_run_dir(dataclasses.replace(plan, jobs=[p]))
    assert files_under(tmp_path) == before


def test_start_clean_follows_no_symlink_out_of_the_run(plan, tmp_path):
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    p = plan.jobs[0]
    folder = plan.run_dir / p.job.dir
    # a link inside a job's folder: the link goes, not what it points to
    os.symlink(outside, folder / "link")
    start_clean(plan, p)
    assert not (folder / "link").exists() and (outside / "keep.txt").read_text() == "mine"
    # a job folder that is itself a link out of the run: refused before anything is deleted
    for entry in folder.iterdir():
        entry.unlink()
    folder.rmdir()
    os.symlink(outside, folder)
    (outside / "started.json").write_text('{"fingerprint": "older"}')
    with pytest.raises(OutsideRunDir):
        start_clean(plan, p)
    assert (outside / "keep.txt").read_text() == "mine"


def test_a_lowered_trainer_job_writing_outside_its_folder_is_refused(plan, tmp_path):
    import json

    from qwen3_recipe.compiler.lowerers import LOWERED_FILE, load_lowered
    p = next(p for p in plan.jobs if p.job.kind == "pretrain")
    path = plan.run_dir / p.job.dir / LOWERED_FILE
    artifact = json.loads(path.read_text())
    assert load_lowered(p, plan)["dump_folder"] == artifact["lowered"]["dump_folder"]
    artifact["lowered"]["dump_folder"] = str(tmp_path / "elsewhere")  # hand-edited, fingerprint kept
    path.write_text(json.dumps(artifact))
    with pytest.raises(OutsideRunDir):
        load_lowered(p, plan)
