"""The executor a data job's datatrove pipelines run on, lowered from `execution.*` into plain JSON
(a compiled job's artifact holds it; launch/executors.py and launch/slurm_data.py build the
executor from it). No engine is imported here: compiling a plan stays light."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qwen3_recipe.compiler.plan import Plan


def executor_settings(plan: Plan, job_name: str) -> dict[str, Any]:
    """{type, workers (-1: as many as the machine has cores, decided where it runs), and the Ray
    address or the Slurm resources for those executors}."""
    ex = plan.loaded.recipe.execution
    out: dict[str, Any] = {"type": ex.executor, "workers": ex.workers}
    if ex.executor == "ray":
        out["ray_address"] = ex.ray.address
    if ex.executor == "slurm":
        out["slurm"] = ex.slurm.model_dump(mode="json") | {"job_name": f"{plan.loaded.recipe.name}-{job_name}"}
    return out
