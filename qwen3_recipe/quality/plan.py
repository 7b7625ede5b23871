"""The compiled forms of `quality.annotate` (the annotator's engine and model, each dimension's rubric
and its generation settings, the sample, the classifiers' settings) and `quality.label` (the
classifiers, the label filters, sources, provenance sampling, executor). The runners in this package run these and
nothing else. No engine is imported here."""

from __future__ import annotations

from typing import Any

from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.launch.settings import executor_settings


def annotate_plan(p: PlannedJob, plan: Plan) -> dict[str, Any]:
    from qwen3_recipe.serving import keyed_model, serving_of
    from qwen3_recipe.synth.job import teacher_dir, teacher_id
    cfg = p.job.config
    serving = serving_of(plan.loaded.recipe, p.job.name)
    return {**{k: cfg[k] for k in ("quality", "sources", "curated", "seed")},
            "model": str(teacher_dir(plan, cfg["annotator"])),
            "model_id": keyed_model(teacher_id(plan, cfg["annotator"]), serving),
            "serving": serving,  # where requests go: not fingerprinted (but its engine arguments)
            "executor": executor_settings(plan, p.job.name)}


def label_plan(p: PlannedJob, plan: Plan) -> dict[str, Any]:
    from qwen3_recipe.quality.annotate import CLASSIFIERS
    cfg = p.job.config
    folder = (plan.run_dir / "jobs" / "quality.annotate" / CLASSIFIERS).resolve()
    executor = executor_settings(plan, p.job.name)
    if executor["type"] == "slurm":  # one sbatch job (launch/slurm.py): its pipeline runs inside, on its CPUs
        executor = {"type": "local", "workers": plan.loaded.recipe.execution.slurm.cpus_per_task}
    return {**{k: cfg[k] for k in ("sources", "curated", "filters", "kept_sample_rate")},
            "references": cfg.get("references") or {},
            "classifiers": {name: str(folder / name) for name in cfg["dimensions"]},
            "executor": executor}
