"""Slurm lowering of the data jobs: each stage of a job (data/stages.py) becomes a
`datatrove.executor.SlurmPipelineExecutor` array job - tasks, workers as the array's concurrency,
the recipe's `execution.slurm` resources, logs in jobs/<job>/logs/<stage> - that waits (`afterok`)
for the stage before it, and a job's first stage for the last stage of every upstream job.

Glue between pipelines (a listing of the files to read, the mixture plan, publishing the dedup
output) runs as a one-task array job of `Glue` steps; a last `finish` step merges the task stats,
refreshes provenance.duckdb and writes the job's done marker, as the local runner does.

Reruns: a job whose done marker holds its fingerprint is not submitted at all. Otherwise datatrove
submits an array only for the tasks without a completion marker in its logging dir (none when all
are done, and the next stage then waits for what was submitted before it); glue always reruns.
"""

from __future__ import annotations

import importlib
import json
import shlex
import sys
from pathlib import Path

from datatrove.executor import SlurmPipelineExecutor

import qwen3_recipe.data  # noqa: F401 (quiet task logging on the nodes, which import this module to unpickle)
from qwen3_recipe.compiler.lowerers import load_lowered
from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.data.logs import quiet_datatrove
from qwen3_recipe.data.stages import Call, Glue, Stage, stage_logs

STAGES = {
    "data_prepare": "qwen3_recipe.data.runner:prepare_stages",
    "data_dedup": "qwen3_recipe.data.dedup:slurm_stages",
    "data_mix": "qwen3_recipe.data.mix:mix_stages",
}


class SlurmExecutor(SlurmPipelineExecutor):
    """datatrove's Slurm executor, without unset directives and without its extra stats-merging job
    per array (the job's finish step merges them)."""

    def get_sbatch_args(self, max_array: int = 1) -> dict:
        return {k: v for k, v in super().get_sbatch_args(max_array).items() if v is not None}

    def launch_merge_stats(self) -> None:
        pass


def slurm_executor(ex: dict, pipeline: list, tasks: int, logs: str, name: str) -> SlurmExecutor:
    """The array job for one pipeline of a job (`name`: its stage; `ex`: its executor settings,
    launch/settings.py); also what `make_executor` (launch/executors.py) returns for Slurm."""
    slurm = ex["slurm"]
    workers = min(tasks, ex["workers"]) if ex["workers"] > 0 else -1  # -1: no limit on tasks running at once
    options = dict(_option(arg) for arg in slurm["sbatch_args"])
    if slurm["account"]:
        options.setdefault("account", slurm["account"])
    mem = slurm["mem_per_cpu_gb"]
    if mem != int(mem):  # datatrove writes whole gigabytes
        options.setdefault("mem-per-cpu", f"{round(mem * 1024)}M")
    env = (f"cd {shlex.quote(str(Path.cwd()))} || exit 1; "
           f"export PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH OMP_NUM_THREADS=1 TQDM_DISABLE=1")
    return SlurmExecutor(
        pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=logs, skip_completed=True,
        job_name=slurm["job_name"] + (f"-{name}" if name else ""),
        time=slurm["time"], partition=slurm["partition"], qos=slurm["qos"] or "", cpus_per_task=slurm["cpus_per_task"],
        mem_per_cpu_gb=int(mem), sbatch_args=options, env_command=env)


def _option(arg: str) -> tuple[str, str]:
    """`--constraint=cpu` -> ("constraint", "cpu"); `--exclusive` -> ("exclusive", "")."""
    key, _, value = arg.lstrip("-").partition("=")
    return key, value


def stages_for(p: PlannedJob, plan: Plan) -> list[Stage]:
    """The job's stages, the last glue step joined by `finish`."""
    module, _, name = STAGES[p.job.kind].partition(":")
    stages = getattr(importlib.import_module(module), name)(p, plan)
    done = Call(finish, p, plan)
    if stages and stages[-1].call is not None:
        last = stages.pop()
        return stages + [Stage(last.name, [Glue(last.call), Glue(done)])]
    return stages + [Stage("finish", [Glue(done)])]


def submit_data_job(plan: Plan, p: PlannedJob, after: list[str]) -> list[tuple[str, str]]:
    """Submit one data job's stages in order, the first after the Slurm jobs `after`. Returns
    (stage, Slurm job id) for each array submitted."""
    quiet_datatrove()
    submitted = []
    # glue stages too run on the executor compiled into the job's artifact, not today's recipe
    compiled = load_lowered(p, plan)["executor"]
    for stage in stages_for(p, plan):
        pipeline = [Glue(stage.call)] if stage.call is not None else stage.pipeline
        settings = stage.executor or compiled
        executor = slurm_executor(settings, pipeline, stage.tasks, stage_logs(plan, p, stage.name), stage.name)
        executor.skip_completed = not any(isinstance(step, Glue) for step in pipeline)
        executor.depends_job_id = ":".join(after) or None
        executor.launch_job()  # datatrove: pickles the executor, writes the script, calls sbatch
        if executor.job_id != -1:  # -1: every task had completed
            after = [str(executor.job_id)]
            submitted.append((stage.name or "pipeline", after[0]))
    return submitted


def finish(p: PlannedJob, plan: Plan) -> None:
    """The last step of a data job on Slurm: what the local runner does after the pipelines."""
    from datatrove.utils.stats import PipelineStats

    from qwen3_recipe.provenance.database import build_database
    from qwen3_recipe.runners import mark_done
    for folder in sorted((plan.run_dir / p.job.dir / "logs").rglob("stats")):
        if folder.is_dir():
            parts = [PipelineStats.from_json(json.loads(f.read_text())) for f in sorted(folder.glob("*.json"))]
            with open(folder.parent / "stats.json", "w") as fh:
                sum(parts, start=PipelineStats()).save_to_disk(fh)
    build_database(plan.run_dir)
    mark_done(plan, p)
