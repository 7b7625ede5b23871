"""Serving of generation jobs (issue 16): what `plan` says, what the synth job is compiled with, and
the located refusals - settings that would change nothing, and teachers that cannot fit the GPUs
declared for them (weights + one sequence's KV cache per GPU)."""

from __future__ import annotations

import json

import pytest
from conftest import REPO, run_cli

from qwen3_recipe.errors import RecipeError
from qwen3_recipe.presets import resolve_arch
from qwen3_recipe.recipe.validate import load_recipe
from qwen3_recipe.serving import fit

TINY_JOB = "synth.jobs.cot_coldstart"


def _problems(*sets: str, recipe: str = "recipes/tiny.yaml") -> list[str]:
    with pytest.raises(RecipeError) as exc:
        load_recipe(recipe, list(sets))
    return [p.render() for p in exc.value.problems]


def test_the_flagship_teacher_is_served_tp8_with_experts_spread():
    proc = run_cli("plan", "recipes/qwen3.yaml", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    jobs = {j["name"]: j for j in json.loads(proc.stdout)["jobs"]}
    assert jobs["synth.fusion_think"]["serving"]["text"] == "vllm server, 64 tasks x 8 GPUs, tp=8 + EP"
    assert jobs["synth.cot_coldstart"]["serving"]["text"] == "vllm server, 64 tasks x 8 GPUs, tp=2 + dp=4"
    text = run_cli("plan", "recipes/qwen3.yaml").stdout
    assert "synth.fusion_think served by vllm server, 64 tasks x 8 GPUs, tp=8 + EP:" in text
    assert "hours wall-clock on 512 GPUs" in text


def test_a_teacher_that_cannot_fit_is_a_located_error_naming_the_degree_that_fits():
    problems = _problems("execution.serving.tp=4", recipe="recipes/qwen3.yaml")
    moe = [p for p in problems if "synth.fusion_think's model" in p]
    assert moe and "--set execution.serving.tp=4  execution.serving.tp:" in moe[0]  # where it was set
    assert "235B params" in moe[0] and "use tp=8" in moe[0]
    # the job's own serving key is the one named when the job sets it
    problems = _problems("synth.jobs.cot_coldstart.serving={tp: 1}", recipe="recipes/qwen3.yaml")
    assert any("synth.jobs.cot_coldstart.serving.tp" in p and "use tp=2" in p for p in problems), problems


def test_fit_counts_tensor_pipeline_and_expert_parallel_weights():
    moe = resolve_arch("Qwen3-235B-A22B", None)
    base = {"tp": 8, "dp": 1, "pp": 1, "expert_parallel": False}
    f8 = fit(moe, base, 80, 32768)
    assert abs(f8.weights_gb - moe.total_params * 2 / 8 / 1e9) < 1e-6
    # experts spread over tp x dp GPUs: with dp=2 each GPU holds half the experts
    ep = fit(moe, base | {"dp": 2, "expert_parallel": True}, 80, 32768)
    assert ep.weights_gb < f8.weights_gb and ep.kv_gb == f8.kv_gb
    assert fit(moe, base | {"pp": 2}, 80, 32768).weights_gb == pytest.approx(f8.weights_gb / 2)
    # 4 KV heads over tp=8: each GPU keeps one head, so KV does not shrink past tp=4
    assert fit(moe, base | {"tp": 4}, 80, 32768).kv_gb == f8.kv_gb


@pytest.mark.parametrize("sets,where,words", [
    ([f"{TINY_JOB}.serving={{tasks: 2}}"], f"{TINY_JOB}.serving.tasks", "in-process serving is one task"),
    (["execution.serving.dp=2"], "execution.serving.dp", "one model copy"),
    ([f"{TINY_JOB}.serving={{type: vllm, tp: 2, gpus_per_task: 1}}"], f"{TINY_JOB}.serving.gpus_per_task",
     "cannot hold"),
    ([f"{TINY_JOB}.serving={{type: vllm, gpus_per_task: 4}}"], f"{TINY_JOB}.serving.gpus_per_task", "idle"),
    ([f"{TINY_JOB}.serving={{type: vllm, max_model_len: 64}}"], f"{TINY_JOB}.serving.max_model_len",
     "cannot hold"),
    ([f"{TINY_JOB}.serving={{type: vllm, tp: 8, dp: 2}}", "execution.executor=slurm"], f"{TINY_JOB}.serving.tp",
     "spans nodes"),
    ([f"{TINY_JOB}.engine=transformers", f"{TINY_JOB}.serving={{type: vllm}}"], f"{TINY_JOB}.engine",
     "runs in process"),
    ([f"{TINY_JOB}.engine=transformers", f"{TINY_JOB}.serving={{max_concurrent: 8}}"],
     f"{TINY_JOB}.serving.max_concurrent", "no such setting"),
])
def test_serving_that_would_change_nothing_is_refused_where_it_was_set(sets, where, words):
    problems = _problems(*sets)
    assert any(where in p and words in p and "--set" in p for p in problems), problems


def test_expert_parallel_on_a_dense_teacher_is_refused():
    problems = _problems(f"{TINY_JOB}.serving={{type: vllm, expert_parallel: true}}")
    assert any("expert_parallel" in p and "dense" in p for p in problems), problems


def test_the_synth_artifact_carries_the_serving_and_its_fingerprint_does_not(tmp_path):
    from qwen3_recipe.compiler.lowerers import lowered_text
    from qwen3_recipe.compiler.plan import make_plan

    def compiled(*sets: str):
        plan = make_plan(load_recipe("recipes/tiny.yaml", list(sets)), tmp_path / "run")
        p = next(p for p in plan.jobs if p.job.name == "synth.cot_coldstart")
        return p.job.fingerprint, json.loads(lowered_text(p, plan))["lowered"]["engine"]["serving"]

    fp, serving = compiled()
    assert serving["type"] == "in_process" and serving["tasks"] == 1 and serving["gpus_per_task"] == 1
    fp2, served = compiled(f"{TINY_JOB}.serving={{type: vllm, tasks: 2, max_concurrent: 16}}")
    assert fp2 == fp  # the same dataset however it is served
    assert (served["type"], served["tasks"], served["max_concurrent"]) == ("vllm", 2, 16)


def test_the_small_models_235b_teacher_pass_is_served_tp8_with_experts_and_costed():
    """Off-policy distillation's teacher answers in a generation job of its own, served as declared."""
    proc = run_cli("plan", "recipes/qwen3-small.yaml", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    jobs = {j["name"]: j for j in json.loads(proc.stdout)["jobs"]}
    teacher = jobs["posttrain.distill_offpolicy.teacher"]
    assert teacher["kind"] == "distill_teacher"
    assert teacher["serving"] == {"text": "vllm server, 128 tasks x 8 GPUs, tp=8 + EP", "gpus": 1024}
    assert teacher["estimate"]["gen_flops"] > 0 and teacher["estimate"]["gpu_hours"] > 0
    stage = jobs["posttrain.distill_offpolicy"]
    assert "posttrain.distill_offpolicy.teacher" in stage["deps"] and stage["estimate"]["gen_flops"] == 0
    text = run_cli("plan", "recipes/qwen3-small.yaml").stdout
    assert "posttrain.distill_offpolicy.teacher served by vllm server, 128 tasks x 8 GPUs, tp=8 + EP:" in text
    assert "hours wall-clock on 1,024 GPUs" in text
    # the stages themselves still load the teacher on one device: said, not hidden
    assert "posttrain.distill_onpolicy loads its teacher (235B params" in " ".join(text.split())


def test_a_distillation_teacher_that_cannot_fit_its_serving_is_a_located_error():
    stage = "posttrain.stages.distill_offpolicy"
    problems = _problems(f"{stage}.serving={{tp: 2, dp: 1, expert_parallel: true}}", recipe="recipes/qwen3-small.yaml")
    hit = [p for p in problems if "posttrain.distill_offpolicy.teacher's model" in p]
    assert hit and f"{stage}.serving.tp" in hit[0] and "use tp=8" in hit[0], problems


def test_the_teacher_pass_artifact_asks_vllm_for_raw_top_k_and_keeps_the_stage_prompts(tmp_path):
    from qwen3_recipe.compiler.lowerers import lowered_text
    from qwen3_recipe.compiler.plan import make_plan

    def compiled(*sets: str):
        plan = make_plan(load_recipe("recipes/tiny-student.yaml", list(sets)), tmp_path / "run")
        jobs = {p.job.name: p for p in plan.jobs}
        out = {n: (jobs[n].job.fingerprint, json.loads(lowered_text(jobs[n], plan))["lowered"])
               for n in ("posttrain.distill_offpolicy.teacher", "posttrain.distill_offpolicy")}
        return out

    base = compiled()
    fp, teacher = base["posttrain.distill_offpolicy.teacher"]
    _, stage = base["posttrain.distill_offpolicy"]
    assert teacher["engine"]["serving"]["extra_args"] == {"logprobs-mode": "raw_logprobs", "max-logprobs": 20}
    assert teacher["top_k"] == 20 and set(teacher["modes"]) == {"think", "no_think"}
    for key in ("decontamination", "heldout"):  # the stage's own split: no held-out prompt is a target
        assert teacher[key] == stage[key]
    assert teacher["prompts"].items() <= stage["prompts"].items()
    assert stage["teacher_samples"].endswith("jobs/posttrain.distill_offpolicy.teacher/samples.jsonl")
    served = compiled("posttrain.stages.distill_offpolicy.serving={type: vllm, tasks: 2}")
    assert served["posttrain.distill_offpolicy.teacher"][0] == fp  # the same samples however they are served
    assert served["posttrain.distill_offpolicy.teacher"][1]["engine"]["serving"]["tasks"] == 2
    student = compiled("posttrain.stages.distill_offpolicy.lr=1e-2", "posttrain.stages.distill_offpolicy.epochs=3")
    assert student["posttrain.distill_offpolicy.teacher"][0] == fp  # the student's settings: not a new pass
    assert student["posttrain.distill_offpolicy"][0] != base["posttrain.distill_offpolicy"][0]
    more = compiled("posttrain.stages.distill_offpolicy.top_k=32")
    assert more["posttrain.distill_offpolicy.teacher"][0] != fp
    assert more["posttrain.distill_offpolicy.teacher"][1]["engine"]["serving"]["extra_args"]["max-logprobs"] == 32


def test_engine_arguments_that_may_change_answers_are_fingerprinted_and_key_the_requests(tmp_path):
    """`extra_args` go to vLLM verbatim (a dtype, a quantisation): a job with other ones is another job,
    and its requests other cache entries; where and how widely it is served stays out."""
    from qwen3_recipe.compiler.lowerers import lowered_text
    from qwen3_recipe.compiler.plan import make_plan

    def compiled(*sets: str):
        plan = make_plan(load_recipe("recipes/tiny.yaml", list(sets)), tmp_path / "run")
        p = next(p for p in plan.jobs if p.job.name == "synth.cot_coldstart")
        return p.job.fingerprint, json.loads(lowered_text(p, plan))["lowered"]["engine"]["model_id"]

    fp, model_id = compiled()
    assert "+args:" not in model_id
    fp_wide, id_wide = compiled(f"{TINY_JOB}.serving={{type: vllm, tasks: 2}}")
    assert (fp_wide, id_wide) == (fp, model_id)
    fp_args, id_args = compiled(f"{TINY_JOB}.serving={{extra_args: {{dtype: bfloat16}}}}")
    assert fp_args != fp and id_args.startswith(model_id + "+args:")
    fp_exec, id_exec = compiled("execution.serving.extra_args={dtype: bfloat16}")
    assert (fp_exec, id_exec) == (fp_args, id_args)  # the same arguments, wherever they are declared


def test_throughput_flags_keep_the_fingerprint_and_a_user_max_logprobs_never_drops_below_top_k(tmp_path):
    from qwen3_recipe.compiler.lowerers import lowered_text
    from qwen3_recipe.compiler.plan import make_plan

    def compiled(*sets: str, recipe="recipes/tiny.yaml", job="synth.cot_coldstart"):
        plan = make_plan(load_recipe(recipe, list(sets)), tmp_path / "run")
        p = next(p for p in plan.jobs if p.job.name == job)
        return p.job.fingerprint, json.loads(lowered_text(p, plan))["lowered"]["engine"]

    fp, engine = compiled()
    fp2, engine2 = compiled(f"{TINY_JOB}.serving={{extra_args: {{max-num-batched-tokens: 4096, "
                            "gpu-memory-utilization: 0.8}}")
    assert (fp2, engine2["model_id"]) == (fp, engine["model_id"])  # sizes the engine: the same answers
    _, teacher = compiled("posttrain.stages.distill_offpolicy.top_k=32",
                          "posttrain.stages.distill_offpolicy.serving={extra_args: {max-logprobs: 5}}",
                          recipe="recipes/tiny-student.yaml", job="posttrain.distill_offpolicy.teacher")
    assert teacher["serving"]["extra_args"]["max-logprobs"] == 32


def test_a_distillation_teacher_with_another_vocabulary_or_a_stage_named_like_a_teacher_pass_is_refused(tmp_path):
    problems = _problems("posttrain.stages.distill_offpolicy.teacher.arch.vocab_size=1000",
                         recipe="recipes/tiny-student.yaml")
    assert any("posttrain.stages.distill_offpolicy.teacher" in p and "vocabulary (1,000)" in p for p in problems)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"extends: {REPO / 'recipes/tiny-student.yaml'}\nposttrain:\n  stages:\n"
                      "    distill_offpolicy.teacher: {type: sft, data: [cot_coldstart]}\n")
    problems = _problems(recipe=str(recipe))
    assert any("r.yaml:4" in p and "cannot end in '.teacher'" in p for p in problems), problems


def test_a_sample_that_lost_its_log_probabilities_is_an_error_not_one_hot_targets():
    from qwen3_recipe.synth.generate import top_k_lists
    got = top_k_lists([5, 7], [{5: -0.1, 3: -2.5}, None], 3)  # the second: a token a budget inserted
    assert got == {"top_ids": [[5, 3, 3], [7, 7, 7]], "top_logps": [[-0.1, -2.5, -2.5], [0.0, 0.0, 0.0]]}
    with pytest.raises(RuntimeError, match="no log-probabilities"):
        top_k_lists([5, 7], None, 3)
