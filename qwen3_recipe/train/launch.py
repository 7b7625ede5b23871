"""Running one compiled training job: torchrun over `torchtitan.train`, pointed at the fixed config
function `qwen3_recipe.train.job:config` with the job's JSON in $QWEN3_RECIPE_JOB.

Kept free of torchtitan imports so that the parent process (the `run` command) stays light; the
trainer process imports torchtitan and, without an accelerator, the CPU workarounds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from qwen3_recipe.train.export import HF_INDEX  # noqa: F401 (torchtitan's HF save writes it when consolidated)

JOB_ENV = "QWEN3_RECIPE_JOB"
ATTENTION_OVERRIDE = "qwen3_recipe.train.cpu.sdpa_document_attention"
EXPERTS_OVERRIDE = "qwen3_recipe.train.cpu.param_dtype_grouped_experts"  # MoE experts in fp32, not bf16
CPU_OVERRIDES = [ATTENTION_OVERRIDE, EXPERTS_OVERRIDE]
LOADER_TRACE = "loader_trace.jsonl"  # in the dump folder: micro-batches a scheduled loader fed


def die_with_parent(sig: int | None = None) -> None:
    """Linux: send this process `sig` (default SIGKILL) when its parent dies. torchrun starts its workers
    in a new session, so without this a killed `run` would leave the trainer training on, orphaned, and
    racing the rerun for the same dump folder. (A rollout server asks for SIGTERM: it closes its engine.)"""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL if sig is None else sig)  # PR_SET_PDEATHSIG


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a process's log, for the error that says it stopped."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def srun_cpus(env: dict) -> list[str]:
    """srun's --cpus-per-task inside an allocation: srun does not inherit sbatch's (Slurm 22.05 on)."""
    return [f"--cpus-per-task={env['SLURM_CPUS_PER_TASK']}"] if env.get("SLURM_CPUS_PER_TASK") else []


def has_accelerator() -> bool:
    from torch._utils import _get_available_device_type
    return _get_available_device_type() is not None


def torchrun_args(nproc: int | str = 1, nnodes: int | str = 1, rdzv: str = "localhost:0",
                  cpu: bool | None = None, rdzv_id: str | None = None) -> list[str]:
    """Arguments after `python -m torch.distributed.run`."""
    args = [f"--nnodes={nnodes}", f"--nproc_per_node={nproc}", "--rdzv_backend", "c10d",
            f"--rdzv_endpoint={rdzv}", *([f"--rdzv_id={rdzv_id}"] if rdzv_id else []),
            "-m", "torchtitan.train", "--module", "qwen3_recipe.train.job", "--config", "config"]
    if (not has_accelerator()) if cpu is None else cpu:
        args += ["--override.imports", *CPU_OVERRIDES]
    return args


def local_devices() -> int:
    import torch
    return torch.cuda.device_count() if torch.cuda.is_available() else 1


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def single_process_env() -> dict[str, str]:
    """What torchrun would tell its one worker: rank 0 of 1, meeting itself on a free local port."""
    port = free_port()
    return {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1", "GROUP_RANK": "0",
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}


def runs_alone(job: dict) -> bool:
    """One trainer process on this machine (a CPU or one GPU), outside a Slurm allocation."""
    nproc = int(os.environ.get("QWEN3_RECIPE_NPROC") or job.get("nproc_per_node") or local_devices())
    return not os.environ.get("QWEN3_RECIPE_HEAD") and nproc == 1


def torchrun_command(job: dict) -> list[str]:
    """torchrun on this machine (one process per local GPU); one process alone (a CPU or one GPU)
    runs `torchtitan.train` directly, with single_process_env() - torchrun's agent would only add
    seconds of start-up per stage; inside a Slurm allocation (the sbatch script of launch/slurm.py
    sets QWEN3_RECIPE_NNODES, _NPROC and _HEAD) one torchrun per node through srun, meeting at the
    first node."""
    nnodes = int(os.environ.get("QWEN3_RECIPE_NNODES", "1"))
    nproc = int(os.environ.get("QWEN3_RECIPE_NPROC") or job.get("nproc_per_node") or local_devices())
    torchrun = [sys.executable, "-m", "torch.distributed.run"]
    head = os.environ.get("QWEN3_RECIPE_HEAD")
    if runs_alone(job):
        args = torchrun_args(1)
        return [sys.executable, *args[args.index("-m"):]]
    if not head:
        return torchrun + torchrun_args(nproc)
    return (["srun", f"--nodes={nnodes}", "--ntasks-per-node=1", "--kill-on-bad-exit=1"] + torchrun
            + torchrun_args(nproc, nnodes, f"{head}:29500", rdzv_id=os.environ.get("SLURM_JOB_ID")))


def launch(job_json: Path, *, timeout: float | None = None, env: dict | None = None,
           log_path: Path | None = None, on_metrics=None) -> subprocess.CompletedProcess:
    """Train the job in a torchrun subprocess; its output goes to `log_path` (default: beside the
    job file). `on_metrics(rows)` is called with new metric rows while it runs (progress)."""
    job_json = Path(job_json).resolve()
    job = json.loads(job_json.read_text())
    run_env = {**os.environ, **(env or {}), JOB_ENV: str(job_json)}
    run_env.setdefault("OMP_NUM_THREADS", "1")  # 1-6 s per step on 2 cores without it
    root = str(Path(__file__).resolve().parents[2])
    run_env["PYTHONPATH"] = os.pathsep.join(p for p in (root, run_env.get("PYTHONPATH")) if p)
    log_path = Path(log_path or job_json.with_suffix(".log"))
    metrics = Path(job["dump_folder"], job.get("metrics_file", "metrics.jsonl"))
    seen = len(metrics.read_text().splitlines()) if metrics.exists() else 0
    cmd = torchrun_command(job)
    if runs_alone(job):
        run_env.update(single_process_env())
    returncode = run_logged(cmd, run_env, log_path, metrics, on_metrics, timeout, seen)
    output = log_path.read_text(errors="replace")
    if returncode == 0 and job.get("export_hf"):
        final = Path(job["dump_folder"]) / "checkpoint" / f"step-{job['steps']}"
        if (final / HF_INDEX).exists():
            from qwen3_recipe.train.export import write_hf_assets
            write_hf_assets(job, final)
    return subprocess.CompletedProcess(cmd, returncode, output, "")


def run_logged(cmd: list[str], env: dict, log_path: Path, metrics: Path, on_metrics=None,
               timeout: float | None = None, seen: int | None = None) -> int:
    """Run a trainer subprocess (it dies with this process) with its output in `log_path`, calling
    `on_metrics(rows)` with the rows it appends to the JSON-lines file `metrics` (after the first `seen`;
    default: those there at the start); returns its exit status (killed after `timeout` seconds)."""
    if seen is None:
        seen = len(metrics.read_text().splitlines()) if metrics.exists() else 0
    started = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
                                preexec_fn=die_with_parent)
        while proc.poll() is None:
            time.sleep(0.5)
            if on_metrics and metrics.exists():
                lines = metrics.read_text().splitlines()
                complete = [ln for ln in lines[seen:] if ln.endswith("}")]
                if complete:
                    seen += len(complete)
                    on_metrics([json.loads(ln) for ln in complete])
            if timeout and time.monotonic() - started > timeout:
                proc.kill()
                proc.wait()
                break
    return proc.returncode
