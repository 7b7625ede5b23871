"""Slurm submission of a run, with `afterok` dependencies that follow the DAG. Data jobs are lowered
to datatrove's Slurm array executor, stage by stage (launch/slurm_data.py). Other CPU jobs (the
tokenizer) and training stages are one sbatch job each that runs this package's own `run --only
<job> --in-allocation` inside its allocation: the job's artifact as compiled at submission, run as
on a laptop; the job writes its done marker when it finishes. A training job asks for N nodes x G
GPUs (`execution.slurm`); inside it the runner starts one torchrun per node with srun, meeting at
the allocation's first node (train/launch.py reads QWEN3_RECIPE_NNODES/_NPROC/_HEAD).
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.errors import Problem, RecipeError

DATA_KINDS = {"data_prepare", "data_dedup", "data_mix"}
CPU_KINDS = DATA_KINDS | {"tokenizer"}
TRAIN_KINDS = {"pretrain", "sft", "fusion"}
SCRIPT = "launch.slurm"


def sbatch_script(plan: Plan, p: PlannedJob) -> str:
    loaded, job = plan.loaded, p.job
    slurm = loaded.recipe.execution.slurm
    run_dir = plan.run_dir.resolve()
    train = job.kind in TRAIN_KINDS
    directives = {
        "job-name": f"{loaded.recipe.name}-{job.name}",
        "nodes": slurm.nodes if train else 1,
        "ntasks-per-node" if train else "ntasks": 1,
        "gpus-per-node": slurm.gpus_per_node if train else None,
        "cpus-per-task": slurm.cpus_per_task,
        "mem-per-cpu": f"{slurm.mem_per_cpu_gb:g}G",
        "exclusive": "" if train else None,
        "time": slurm.time,
        "output": str(run_dir / job.dir / "slurm-%j.out"),
        "partition": slurm.partition,
        "account": slurm.account,
        "qos": slurm.qos,
    }
    lines = ["#!/bin/bash"]
    lines += [f"#SBATCH --{k}" + (f"={v}" if v != "" else "") for k, v in directives.items() if v is not None]
    lines += [f"#SBATCH {arg}" for arg in slurm.sbatch_args]
    command = [sys.executable, "-m", "qwen3_recipe.cli", "run", str(loaded.path), "-o", str(run_dir),
               "--only", job.name, "--in-allocation"]
    command += [arg for spec in loaded.raw.overrides for arg in ("--set", spec)]
    lines += [
        f"# {job.name} ({job.kind}), fingerprint {job.fingerprint}; depends on: {', '.join(job.deps) or 'nothing'}",
        "set -euo pipefail",
        f"cd {shlex.quote(str(Path.cwd()))}",
        "export OMP_NUM_THREADS=1 TQDM_DISABLE=1",
        *([f"export QWEN3_RECIPE_NNODES={slurm.nodes} QWEN3_RECIPE_NPROC={slurm.gpus_per_node}",
           'export QWEN3_RECIPE_HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)']
          if train else []),
        " ".join(shlex.quote(c) for c in command),
        "",
    ]
    return "\n".join(lines)


def submit(plan: Plan, jobs: list[PlannedJob]) -> int:
    """Submit every selected job that is not done, in dependency order; prints the job ids."""
    from qwen3_recipe.console import console
    path = ("execution", "executor")
    if shutil.which("sbatch") is None:
        raise RecipeError([Problem("the Slurm executor submits with `sbatch`, which is not on this machine's "
                                   "PATH: run from a Slurm login node, or use --executor local",
                                   ".".join(path), plan.loaded.raw.smap.find(path))])
    unsupported = [p.job.name for p in jobs if p.job.kind not in CPU_KINDS | TRAIN_KINDS and p.status != "cached"]
    if unsupported:
        raise RecipeError([Problem(f"no Slurm lowering yet for {', '.join(unsupported)} (data, tokenizer, "
                                   "pretraining and SFT jobs only); select them with --only", ".".join(path),
                                   plan.loaded.raw.smap.find(path))])
    con = console()
    ids: dict[str, str] = {}
    for p in jobs:
        if p.status == "cached":
            continue
        folder = plan.run_dir / p.job.dir
        folder.mkdir(parents=True, exist_ok=True)
        after = [ids[d] for d in p.job.deps if d in ids]
        try:
            stages = _submit_data(plan, p, after) if p.job.kind in DATA_KINDS else _submit_job(plan, p, after)
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
    script = plan.run_dir / p.job.dir / SCRIPT
    script.write_text(sbatch_script(plan, p))
    args = ["sbatch", "--parsable"] + ([f"--dependency=afterok:{':'.join(after)}"] if after else [])
    out = subprocess.run(args + [str(script)], capture_output=True, text=True, check=True)
    return [("job", out.stdout.strip().split(";")[0])]
