"""Slurm submission of a run, with `afterok` dependencies that follow the DAG. Data jobs are lowered
to datatrove's Slurm array executor, stage by stage (launch/slurm_data.py). Other CPU jobs (the
tokenizer, the label job) and training stages are one sbatch job each that runs this package's own `run --only
<job> --in-allocation` inside its allocation: the job's artifact as compiled at submission, run as
on a laptop; the job writes its done marker when it finishes. A training job asks for N nodes x G
GPUs (`execution.slurm`); inside it the runner starts one torchrun per node with srun, meeting at
the allocation's first node (train/launch.py reads QWEN3_RECIPE_NNODES/_NPROC/_HEAD).
"""

from __future__ import annotations

import json
import shutil
import subprocess

from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.errors import Problem, RecipeError
from qwen3_recipe.launch.sbatch import SCRIPT, TRAIN_KINDS, sbatch, sbatch_script
from qwen3_recipe.launch.slurm_generation import submit_generation_job
from qwen3_recipe.serving import GENERATION_KINDS

DATA_KINDS = {"data_prepare", "data_dedup", "data_mix"}
CPU_KINDS = DATA_KINDS | {"tokenizer", "quality_label"}  # one CPU job each, run in its allocation


def submit(plan: Plan, jobs: list[PlannedJob]) -> int:
    """Submit every selected job that is not done, in dependency order; prints the job ids."""
    from qwen3_recipe.console import console
    path = ("execution", "executor")
    if shutil.which("sbatch") is None:
        raise RecipeError([Problem("the Slurm executor submits with `sbatch`, which is not on this machine's "
                                   "PATH: run from a Slurm login node, or use --executor local",
                                   ".".join(path), plan.loaded.raw.smap.find(path))])
    supported = CPU_KINDS | TRAIN_KINDS | set(GENERATION_KINDS)
    unsupported = [p.job.name for p in jobs if p.job.kind not in supported and p.status != "cached"]
    if unsupported:
        raise RecipeError([Problem(f"no Slurm lowering yet for {', '.join(unsupported)} (data, tokenizer, "
                                   "pretraining, SFT, RL and distillation stages, synth, quality, eval and "
                                   "teacher-pass jobs only); select them with --only",
                                   ".".join(path), plan.loaded.raw.smap.find(path))])
    con = console()
    ids: dict[str, str] = {}
    for p in jobs:
        if p.status == "cached":
            continue
        folder = plan.run_dir / p.job.dir
        folder.mkdir(parents=True, exist_ok=True)
        after = [ids[d] for d in p.job.deps if d in ids]
        try:
            if p.job.kind in DATA_KINDS:
                stages = _submit_data(plan, p, after)
            elif p.job.kind in GENERATION_KINDS:
                stages = submit_generation_job(plan, p, after)
            else:
                stages = _submit_job(plan, p, after)
        except subprocess.CalledProcessError as exc:
            err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
            con.print(f"[red]sbatch failed[/] for {p.job.name}: {err.strip() or exc}")
            return 1
        if not stages:
            con.print(f"[dim]skip {p.job.name}: every task completed earlier[/]")
            continue
        ids[p.job.name] = stages[-1][1]
        (folder / "submitted.json").write_text(json.dumps({"slurm_job_id": ids[p.job.name],
                                                           "slurm_jobs": dict(stages),
                                                           "fingerprint": p.job.fingerprint}) + "\n")
        what = (f"Slurm job {stages[0][1]}" if len(stages) == 1 else
                f"{len(stages)} Slurm jobs {stages[0][1]} ({stages[0][0]}) to {stages[-1][1]} ({stages[-1][0]})")
        con.print(f"submitted {p.job.name}: {what}"
                  + (f" after {', '.join(d for d in p.job.deps if d in ids)}" if after else ""))
    if not ids:
        con.print("[green]nothing to do[/]: the selected jobs are up to date")
    return 0


def _submit_data(plan: Plan, p: PlannedJob, after: list[str]) -> list[tuple[str, str]]:
    from qwen3_recipe.launch.slurm_data import submit_data_job
    return submit_data_job(plan, p, after)


def _submit_job(plan: Plan, p: PlannedJob, after: list[str]) -> list[tuple[str, str]]:
    """One sbatch job running the whole recipe job."""
    return [("job", sbatch(plan.run_dir / p.job.dir / SCRIPT, sbatch_script(plan, p), after))]
