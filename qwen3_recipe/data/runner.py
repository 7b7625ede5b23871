"""Runners for the data jobs: lower to datatrove, execute (local, Slurm or Ray), refresh the
run's provenance database."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.data.prepare import input_files, prepare_pipeline
from qwen3_recipe.provenance.database import build_database


def quiet_datatrove() -> None:
    """datatrove logs every task to stderr; keep warnings there (full logs stay in jobs/*/logs)."""
    from datatrove.utils.logging import logger
    logger.remove()
    logger.add(sys.stderr, level="WARNING", format="{level}: {message}")


def make_executor(plan: Plan, p: PlannedJob, pipeline: list, tasks: int, name: str = ""):
    """The recipe's executor for one datatrove pipeline of a job."""
    ex = plan.loaded.recipe.execution
    logs = str(plan.run_dir / p.job.dir / "logs" / name) if name else str(plan.run_dir / p.job.dir / "logs")
    # -1: as many at once as the machine has cores (each worker is a process importing datatrove)
    workers = min(tasks, ex.workers if ex.workers > 0 else (os.cpu_count() or 1))
    if ex.executor == "slurm":
        from datatrove.executor import SlurmPipelineExecutor
        return SlurmPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=logs,
                                     time=ex.slurm.time, partition=ex.slurm.partition or "", qos=ex.slurm.qos or "",
                                     cpus_per_task=1, mem_per_cpu_gb=ex.slurm.mem_per_cpu_gb,
                                     job_name=f"{plan.loaded.recipe.name}-{p.job.name}{'-' + name if name else ''}",
                                     sbatch_args={"account": ex.slurm.account} if ex.slurm.account else None,
                                     skip_completed=True)
    if ex.executor == "ray":
        from datatrove.executor import RayPipelineExecutor
        return RayPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=logs,
                                   skip_completed=True)
    from datatrove.executor import LocalPipelineExecutor
    return LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=logs,
                                 skip_completed=True)


def execute(plan: Plan, p: PlannedJob, pipeline: list, tasks: int, name: str = "") -> None:
    """Build the executor for one pipeline and run it under a progress display."""
    from qwen3_recipe.cli.render import console
    executor = make_executor(plan, p, pipeline, tasks, name)
    label = f"{p.job.name}{' ' + name if name else ''}: {tasks} task{'s' if tasks != 1 else ''}"
    with console().status(f"[cyan]{label}[/]"):
        executor.run()


def run_prepare(p: PlannedJob, plan: Plan) -> None:
    quiet_datatrove()
    execute(plan, p, prepare_pipeline(plan, p, decont_step(plan, p)), input_files(plan, p))
    build_database(plan.run_dir)


def decont_step(plan: Plan, p: PlannedJob):
    """The decontamination filter for a data job, with its n-gram index built once per run."""
    cfg = plan.loaded.recipe.data.decontamination
    benchmarks = p.job.config["decontamination"] and sorted(
        k.split(":", 1)[1] for k in p.job.inputs if k.startswith("benchmark:"))
    if not benchmarks:
        return None
    from qwen3_recipe.data.decont_index import DecontIndexBuilder
    index = DecontIndexBuilder(plan).index_path(benchmarks, cfg)
    from qwen3_recipe.data.decont import DecontaminationFilter
    return DecontaminationFilter(str(index), action=cfg.action)


def job_output(plan: Plan, job_name: str) -> Path:
    return plan.run_dir / "jobs" / job_name / "output"
