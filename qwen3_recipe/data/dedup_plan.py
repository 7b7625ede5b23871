"""The compiled form of `data.dedup` (its lowered.json): the methods in the order they run, each
with the sources it covers, its datatrove settings and the task count a Slurm array gets; the
provenance sampling rate and the executor. data/dedup.py runs this and nothing else. No engine is
imported here."""

from __future__ import annotations

from typing import Any

from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.launch.settings import executor_settings

METHODS = ("exact", "minhash")


def dedup_plan(p: PlannedJob, plan: Plan) -> dict[str, Any]:
    """The lowerer of `data_dedup` jobs."""
    from qwen3_recipe.data.prepare_plan import input_files

    cfg, methods = p.job.config, []
    for method in (m for m in METHODS if cfg[m]["enabled"]):
        sources = cfg[method]["sources"]
        entry: dict[str, Any] = {
            "method": method, "step": len(methods) + 1, "sources": sources,
            # Slurm submits before the sources ran: each source task writes at most one file
            "slurm_tasks": sum(input_files(plan, plan[dep]) for dep in p.job.deps
                               if sources is None or dep.split(".", 1)[1] in sources)}
        if method == "minhash":
            entry["config"] = {k: cfg[method][k] for k in ("n_grams", "num_buckets", "hashes_per_bucket")}
        methods.append(entry)
    return {"inputs": list(p.job.deps), "methods": methods, "kept_sample_rate": cfg["kept_sample_rate"],
            "executor": executor_settings(plan, p.job.name)}
