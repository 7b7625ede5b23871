"""The command surface, driven as a user would: a fresh process per command."""

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import REPO, run_cli

HEAVY = ("torch", "vllm", "torchtitan", "datatrove", "transformers", "duckdb")


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_validate_and_plan_import_no_engine(command):
    code = (f"import sys; from qwen3_recipe.cli import main; rc = main([{command!r}, 'recipes/qwen3.yaml']); "
            f"heavy = [m for m in {HEAVY!r} if m in sys.modules]; print('HEAVY', heavy); sys.exit(rc)")
    env = {**os.environ, "QWEN3_RECIPE_NO_CACHE": "1"}  # the whole plan, not a cached view of it
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout


def test_plan_prints_tokens_flops_gpu_hours_and_status(tmp_path):
    proc = run_cli("plan", "recipes/qwen3-235B-A22B.yaml", "-o", str(tmp_path / "run"))  # not the checkout's runs/
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # the steps the trainer runs: whole 4K sequences per batch (16M -> 15.99M tokens), enough for 6T
    assert "pretrain.s1_general" in out and "6T" in out and "375,025" in out
    # S2 grows 8K -> 16K: plan shows the segments it is compiled to (equal halves of its steps)
    assert "pretrain.s2_reasoning grows its sequence length: 8,192 for 250,144 steps (4T tokens), " \
           "then 16,384 for 250,145 steps (4T tokens)" in out
    assert "N = 21.57B active" in out and "GPU-hours" in out and "to run" in out
    assert "short: math" in out  # public math data cannot feed the reasoning stage


def test_plan_json_format(tmp_path):
    # its own run directory: the checkout's runs/tiny (filled by `make demo`) would show jobs cached
    proc = run_cli("plan", "recipes/tiny.yaml", "--format", "json", "-o", str(tmp_path / "run"))
    plan = json.loads(proc.stdout)
    jobs = {j["name"]: j for j in plan["jobs"]}
    est = jobs["pretrain.s1_general"]["estimate"]  # 200K asked: 112 steps of 1,792 (whole 256-token rows)
    assert est["tokens"] == 200_704 and est["steps"] == 112
    assert jobs["pretrain.s2_reasoning"]["segments"] == [
        {"first_step": 1, "steps": 49, "seq_len": 256, "tokens": 49 * 1536},
        {"first_step": 50, "steps": 49, "seq_len": 512, "tokens": 49 * 1536}]
    assert jobs["pretrain.s1_general"]["status"] == "new"


def test_set_and_compile(tmp_path):
    proc = run_cli("compile", "recipes/tiny.yaml", "-o", str(tmp_path / "r"),
                   "--set", "pretrain.stages.s1_general.tokens=2M")
    assert proc.returncode == 0, proc.stderr
    assert "tokens: 2000000" in (tmp_path / "r/recipe.lock.yaml").read_text()


def test_model_prints_hf_config_for_presets_and_recipes():
    proc = run_cli("model", "Qwen3-30B-A3B")
    cfg = json.loads(proc.stdout)
    assert cfg["num_experts"] == 128 and cfg["moe_intermediate_size"] == 768 and cfg["model_type"] == "qwen3_moe"
    cfg = json.loads(run_cli("model", "recipes/tiny.yaml").stdout)
    assert cfg["hidden_size"] == 128 and cfg["rope_scaling"]["rope_type"] == "yarn"
    proc = run_cli("model", "Qwen3-7B")
    assert proc.returncode == 1 and "unknown preset" in proc.stderr


def test_schema_command_prints_json_schema():
    schema = json.loads(run_cli("schema").stdout)
    assert schema["title"] == "Recipe" and "pretrain" in schema["properties"]


def test_query_runs_sql_over_a_provenance_database(tmp_path):
    db = tmp_path / "provenance.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("create table decisions(step varchar, source varchar, kept boolean)")
        con.execute("insert into decisions values ('gopher', 'web', false), ('gopher', 'web', true), "
                    "('c4', 'code', false)")
    sql = "select step, source, count(*) as drops from decisions where not kept group by all order by step"
    proc = run_cli("query", str(tmp_path), sql)
    assert proc.returncode == 0 and "gopher" in proc.stdout and "c4" in proc.stdout
    proc = run_cli("query", str(tmp_path), sql, "--format", "json")
    assert json.loads(proc.stdout) == [{"step": "c4", "source": "code", "drops": 1},
                                       {"step": "gopher", "source": "web", "drops": 1}]
    proc = run_cli("query", str(tmp_path), sql, "--format", "csv")
    assert proc.stdout.splitlines()[0] == "step,source,drops"
    out = tmp_path / "out.parquet"
    assert run_cli("query", str(tmp_path), sql, "--format", "parquet", "--output", str(out)).returncode == 0
    assert duckdb.sql(f"select count(*) from '{out}'").fetchall()[0][0] == 2
    proc = run_cli("query", str(tmp_path), "select * from nope")
    assert proc.returncode == 1 and "nope" in proc.stderr and "Traceback" not in proc.stderr


def test_query_without_database_is_a_clear_error(tmp_path):
    proc = run_cli("query", str(tmp_path), "select 1")
    assert proc.returncode == 1 and "no provenance database" in proc.stderr


def test_run_fails_at_the_first_job_without_an_engine(tmp_path, monkeypatch, capsys):
    """Every shipped job kind has an engine now; a kind without one (an engine removed here, as in
    a build without it) stops the run before that job with a non-zero exit and the reason, with
    what was done kept."""
    from qwen3_recipe import runners
    from qwen3_recipe.compiler.graph import ancestors
    from qwen3_recipe.compiler.plan import DONE_FILE, make_plan
    from qwen3_recipe.compiler.select import select
    from qwen3_recipe.recipe.validate import load_recipe
    monkeypatch.delitem(runners.RUNNER_MODULES, "eval")
    monkeypatch.setattr(runners, "RUNNERS", {})
    plan = make_plan(load_recipe(REPO / "recipes/tiny.yaml"), tmp_path / "r")
    target = next(p.job.name for p in plan.jobs if p.job.kind == "eval")
    upstream = ancestors(plan.deps, {target})
    for p in plan.jobs:
        if p.job.name in upstream:
            runners.mark_done(plan, p)  # as if everything before it had run
    plan = make_plan(load_recipe(REPO / "recipes/tiny.yaml"), tmp_path / "r")
    assert runners.run_jobs(plan, select(plan, target)) == 1
    assert f"cannot run {target}: no engine runs 'eval' jobs" in capsys.readouterr().out
    assert not (tmp_path / "r" / "jobs" / target / DONE_FILE).exists()


@pytest.mark.slow
def test_doctor_reports_every_engine():
    proc = run_cli("doctor")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("torch", "torchtitan", "vllm", "datatrove", "duckdb", "math-verify"):
        assert name in proc.stdout
    assert "GPU visible: no" in proc.stdout


def test_plan_cache_serves_unchanged_recipes_and_never_stale_ones(tmp_path):
    import shutil
    for name in ("recipes", "datasets_spec", "evals"):
        shutil.copytree(REPO / name, tmp_path / name)
    env = {"QWEN3_RECIPE_CACHE": str(tmp_path / "cache")}
    recipe = tmp_path / "recipes/tiny.yaml"
    first = run_cli("plan", str(recipe), "--format", "json", env=env, cwd=tmp_path)
    assert first.returncode == 0 and len(list((tmp_path / "cache").glob("*.json"))) == 1
    assert run_cli("plan", str(recipe), "--format", "json", env=env, cwd=tmp_path).stdout == first.stdout
    recipe.write_text(recipe.read_text().replace("tokens: 200K", "tokens: 2M"))  # an edit
    edited = json.loads(run_cli("plan", str(recipe), "--format", "json", env=env, cwd=tmp_path).stdout)
    assert {j["name"]: j for j in edited["jobs"]}["pretrain.s1_general"]["estimate"]["tokens"] == 1117 * 1792  # 2M in whole batches
    with open(tmp_path / "datasets_spec/data/tiny_code.jsonl", "a") as fh:  # a data edit
        fh.write(json.dumps({"id": "x", "text": "def f():\n    return 2\n"}) + "\n")
    again = json.loads(run_cli("plan", str(recipe), "--format", "json", env=env, cwd=tmp_path).stdout)
    fp = lambda view, job: {j["name"]: j["fingerprint"] for j in view["jobs"]}[job]  # noqa: E731
    assert fp(again, "data.code") != fp(edited, "data.code") and fp(again, "data.web") == fp(edited, "data.web")
    bad = run_cli("validate", str(recipe), "--set", "seed=x", env=env, cwd=tmp_path)
    assert bad.returncode == 1 and "seed" in bad.stderr  # errors are never cached away


def test_compile_diff_lists_what_each_engine_is_told_differently(tmp_path):
    base, other = tmp_path / "base", tmp_path / "other"
    assert run_cli("compile", "recipes/tiny.yaml", "-o", str(base)).returncode == 0
    lowered = json.loads((base / "jobs/pretrain.s2_reasoning/lowered.json").read_text())["lowered"]
    assert [s["seq_len"] for s in lowered["seq_len_schedule"]] == [256, 512]  # compile writes what will run
    proc = run_cli("compile", "recipes/tiny.yaml", "-o", str(other), "--set", "pretrain.stages.s2_reasoning.seq_len_start=512",
                   "--set", "evals.max_tokens=99", "--diff", str(base))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("pretrain.s2_reasoning (lowered.json) seq_len_schedule:")
               and line.endswith("-> null  [set by pretrain.stages.s2_reasoning.seq_len_start at --set "
                                 "pretrain.stages.s2_reasoning.seq_len_start=512]") for line in lines), proc.stdout
    assert any(line.startswith("eval.s3_long_context (lowered.json) max_tokens: 64 -> 99  [set by evals.max_tokens "
                               "at --set") for line in lines), proc.stdout
    assert not any(line.startswith("pretrain.s1_general") for line in lines)  # unchanged jobs stay out
    # an edited recipe file: the change is traced to its file and line
    edit = tmp_path / "edit.yaml"
    edit.write_text(f"extends: {Path('recipes/tiny.yaml').resolve()}\ndata:\n  mixtures:\n    general:\n"
                    "      max_repetition: 9\n")
    proc = run_cli("compile", str(edit), "-o", str(tmp_path / "edited"), "--diff", str(base))
    assert proc.returncode == 0, proc.stderr
    assert f"recipe data.mixtures.general.max_repetition: 4.0 -> 9.0  ({edit}:5:23)" in proc.stdout
    assert f"mix.s1_general (lowered.json) max_repetition: 4.0 -> 9.0  [set by data.mixtures.general.max_repetition " \
           f"at {edit}:5:23]" in proc.stdout
    # a value set to null (and so put back by setting it again) is explained too
    proc = run_cli("compile", "recipes/tiny.yaml", "-o", str(tmp_path / "nulled"), "--set",
                   "pretrain.stages.s2_reasoning.seq_len_start=null", "--diff", str(base))
    assert proc.returncode == 0, proc.stderr
    assert "recipe pretrain.stages.s2_reasoning.seq_len_start: 256 -> null" in proc.stdout, proc.stdout
    assert any(line.startswith("pretrain.s2_reasoning (lowered.json) seq_len_schedule")
               and "[set by pretrain.stages.s2_reasoning.seq_len_start at --set" in line
               for line in proc.stdout.splitlines()), proc.stdout
    same = run_cli("compile", "recipes/tiny.yaml", "-o", str(other), "--diff", str(base))
    assert "no job is told anything different" in same.stdout
