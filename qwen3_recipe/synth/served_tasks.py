"""Local served-generation tasks, each a process of its own (as a Slurm array task runs its rank),
watched. datatrove's local executor runs tasks in a process pool that waits forever for a task that
was killed (an OOM kill, kill -9): its result never comes. Here the job fails instead, naming the
task and what it said, and a dead task's vLLM server (orphaned, still holding its memory) is killed;
the other tasks finish their shards. Tasks stay in the job's process group (a kill of the group
takes them and their servers), and a stop (the job interrupted or failing) kills them all."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

POLL_SECONDS = 1.0


def failure_file(work: Path, rank: int) -> Path:
    return work / "logs" / f"failure_{rank:05d}.txt"


def task_main(work: Path, serving: dict, model: str, max_len: int, rank: int, gpus: int | None) -> None:
    """One task's rank of datatrove's pipeline (synth/served.py); an error is kept for the job's message
    (one line there, the traceback in the task's log), not printed."""
    from qwen3_recipe.synth.served import PIN_ENV, serve
    if gpus:
        os.environ[PIN_ENV] = str(gpus)  # this task's server sees its own GPUs (served.TokenVLLMServer)
    try:
        serve(work, serving, model, max_len, rank=rank)
    except BaseException as exc:  # noqa: BLE001  (the parent reports it)
        failure_file(work, rank).parent.mkdir(parents=True, exist_ok=True)
        failure_file(work, rank).write_text(f"{type(exc).__name__}: {exc}"[:1000])
        sys.exit(130 if isinstance(exc, KeyboardInterrupt) else 1)


def run_local_tasks(work: Path, serving: dict, model: str, max_len: int, gpus: int | None,
                    stop: threading.Event | None = None) -> None:
    import multiprocessing

    import psutil
    ctx = multiprocessing.get_context("spawn")
    tasks = range(serving["tasks"])
    for r in tasks:
        failure_file(work, r).unlink(missing_ok=True)
    procs: dict = {}
    family: dict[int, set] = {r: set() for r in tasks}  # each task's processes (its server), as last seen
    failed: list[str] = []
    try:
        for r in tasks:
            procs[r] = ctx.Process(target=task_main, args=(work, serving, model, max_len, r, gpus),
                                   name=f"generation-task-{r}")
            procs[r].start()
        while procs and not (stop is not None and stop.is_set()):
            for r, p in list(procs.items()):
                if p.is_alive():
                    try:
                        family[r] |= set(psutil.Process(p.pid).children(recursive=True))
                    except psutil.Error:
                        pass
                    continue
                del procs[r]
                kill(family[r])  # whatever of it is left (a server a dead task orphaned)
                if p.exitcode != 0:
                    said = failure_file(work, r)
                    failed.append(f"task {r} exited with code {p.exitcode}"
                                  + (f" ({said.read_text()})" if said.exists() else ""))
            time.sleep(POLL_SECONDS)
    finally:
        for r, p in procs.items():  # stopped or interrupted: no task or server left behind
            p.kill()
            kill(family[r])
    if failed:
        raise RuntimeError("; ".join(failed))


def kill(processes) -> None:
    import psutil
    for proc in processes:
        try:
            proc.kill()
        except psutil.Error:
            pass
