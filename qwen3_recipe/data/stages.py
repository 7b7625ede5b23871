"""A data job as a static list of stages: datatrove pipelines (with their task counts) and the small
Python steps between them ("glue": a listing of files to read, a mixture plan). Locally the stages
run one after the other in this process (qwen3_recipe/launch/executors.py); on Slurm each becomes an
array job that waits for the one before it (qwen3_recipe/launch/slurm_data.py), a glue step a
one-task job running `Glue`. This module only describes them: it runs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from datatrove.pipeline.base import PipelineStep

if TYPE_CHECKING:
    from qwen3_recipe.compiler.plan import Plan, PlannedJob


class Call:
    """A picklable call of a module-level function, named shortly in datatrove's executor.json
    (its arguments may hold the whole plan)."""

    def __init__(self, fn: Callable, *args: Any):
        self.fn, self.args = fn, args

    def __call__(self) -> Any:
        return self.fn(*self.args)

    def __repr__(self) -> str:
        return f"{self.fn.__module__}.{self.fn.__qualname__}"


@dataclass
class Stage:
    name: str                  # the logs subfolder (jobs/<job>/logs/<name>); "" = logs/ itself
    pipeline: list | None = None
    tasks: int = 1
    call: Call | None = None   # glue instead of a pipeline
    executor: dict | None = None  # compiled executor settings (launch/settings.py); None: the recipe's


class Glue(PipelineStep):
    """A glue call as a pipeline step, for executors that only run pipelines (Slurm)."""

    name = "glue"
    type = "🔧 - GLUE"

    def __init__(self, call: Call):
        super().__init__()
        self.call = call

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        if data:
            yield from data  # earlier glue steps of the same pipeline first
        self.call()


def stage_logs(plan: Plan, p: PlannedJob, name: str) -> str:
    """A stage's datatrove logging dir: jobs/<job>/logs/<name>, or jobs/<job>/logs for name ""."""
    logs = plan.run_dir / p.job.dir / "logs"
    return str(logs / name if name else logs)
