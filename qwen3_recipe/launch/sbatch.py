"""The sbatch scripts of jobs that run this package's own `run --only <job> --in-allocation` inside
their allocation (the tokenizer, training stages, generation jobs' parts): directives from
`execution.slurm`, the command, and what the runner is told through the environment."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.compiler.plan_view import TRL_KINDS
from qwen3_recipe.launch.rollout_servers import server_nodes

# jobs of N nodes x G GPUs: torchtitan's stages (train/launch.py), those on TRL + accelerate (posttrain/trl_launch.py)
TRAIN_KINDS = {"pretrain", "sft", "fusion", *TRL_KINDS}
SCRIPT = "launch.slurm"


def sbatch_script(plan: Plan, p: PlannedJob, *, phase: str | None = None, array: int | None = None,
                  gpus: int | None = None, note: str | None = None, env: dict[str, str] | None = None) -> str:
    """The job's sbatch script. A generation job's parts (launch/slurm_generation.py) set `phase`
    (exported for the runner), `array` (tasks), `gpus` (per task: whole nodes beyond one node's)."""
    loaded, job = plan.loaded, p.job
    slurm = loaded.recipe.execution.slurm
    run_dir = plan.run_dir.resolve()
    train = job.kind in TRAIN_KINDS
    rollout = loaded.recipe.execution.rollout
    # a TRL stage's rollout servers (launch/rollout_servers.py): nodes of their own after the trainers'
    served = server_nodes(rollout.servers, rollout.gpus_per_server, slurm.gpus_per_node) if job.kind in TRL_KINDS else 0
    nodes = slurm.nodes + served if train else -(-gpus // slurm.gpus_per_node) if gpus else 1
    per_node = slurm.gpus_per_node if train else min(gpus, slurm.gpus_per_node) if gpus else None
    directives = {
        "job-name": f"{loaded.recipe.name}-{job.name}" + (f"-{phase}" if phase else ""),
        "array": f"0-{array - 1}" if array else None,
        "nodes": nodes,
        "ntasks-per-node" if train else "ntasks": 1,
        "gpus-per-node": per_node,
        "cpus-per-task": slurm.cpus_per_task,
        "mem-per-cpu": f"{slurm.mem_per_cpu_gb:g}G",
        "exclusive": "" if train or nodes > 1 else None,
        "time": slurm.time,
        "output": str(run_dir / job.dir / (f"slurm-{phase}-%A_%a.out" if array else
                                           f"slurm-{phase}-%j.out" if phase else "slurm-%j.out")),
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
        *([f"# {note}"] if note else []),
        "set -euo pipefail",
        f"cd {shlex.quote(str(Path.cwd()))}",
        "export OMP_NUM_THREADS=1 TQDM_DISABLE=1" + (f" QWEN3_RECIPE_GENERATION={phase}" if phase else "")
        + "".join(f" {k}={shlex.quote(v)}" for k, v in (env or {}).items()),
        *([f"export QWEN3_RECIPE_NNODES={slurm.nodes} QWEN3_RECIPE_NPROC={slurm.gpus_per_node}"
           + (f" QWEN3_RECIPE_ROLLOUT_NODES={served}" if served else ""),
           'export QWEN3_RECIPE_HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)']
          if train else []),
        " ".join(shlex.quote(c) for c in command),
        "",
    ]
    return "\n".join(lines)


def sbatch(script: Path, text: str, after: list[str]) -> str:
    """Write `script` and submit it after the Slurm jobs `after`; its job id."""
    script.write_text(text)
    args = ["sbatch", "--parsable"] + ([f"--dependency=afterok:{':'.join(after)}"] if after else [])
    out = subprocess.run(args + [str(script)], capture_output=True, text=True, check=True)
    return out.stdout.strip().split(";")[0]
