"""Runners for the data jobs: lower to datatrove, execute (local or Ray), refresh the run's
provenance database. On Slurm the same stages are submitted as array jobs instead
(launch/slurm_data.py), with executors from `make_executor`."""

from __future__ import annotations

import importlib.util
import os

from datatrove.executor import LocalPipelineExecutor

from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.data.prepare import input_files, prepare_pipeline
from qwen3_recipe.data.stages import Stage, run_stages
from qwen3_recipe.provenance.database import build_database


class LocalExecutor(LocalPipelineExecutor):
    """datatrove's local executor. Defined here so that its worker processes, which unpickle it,
    import this package and with it the quiet task logging (qwen3_recipe/data/__init__.py)."""


def quiet_datatrove() -> None:
    """Terminal output of data jobs: our progress display, datatrove's warnings, no tqdm bars
    (the task logs in jobs/<job>/logs keep everything)."""
    import qwen3_recipe.data  # noqa: F401 (installs the quiet task logging)
    os.environ.setdefault("TQDM_DISABLE", "1")


def make_executor(plan: Plan, p: PlannedJob, pipeline: list, tasks: int, name: str = ""):
    """The recipe's executor for one datatrove pipeline of a job."""
    ex = plan.loaded.recipe.execution
    logs = str(plan.run_dir / p.job.dir / "logs" / name) if name else str(plan.run_dir / p.job.dir / "logs")
    # -1: as many at once as the machine has cores (each worker is a process importing datatrove)
    workers = min(tasks, ex.workers if ex.workers > 0 else (os.cpu_count() or 1))
    if ex.executor == "slurm":  # an array job; -1: no limit on tasks running at once
        from qwen3_recipe.launch.slurm_data import slurm_executor
        return slurm_executor(plan, p, pipeline, tasks, min(tasks, ex.workers) if ex.workers > 0 else -1, logs, name)
    if ex.executor == "ray":
        _require(importlib.util.find_spec("ray") is not None, plan,
                 "the Ray executor needs Ray: pip install 'qwen3-recipe[ray]'")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home from a local instance
        if ex.ray.address:
            import ray
            ray.init(address=ex.ray.address, ignore_reinit_error=True)  # else datatrove starts a local one
        from datatrove.executor import RayPipelineExecutor
        return RayPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=logs,
                                   skip_completed=True)
    return LocalExecutor(pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=logs, skip_completed=True)


def execute(plan: Plan, p: PlannedJob, pipeline: list, tasks: int, name: str = "") -> None:
    """Build the executor for one pipeline and run it under a progress display."""
    from qwen3_recipe.cli.render import console
    executor = make_executor(plan, p, pipeline, tasks, name)
    label = f"{p.job.name}{' ' + name if name else ''}: {tasks} task{'s' if tasks != 1 else ''}"
    with console().status(f"[cyan]{label}[/]"):
        executor.run()


def _require(ok: bool, plan: Plan, message: str) -> None:
    if not ok:
        from qwen3_recipe.errors import Problem, RecipeError
        path = ("execution", "executor")
        raise RecipeError([Problem(message, ".".join(path), plan.loaded.raw.smap.find(path))])


def prepare_stages(p: PlannedJob, plan: Plan) -> list[Stage]:
    return [Stage("", prepare_pipeline(plan, p, decont_step(plan, p)), input_files(plan, p))]


def run_prepare(p: PlannedJob, plan: Plan) -> None:
    quiet_datatrove()
    run_stages(plan, p, prepare_stages(p, plan))
    build_database(plan.run_dir)


def decont_step(plan: Plan, p: PlannedJob):
    """The decontamination filter for a data job, with its n-gram index built once per run."""
    cfg = plan.loaded.recipe.data.decontamination
    benchmarks = p.job.config["decontamination"] and sorted(
        k.split(":", 1)[1] for k in p.job.inputs if k.startswith("benchmark:"))
    if not benchmarks:
        return None
    from qwen3_recipe.data.decont_index import DecontIndexBuilder
    if cfg.method == "datatrove":
        from datatrove.pipeline.decont.n_grams import NGramsDecontConfig

        from qwen3_recipe.data.decont_datatrove import DatatroveDecontFilter
        folder = DecontIndexBuilder(plan).datatrove_index(benchmarks, cfg)
        return DatatroveDecontFilter(str(folder), config=NGramsDecontConfig(n_grams=cfg.n or 13))
    index = DecontIndexBuilder(plan).index_path(benchmarks, cfg)
    from qwen3_recipe.data.decont import DecontaminationFilter
    return DecontaminationFilter(str(index), action=cfg.action)
