"""Lowerers turn a planned job into what its engine is told (a torchtitan job, a datatrove pipeline,
a generation plan): plain JSON, written by `compile` as `jobs/<job>/lowered.json`. `run` executes
that file and nothing else, so what a user inspects after `compile` is what runs (as `dbt compile`
shows the SQL). Lowerers register by job kind; engines' modules load lazily (planning imports no
engine). Third-party lowerers register through the `qwen3_recipe.lowerers` entry-point group."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qwen3_recipe.compiler.plan import Plan, PlannedJob

Lowerer = Callable[["PlannedJob", "Plan"], dict[str, Any]]
LOWERERS: dict[str, Lowerer] = {}
LOWERED_FILE = "lowered.json"
LOWERER_MODULES = {
    "data_prepare": "qwen3_recipe.data.prepare_plan:prepare_plan",
    "data_dedup": "qwen3_recipe.data.dedup_plan:dedup_plan",
    "data_mix": "qwen3_recipe.data.mix_plan:mix_plan",
    "tokenizer": "qwen3_recipe.tokenizer.plan:tokenizer_plan",
    "quality_annotate": "qwen3_recipe.quality.plan:annotate_plan",
    "quality_label": "qwen3_recipe.quality.plan:label_plan",
    "pretrain": "qwen3_recipe.train.pretrain:stage_job",
    "synth": "qwen3_recipe.synth.plan:generation_plan",
    "eval": "qwen3_recipe.synth.plan:eval_plan",
    "sft": "qwen3_recipe.train.sft_plan:sft_plan",
    "fusion": "qwen3_recipe.train.sft_plan:sft_plan",
    **{kind: "qwen3_recipe.posttrain.stage_plan:stage_plan"
       for kind in ("reasoning_rl", "general_rl", "distill_offpolicy", "distill_onpolicy")},
    "distill_teacher": "qwen3_recipe.posttrain.stage_plan:teacher_plan",
}


def register(kind: str) -> Callable[[Lowerer], Lowerer]:
    def wrap(fn: Lowerer) -> Lowerer:
        LOWERERS[kind] = fn
        return fn
    return wrap


def lowerer_for(kind: str) -> Lowerer | None:
    if kind not in LOWERERS:
        if kind in LOWERER_MODULES:
            import importlib
            module, _, name = LOWERER_MODULES[kind].partition(":")
            LOWERERS[kind] = getattr(importlib.import_module(module), name)
        else:
            from importlib.metadata import entry_points
            for ep in entry_points(group="qwen3_recipe.lowerers"):
                if ep.name == kind:
                    LOWERERS[kind] = ep.load()
    return LOWERERS.get(kind)


def lowered_text(p: "PlannedJob", plan: "Plan") -> str | None:
    """The job's artifact as the file `compile` writes, stamped with the job's fingerprint."""
    lower = lowerer_for(p.job.kind)
    if lower is None:
        return None
    artifact = {"job": p.job.name, "kind": p.job.kind, "fingerprint": p.job.fingerprint,
                "lowered": lower(p, plan)}
    return json.dumps(artifact, indent=2, sort_keys=True) + "\n"


def load_lowered(p: "PlannedJob", plan: "Plan") -> dict[str, Any]:
    """What `compile` wrote for this job. A missing or stale file (another fingerprint) is an error:
    nothing is re-derived from the recipe at run time."""
    path = Path(plan.run_dir) / p.job.dir / LOWERED_FILE
    try:
        artifact = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"{p.job.name}: no compiled artifact at {path} ({exc}); "
                           "run `qwen3-recipe compile` (a Slurm job: submit it again)") from None
    if artifact.get("fingerprint") != p.job.fingerprint:
        raise RuntimeError(f"{p.job.name}: {path} was compiled for another version of the job "
                           f"({artifact.get('fingerprint')}, not {p.job.fingerprint}); run `qwen3-recipe compile` "
                           "(a Slurm job: submit it again)")
    lowered = artifact["lowered"]
    if isinstance(lowered, dict) and "dump_folder" in lowered:  # where the engine writes: this job's folder
        from qwen3_recipe.safe_paths import inside_run_dir, job_folder
        inside_run_dir(job_folder(plan.run_dir, p.job.dir), Path(lowered["dump_folder"]))
    return lowered
