"""Which executor runs a data job's datatrove pipelines: `execution.executor` (lowered by
launch/settings.py) - local
worker processes, Ray, or a Slurm array job (launch/slurm_data.py). data/ describes the pipelines
and a job's stages (data/stages.py); this module decides where they run, and runs the stages here,
in order, for `qwen3-recipe run`."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from datatrove.executor import LocalPipelineExecutor

import qwen3_recipe.data  # noqa: F401 (quiet task logging in the workers, which import this module to unpickle)
from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.data.stages import Stage, stage_logs
from qwen3_recipe.launch.settings import executor_settings


class LocalExecutor(LocalPipelineExecutor):
    """datatrove's local executor. Defined in our package so that its worker processes, which unpickle
    it, import qwen3_recipe.data and with it the quiet task logging (data/logs.py). Its workers write
    to the running job's log: they fork from a server process that an earlier job may have started,
    with that job's stdout and stderr."""

    def __init__(self, *args, **kwargs) -> None:
        from qwen3_recipe.job_log import current_log
        super().__init__(*args, **kwargs)
        self.job_log, self.parent_pid = current_log(), os.getpid()

    def _launch_run_for_rank(self, rank: int, ranks_q, completed=None, completed_lock=None):
        if self.job_log and os.getpid() != self.parent_pid:
            from qwen3_recipe.job_log import point_output_at
            point_output_at(self.job_log)
        return super()._launch_run_for_rank(rank, ranks_q, completed, completed_lock)


def make_executor(plan: Plan, p: PlannedJob, pipeline: list, tasks: int, name: str = "",
                  settings: dict[str, Any] | None = None):
    """The executor for one datatrove pipeline of a job (`name`: its stage), from `settings`
    (launch/settings.py: a compiled job's; default: the recipe's `execution`)."""
    ex = settings or executor_settings(plan, p.job.name)
    if ex["type"] == "slurm":
        from qwen3_recipe.launch.slurm_data import slurm_executor
        return slurm_executor(ex, pipeline, tasks, stage_logs(plan, p, name), name)
    logs = stage_logs(plan, p, name)
    # -1: as many at once as the machine has cores (each worker is a process importing datatrove)
    workers = min(tasks, ex["workers"] if ex["workers"] > 0 else (os.cpu_count() or 1))
    if ex["type"] == "ray":
        _require(importlib.util.find_spec("ray") is not None, plan,
                 "the Ray executor needs Ray: pip install 'qwen3-recipe[ray]'")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home from a local instance
        if ex["ray_address"]:
            import ray
            ray.init(address=ex["ray_address"], ignore_reinit_error=True)  # else datatrove starts a local one
        from datatrove.executor import RayPipelineExecutor
        return RayPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=logs,
                                   skip_completed=True)
    return LocalExecutor(pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=logs, skip_completed=True)


def execute(plan: Plan, p: PlannedJob, stage: Stage) -> None:
    """Build the executor for one pipeline stage and run it under a progress display."""
    from qwen3_recipe.progress import spinner
    executor = make_executor(plan, p, stage.pipeline, stage.tasks, stage.name, stage.executor)
    label = f"{p.job.name}{' ' + stage.name if stage.name else ''}: {stage.tasks} task{'s' if stage.tasks != 1 else ''}"
    with spinner(f"[cyan]{label}[/]"):
        executor.run()


def run_stages(plan: Plan, p: PlannedJob, stages: list[Stage]) -> None:
    """The local way: glue in this process, pipelines on their executor, in order."""
    for stage in stages:
        if stage.call is not None:
            stage.call()
        else:
            execute(plan, p, stage)


def _require(ok: bool, plan: Plan, message: str) -> None:
    if not ok:
        from qwen3_recipe.errors import Problem, RecipeError
        path = ("execution", "executor")
        raise RecipeError([Problem(message, ".".join(path), plan.loaded.raw.smap.find(path))])
