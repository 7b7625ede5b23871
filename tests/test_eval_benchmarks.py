"""The eval job on the Qwen3 report's benchmark kinds, with real engines: vLLM (the shipped tiny
teacher answers every benchmark, and is judge and baseline for the judged one), the bubblewrap
sandbox, math-verify and the IFEval library, on rows shaped like the hub datasets'
(tests/benchmark_rows/). What is checked is the scoring path, not the tiny model's skill: every
benchmark is scored by its own metric, each sample's prompt, response, extracted answer and
verdict are in provenance, and what cannot be scored fails the job instead of being skipped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import REPO, query, write
from test_benchmark_items import NAMES, local_catalog

TEACHER = REPO / "tests" / "assets" / "tiny-teacher"
pytestmark = pytest.mark.slow


def _recipe(tmp: Path) -> Path:
    folder = local_catalog(tmp, NAMES)
    judge = tmp / "judge"  # the teacher with room for Arena-Hard's ~1,200-token judge prompt
    shutil.copytree(TEACHER, judge)
    cfg = json.loads((judge / "config.json").read_text())
    (judge / "config.json").write_text(json.dumps(cfg | {"max_position_embeddings": 4096}))
    tiny = yaml.safe_load((REPO / "evals" / "tiny.yaml").read_text())
    for entry in tiny.values():
        entry["path"] = str(REPO / "evals" / entry["path"])
    (folder / "tiny.yaml").write_text(yaml.safe_dump(tiny))
    return write(tmp / "bench.yaml", f"""
        extends: {REPO}/tests/assets/recipes/posttrain-rl.yaml
        name: bench-evals
        catalog: {{evals: {folder}}}
        evals:
          benchmarks: [math500, mmlu_redux, gpqa_diamond, humaneval_plus, mbpp_plus, livecodebench, ifeval]
          after: [reasoning_rl]
          modes: [no_think]
          samples: 1
          max_tokens: 48
          judge:
            path: {judge}
            max_tokens: 32
            baseline: {{path: {TEACHER}, max_tokens: 32}}
        """)


def _eval_job(recipe: Path, run: Path, overrides: list[str]):
    """The plan, and its eval job with the stage's export in place (the shipped teacher) and
    everything upstream marked done: the eval job alone runs."""
    from qwen3_recipe.compiler.plan import make_plan
    from qwen3_recipe.compiler.rundir import compile_run_dir
    from qwen3_recipe.recipe.validate import load_recipe
    from qwen3_recipe.runners import mark_done, start_clean
    plan = make_plan(load_recipe(str(recipe), overrides), run)
    compile_run_dir(plan)
    export = run / "jobs" / "posttrain.reasoning_rl" / "hf"
    if not export.exists():
        shutil.copytree(TEACHER, export)
    for p in plan.jobs:
        if p.job.kind != "eval":
            mark_done(plan, p)
    job = next(p for p in plan.jobs if p.job.name == "eval.reasoning_rl")
    start_clean(plan, job)
    return plan, job


def test_eval_job_scores_each_benchmark_by_its_metric(tmp_path):
    from qwen3_recipe.evals.job import run_eval
    recipe, run = _recipe(tmp_path), tmp_path / "run"
    plan, job = _eval_job(recipe, run, [])
    run_eval(job, plan)
    lines = (run / job.job.dir / "results.jsonl").read_text().splitlines()
    results = {r["benchmark"]: r for r in map(json.loads, lines)}
    assert set(results) == {"math500", "mmlu_redux", "gpqa_diamond", "humaneval_plus", "mbpp_plus", "livecodebench",
                            "ifeval"}
    assert results["ifeval"]["metric"] == "prompt_level_strict_acc"
    assert set(results["ifeval"]["metrics"]) >= {"prompt_level_loose_acc", "inst_level_strict_acc",
                                                 "inst_level_loose_acc"}
    assert all(results[b]["metric"] == "pass@1" for b in results if b != "ifeval")
    assert results["livecodebench"]["samples"] == 2  # the 2023 problem is outside v5's window
    rows = query(run, "select benchmark, prompt, text, extracted, verdict, metric, score, details from eval_samples")
    assert len(rows) == 2 + 2 + 2 + 1 + 1 + 2 + 2
    for bench, prompt, text, extracted, verdict, metric, score, details in rows:
        assert prompt and text is not None and metric == ("prompt_level_strict_acc" if bench == "ifeval" else "pass@1")
        assert score in (0.0, 1.0)
        assert verdict not in ("no_tests", "no_gold", "bad_gold")  # every sample was scorable
        json.loads(details)
    prompts = {}
    for b, p, *_ in rows:
        prompts.setdefault(b, []).append(p)
    assert any("A. 0\nB. 4\nC. 2\nD. 6" in p for p in prompts["mmlu_redux"])
    assert "def has_close_elements" in prompts["humaneval_plus"][0]
    view = query(run, "select benchmark, metric, value from eval_accuracy where benchmark = 'ifeval'")
    assert view[0][1] == "prompt_level_strict_acc"


def test_a_benchmark_that_cannot_be_scored_fails_the_job(tmp_path):
    """Arena-Hard with the tiny teacher as judge: a real judge run through vLLM, whose verdicts a
    1M-parameter model cannot write; the job fails with that reason instead of a green done."""
    from qwen3_recipe.evals.job import run_eval
    recipe, run = _recipe(tmp_path), tmp_path / "run"
    plan, job = _eval_job(recipe, run, ["evals.benchmarks=[arena_hard]"])
    with pytest.raises(RuntimeError, match="could not score arena_hard .*judge_failed"):
        run_eval(job, plan)
    rows = query(run, "select verdict, details from eval_samples")
    assert len(rows) == 2 and {v for v, _ in rows} <= {"judge_failed", "unclosed_think"}
    judged = [json.loads(d) for v, d in rows if v == "judge_failed"]
    assert judged and all(d["judge"].startswith(str((tmp_path / "judge").resolve())) for d in judged)  # who judged
    assert all(len(d["judgments"]) == 2 and not d["judgments"][0].startswith("(no judgment") for d in judged)
    cache = run / job.job.dir / "cache"
    assert cache.exists()  # the judge's and the baseline's generations are cached for a rerun


@pytest.mark.extended  # in `make test-all`, not CI: served generation equals in-process generation in CI
# through test_synth's served tests (the same InferenceRunner path)
def test_an_eval_served_by_a_vllm_server_scores_what_the_in_process_engine_scores(tmp_path):
    """evals.serving {type: vllm}: the same eval job through datatrove's InferenceRunner and a real
    vLLM server, its task run by the local executor and by datatrove's Ray executor on a local Ray
    instance; each sample's text, verdict and score equal the in-process run's."""
    from qwen3_recipe.evals.job import run_eval
    recipe = _recipe(tmp_path)
    rows = {}
    for name, sets in (("in_process", []), ("served", ["evals.serving={type: vllm}"]),
                       ("ray", ["evals.serving={type: vllm}", "execution.executor=ray"])):
        run = tmp_path / name
        plan, job = _eval_job(recipe, run, ["evals.benchmarks=[math500, mmlu_redux, humaneval_plus]", *sets])
        run_eval(job, plan)
        rows[name] = query(run, "select benchmark, prompt, text, extracted, verdict, score from eval_samples "
                                "order by benchmark, prompt")
    assert (tmp_path / "served" / "jobs" / "eval.reasoning_rl" / "served").is_dir()  # it went through the servers
    assert len(rows["served"]) == 5 and rows["served"] == rows["in_process"] == rows["ray"]
    (executor,) = (tmp_path / "ray" / "jobs" / "eval.reasoning_rl" / "served").glob("*/logs/executor.json")
    assert {"gpus_per_task", "nodes_per_task"} <= set(json.loads(executor.read_text()))  # Ray executor fields
