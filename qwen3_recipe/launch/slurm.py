"""Slurm lowering at the job level: one sbatch job per recipe job, with `afterok` dependencies
that follow the DAG. Each job runs this package's own `run --only <job> --executor local` inside
its allocation (datatrove's local executor over the allocation's CPUs), so what runs on the
cluster is exactly what runs on a laptop, and a job writes its done marker when it finishes.
Scale-out of one data job across nodes (datatrove's Slurm array executor) is a later step.
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

CPU_KINDS = {"data_prepare", "data_dedup", "data_mix", "tokenizer"}
SCRIPT = "launch.slurm"


def sbatch_script(plan: Plan, p: PlannedJob) -> str:
    loaded, job = plan.loaded, p.job
    slurm = loaded.recipe.execution.slurm
    run_dir = plan.run_dir.resolve()
    directives = {
        "job-name": f"{loaded.recipe.name}-{job.name}",
        "nodes": 1,
        "ntasks": 1,
        "cpus-per-task": slurm.cpus_per_task,
        "mem-per-cpu": f"{slurm.mem_per_cpu_gb:g}G",
        "time": slurm.time,
        "output": str(run_dir / job.dir / "slurm-%j.out"),
        "partition": slurm.partition,
        "account": slurm.account,
        "qos": slurm.qos,
    }
    lines = ["#!/bin/bash"]
    lines += [f"#SBATCH --{k}={v}" for k, v in directives.items() if v not in (None, "")]
    lines += [f"#SBATCH {arg}" for arg in slurm.sbatch_args]
    command = [sys.executable, "-m", "qwen3_recipe.cli", "run", str(loaded.path), "-o", str(run_dir),
               "--only", job.name, "--executor", "local"]
    for spec in loaded.raw.overrides:
        if not spec.startswith("execution.executor="):  # inside the allocation it runs locally
            command += ["--set", spec]
    lines += [
        f"# {job.name} ({job.kind}), fingerprint {job.fingerprint}; depends on: {', '.join(job.deps) or 'nothing'}",
        "set -euo pipefail",
        f"cd {shlex.quote(str(Path.cwd()))}",
        "export OMP_NUM_THREADS=1 TQDM_DISABLE=1",
        " ".join(shlex.quote(c) for c in command),
        "",
    ]
    return "\n".join(lines)


def submit(plan: Plan, jobs: list[PlannedJob]) -> int:
    """Submit every selected job that is not done, in dependency order; prints the job ids."""
    from qwen3_recipe.cli.render import console
    path = ("execution", "executor")
    if shutil.which("sbatch") is None:
        raise RecipeError([Problem("the Slurm executor submits with `sbatch`, which is not on this machine's "
                                   "PATH: run from a Slurm login node, or use --executor local",
                                   ".".join(path), plan.loaded.raw.smap.find(path))])
    unsupported = [p.job.name for p in jobs if p.job.kind not in CPU_KINDS and p.status != "cached"]
    if unsupported:
        raise RecipeError([Problem(f"no Slurm lowering yet for {', '.join(unsupported)} (data and tokenizer "
                                   "jobs only); select them with --only", ".".join(path),
                                   plan.loaded.raw.smap.find(path))])
    con = console()
    ids: dict[str, str] = {}
    for p in jobs:
        if p.status == "cached":
            continue
        folder = plan.run_dir / p.job.dir
        folder.mkdir(parents=True, exist_ok=True)
        script = folder / SCRIPT
        script.write_text(sbatch_script(plan, p))
        after = [ids[d] for d in p.job.deps if d in ids]
        args = ["sbatch", "--parsable"] + ([f"--dependency=afterok:{':'.join(after)}"] if after else [])
        out = subprocess.run(args + [str(script)], capture_output=True, text=True)
        if out.returncode != 0:
            con.print(f"[red]sbatch failed[/] for {p.job.name}: {out.stderr.strip()}")
            return 1
        ids[p.job.name] = out.stdout.strip().split(";")[0]
        (folder / "submitted.json").write_text(json.dumps({"slurm_job_id": ids[p.job.name],
                                                           "fingerprint": p.job.fingerprint}) + "\n")
        con.print(f"submitted {p.job.name}: Slurm job {ids[p.job.name]}"
                  + (f" (after {', '.join(d for d in p.job.deps if d in ids)})" if after else ""))
    if not ids:
        con.print("[green]nothing to do[/]: the selected jobs are up to date")
    return 0
