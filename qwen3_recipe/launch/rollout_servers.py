"""Starting a TRL stage's rollout servers (issue 19, `execution.rollout.servers`; the server itself is
posttrain/rollout_server.py, the trainers' client posttrain/rollout_client.py).

Locally: one process per server on this machine's last GPUs (`local_gpu_split`, which the trainers' environment
uses too). Inside a Slurm allocation: one srun over the nodes after the trainers' (launch/sbatch.py adds them to
the allocation), one task per node starting that node's servers. Each server writes its URL to
`<stage>/rollout/server-<i>.url` once it serves; `start` waits for all, and stops them after the stage.
"""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from qwen3_recipe.train.launch import log_tail, srun_cpus

SERVER = "qwen3_recipe.posttrain.rollout_server"
FOLDER = "rollout"  # in the stage's folder: URL files, server logs, pushed weights
TOKEN_ENV = "QWEN3_RECIPE_ROLLOUT_TOKEN"  # what a server asks of every request (start makes one per stage)
START_TIMEOUT = float(os.environ.get("QWEN3_RECIPE_ROLLOUT_START_TIMEOUT", "1800"))


def server_nodes(servers: int, gpus_per_server: int, gpus_per_node: int) -> int:
    """Slurm nodes the servers take beside the trainers'."""
    per_node = max(1, gpus_per_node // gpus_per_server)
    return -(-servers // per_node) if servers else 0


def local_gpu_split(env: dict, servers: int, tp: int) -> tuple[list[str], list[list[str]]]:
    """(the trainers' GPUs, each server's) on this machine: of the GPUs the environment lets us see (a preset
    CUDA_VISIBLE_DEVICES, else all), the servers take the last servers x tp. ([], [[], ...]) without GPUs."""
    from qwen3_recipe.train.launch import has_accelerator, local_devices
    if not has_accelerator():
        return [], [[] for _ in range(servers)]
    preset = [d for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    visible = preset or [str(i) for i in range(local_devices())]
    first = len(visible) - servers * tp
    return visible[:max(first, 0)], [visible[max(first, 0) + i * tp:][:tp] for i in range(servers)]


def server_commands(folder: Path, model: Path, max_tokens: int, kind: str | None, servers: int, tp: int,
                    env: dict, gpus: list[list[str]] | None = None) -> list[tuple[list[str], dict]]:
    """(command, environment) of each process to start: one per server locally (on `gpus`, each server's; default:
    local_gpu_split of `env`, which must then be the environment before the trainers' share was cut from it), one
    srun in an allocation."""
    base = [sys.executable, "-m", SERVER, "--model", str(model), "--max-tokens", str(max_tokens), "--tp", str(tp),
            "--folder", str(folder)]
    base += ["--kind", kind] if kind else []
    if env.get("QWEN3_RECIPE_HEAD"):  # the nodes after the trainers': one task per node starts its servers
        trainers = int(env.get("QWEN3_RECIPE_NNODES", "1"))
        nodes = int(env.get("QWEN3_RECIPE_ROLLOUT_NODES") or 0)
        if nodes < 1:
            raise RuntimeError("rollout servers inside a Slurm allocation need QWEN3_RECIPE_ROLLOUT_NODES (the "
                               "nodes the sbatch script added for them): submit the stage with `run --executor slurm`")
        per_node = -(-servers // nodes)
        # server n = node x per_node + i on GPUs i*tp .. i*tp+tp-1 of its node; one server gone ends the step
        gpus = f"$(seq -s, $((i * {tp})) $((i * {tp} + {tp - 1})))"
        inner = (f"for i in $(seq 0 {per_node - 1}); do n=$((SLURM_PROCID * {per_node} + i)); "
                 f"[ $n -lt {servers} ] || break; CUDA_VISIBLE_DEVICES={gpus} " + " ".join(shlex.quote(a) for a in base)
                 + " --index $n --host \"$(hostname)\" & done; wait -n; exit 1")
        return [(["srun", f"--nodes={nodes}", f"--relative={trainers}", "--ntasks-per-node=1", *srun_cpus(env),
                  "--kill-on-bad-exit=1", "bash", "-c", inner], env)]
    gpus = local_gpu_split(env, servers, tp)[1] if gpus is None else gpus
    return [(base + ["--index", str(i)], env | ({"CUDA_VISIBLE_DEVICES": ",".join(g)} if g else {}))
            for i, g in enumerate(gpus)]


@dataclass
class Servers:
    """A stage's running servers: their URLs, the token they ask for, and what became of them."""
    urls: list[str]
    token: str
    procs: list[tuple[subprocess.Popen, Path]] = field(default_factory=list)

    def stopped(self) -> str:
        """What any server that has stopped said last (for the stage's error), else ''."""
        out = []
        for proc, log in self.procs:
            if proc.poll() is not None:
                out.append(f"a rollout server stopped (exit status {proc.returncode}); its log is {log}:\n"
                           f"{log_tail(log)}")
        return "\n".join(out)


@contextmanager
def start(stage_folder: Path, model: Path, max_tokens: int, kind: str | None, servers: int, tp: int, env: dict,
          gpus: list[list[str]] | None = None):
    """Start the stage's servers (`gpus`: as server_commands), yield them (Servers) once all serve; stop them
    after, and remove what they leave (URL files, pushed weights)."""
    from qwen3_recipe.train.launch import die_with_parent
    folder = stage_folder / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    leftovers = lambda: [*folder.glob("server-*.url"), *folder.glob("weights-*")]  # noqa: E731 (a killed run's too)
    for stale in leftovers():
        stale.unlink()
    running = Servers([], secrets.token_hex(16))
    try:
        for i, (cmd, e) in enumerate(server_commands(folder, model, max_tokens, kind, servers, tp, env, gpus)):
            log = folder / f"server-{i}.log"
            with log.open("w") as out:
                proc = subprocess.Popen(cmd, env=e | {TOKEN_ENV: running.token}, stdout=out,
                                        stderr=subprocess.STDOUT,
                                        preexec_fn=lambda: die_with_parent(signal.SIGTERM))
            running.procs.append((proc, log))
        files = [folder / f"server-{i}.url" for i in range(servers)]
        deadline = time.monotonic() + START_TIMEOUT
        while not all(f.exists() for f in files):
            if running.stopped():
                raise RuntimeError(running.stopped())
            if time.monotonic() > deadline:
                raise TimeoutError(f"the rollout servers did not start in {START_TIMEOUT:.0f} s; logs in {folder}")
            time.sleep(0.2)
        running.urls = [f.read_text().strip() for f in files]
        yield running
    finally:
        for proc, _ in running.procs:
            proc.terminate()  # a server closes its engine on SIGTERM (vLLM's engine core with it)
        for proc, _ in running.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        for left in leftovers():
            left.unlink(missing_ok=True)
