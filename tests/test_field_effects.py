"""Every recipe field changes what runs (issue 14). Each leaf of the resolved tiny and qwen3 recipes
is perturbed alone (tests/field_effects.py walks the validated model, so a new field is covered
without editing this file) and the plan is compared with the unperturbed one:

- a job of a lowered kind whose own config changed must get another lowered artifact (what the
  engine is told), unless a parent changed (its input data moved, not its instructions): a field
  that reaches a job's config but not its engine fails here (delete the lowering of seq_len_start
  and this test fails on pretrain.stages.s2_reasoning.seq_len_start);
- a leaf that changes nothing at all must be listed in NO_EFFECT with its reason;
- a leaf that changes only jobs of kinds not yet lowered is allowed only for the kinds in
  NOT_YET_LOWERED, which must be exactly the kinds without a lowerer (lowering one shrinks it);
- a leaf no perturbation of which validates is listed in NOT_PERTURBED with its reason.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from qwen3_recipe.compiler.lowerers import lowerer_for
from qwen3_recipe.compiler.plan import make_plan
from qwen3_recipe.recipe.validate import load_recipe
from tests.field_effects import Effect, effects

pytestmark = pytest.mark.slow  # ~1-3 min per recipe: hundreds of plans

RECIPES = ["recipes/tiny.yaml", "recipes/qwen3.yaml"]

NO_EFFECT = {
    "name": "names the run (default run_dir) and the model when model.name is unset",
    "description": "documentation", "*.description": "documentation",
    "model.arch.norm_topk_prob": "MoE routing only: these recipes are dense (tests/test_moe.py covers it)",
    "pretrain.stages.s1_general.init": "the first stage has no previous stage to start from",
    "model.arch.rope_theta": "every pretraining stage of these recipes sets its own rope_theta",
    "posttrain.stages.*.tokens": "an SFT stage's token count feeds plan's estimates only",
    "execution.hardware.*": "feeds plan's estimates only",
    "*.expected_tokens": "feeds plan's estimates only (kept out of fingerprints)",
    "*.teacher.arch.*": "a teacher's size, for estimates and the larger-than-student check; its weights are its path",
    "*.teacher.preset": "a teacher's size, for estimates and the larger-than-student check; its weights are its path",
    "synth.jobs.*.soft_switch": "a single-mode job has no switch to flag (kept out of its config; mode both lowers it)",
    "execution.slurm.*": "the Slurm launcher's sbatch header, written at submission (tests/test_slurm.py)",
    "outputs.run_dir": "where the run directory is; the test fixes it",
    "execution.tasks": "capped by a source's files: tiny's sources are one file each (qwen3.yaml's data jobs change)",
    "*.serving.gpus_per_task": "only tp x dp x pp validates (anything else is refused), and that is its default",
    "synth.jobs.*.serving.type": "unset in qwen3.yaml's job (execution.serving's vllm applies): the only value that "
                                 "validates with its dp=4 is that same vllm",
    "execution.ray.address": "the Ray executor's only (these recipes run locally; test_data_ray.py runs it)",
    "execution.ray.workers": "the Ray executor's TRL stages only, read when the stage runs (test_trl_accelerate.py "
                             "runs them as Ray Train workers; test_rollout_servers.py checks the count)",
    "execution.rollout.*": "where RL rollouts are sampled, not what: read when the stage runs (servers started, "
                           "sbatch nodes; test_trl_served.py finds the colocated rollouts, test_slurm.py the nodes)",
}

NOT_PERTURBED = {
    "catalog.*": "folders holding the catalogs; another catalog is another folder",
    "model.preset": "exclusive with model.arch in these recipes (test_presets.py covers presets)",
    "model.arch": "set whole by the preset in qwen3.yaml",
    "model.arch.num_experts": "MoE needs its other fields at once (tests/test_moe.py)",
    "tokenizer.type": "another tokenizer type needs other fields (test_tokenizer.py)",
    "tokenizer.sources": "unset: all sources",
    "*.sources": "unset means all sources; naming one needs a source that exists (test_data_prepare.py)",
    "data.filters.*.type": "another filter type needs other fields",
    "data.filters.*.extra_*": "unset lists of extra blocked domains/urls",
    "data.decontamination.benchmarks": "'all'; a list needs benchmark names (test_data_contamination.py)",
    "data.mixtures.*.length_buckets*": "bucket shares sum to 1 and buckets may not overlap",
    "data.filters.*.dimension": "a label filter's dimension must be one of data.quality's, of its kind (test_quality.py)",
    "data.filters.*.min": "qwen3.yaml's label filter reads a label set: min/max/other values are refused or absent",
    "data.filters.*.max": "qwen3.yaml's label filter reads a label set: min/max/other values are refused or absent",
    "data.filters.*.values": "qwen3.yaml's label filter keeps [safe]: another value of the set is a perturbation "
                             "the walker does not make (test_quality.py filters by labels)",
    "data.quality.annotator.*": "preset/arch/stage beside qwen3.yaml's annotator path: exclusive or unsized "
                                "(test_quality.py runs annotators)",
    "data.quality.engine": "qwen3.yaml's annotator is served (execution.serving): in-process engines are refused",
    "data.quality.dimensions.*": "a dimension is a scale or a label set, not both; rubrics are checked templates "
                                 "(test_quality.py)",
    "data.quality.serving": "unset: execution.serving applies (test_serving.py)",
    "data.quality.classifier.type": "one classifier type is built",
    "data.languages": "lowered before validation into sources, filters and weights: empty once resolved "
                      "(tests/test_languages.py)",
    "data.sources.*.synth": "a dataset source given a synth job too is refused (one origin); tiny's other synth "
                            "job, fusion_mix, is taught by a stage the cot source feeds: a cycle (test_synth_source.py)",
    "data.sources.*.format": "renders a synth job's samples: refused on a dataset source (test_synth_source.py)",
    "data.sources.*.dataset": "on a synth source, a dataset beside it is refused (one origin)",
    "synth.jobs.*.teacher.*": "a teacher is a stage or a preset/arch/path, set together",
    "synth.jobs.*.verifier*": "another verifier needs its own fields",
    "synth.jobs.*.multi_turn_share": "multi-turn needs a multi-turn prompt set",
    "synth.jobs.*.keep_per_prompt": "bounded by samples_per_prompt",
    "synth.jobs.fusion_no_think.thinking_budget": "refused on a no_think job (it would do nothing)",
    "pretrain.optimizer.name": "one optimizer (adamw)",
    "pretrain.stages.*.lr": "unset: the stage uses pretrain.lr (perturbed there)",
    "pretrain.stages.*.batch_tokens": "unset: the stage uses pretrain.batch_tokens (perturbed there)",
    "pretrain.stages.*.seq_len_start": "unset on the last stage: a start below the previous stage's length is refused",
    "posttrain.stages.*.type": "another stage type needs other fields",
    "posttrain.stages.*.verifier.type": "another verifier needs its own fields",
    "posttrain.stages.*.rewards.*": "a reward's path/verifier/type come together",
    "evals.after": "reordering or dropping stages: checked by test_compiler.py",
    "evals.judge*": "the judge server's architecture (estimates)",
    "execution.slurm.sbatch_args": "an unset list of extra sbatch arguments",
    "synth.jobs.*.engine": "qwen3.yaml serves on vLLM servers: other engines run in process (refused: test_serving.py)",
    "synth.jobs.*.serving.expert_parallel": "refused for a dense teacher (test_serving.py)",
    "synth.jobs.*.serving.extra_args": "an empty mapping of extra server flags",
    "execution.serving.type": "qwen3.yaml's teachers need servers (in_process refuses tasks; endpoint needs a URL)",
    "evals.serving": "unset: evals are served as execution.serving says (test_eval_benchmarks.py sets it)",
    "synth.jobs.*.serving": "unset: the job is served as execution.serving says (test_serving.py sets it)",
    "execution.hardware.accelerator": "another name needs its memory_gb for the serving fit check",
    "*.serving.gpus_per_task": "only tp x dp x pp validates (its default; test_serving.py)",
    "*.serving.max_model_len": "qwen3.yaml's 32K max_tokens: a window the perturbation picks cannot hold it "
                               "(refused: test_serving.py)",
    "execution.serving.tp": "qwen3.yaml on Slurm: tp 8 fills a node (more spans nodes: refused), less cannot "
                            "hold the 235B teacher (refused)",
    "execution.serving.pp": "qwen3.yaml on Slurm: pp 2 at tp 8 spans nodes (refused: test_serving.py)",
    "execution.serving.dp": "in-process serving is one model copy (refused: test_serving.py)",
    "execution.serving.tasks": "in-process serving is one task (refused: test_serving.py; test_synth.py runs 2)",
    "execution.serving.expert_parallel": "refused for a dense teacher (test_serving.py)",
    "execution.serving.extra_args": "an empty mapping of extra server flags",
}


def _match(leaf: str, table: dict[str, str]) -> str | None:
    return next((p for p in table if fnmatch.fnmatchcase(leaf, p)), None)


@pytest.fixture(scope="module", params=RECIPES)
def found(request, tmp_path_factory) -> tuple[str, list[Effect]]:
    return request.param, effects(Path(request.param), tmp_path_factory.mktemp("fe") / "run")


def test_a_field_that_reaches_a_job_reaches_its_engine(found):
    recipe, found_effects = found
    lost = {e.leaf: sorted(e.lost) for e in found_effects if e.lost and not _match(e.leaf, NO_EFFECT)}
    assert not lost, f"{recipe}: these fields change a job's config but not what its engine is told: {lost}"


def test_every_field_changes_something_or_says_why_not(found):
    recipe, found_effects = found
    silent = [e.leaf for e in found_effects if e.kind == "none" and not _match(e.leaf, NO_EFFECT)]
    assert not silent, f"{recipe}: fields that change nothing (lower them, refuse them, or list why): {silent}"
    untried = [e.leaf for e in found_effects if e.kind == "invalid" and not _match(e.leaf, NOT_PERTURBED)]
    assert not untried, f"{recipe}: no perturbation of these validates; list why in NOT_PERTURBED: {untried}"


def test_only_kinds_not_yet_lowered_hide_a_field(found):
    recipe, found_effects = found
    plan = make_plan(load_recipe(recipe))
    kinds = {p.job.name: p.job.kind for p in plan.jobs}
    unlowered = {p.job.kind for p in plan.jobs if lowerer_for(p.job.kind) is None}
    hidden = {kinds[j] for e in found_effects if e.kind == "unlowered" for j in e.unlowered}
    assert hidden <= unlowered
    # every kind is compiled into lowered.json: every field is proven to reach what runs
    assert not unlowered


def test_the_lists_name_only_fields_that_exist():
    leaves = set()
    for recipe in RECIPES:
        from tests.field_effects import leaves as walk
        data = load_recipe(recipe).recipe.model_dump(mode="json", exclude={"extends"})
        leaves |= {".".join(map(str, path)) for path, _ in walk(data)}
    stale = [p for p in {**NO_EFFECT, **NOT_PERTURBED} if not any(fnmatch.fnmatchcase(leaf, p) for leaf in leaves)]
    assert not stale, f"entries matching no field of {RECIPES}: {stale}"
