"""Rollout servers on GPUs of their own (issue 19, `execution.rollout.servers`): each a process holding one of
our rollout engines (posttrain/rollout_engine.py: vLLM, or transformers) behind a small HTTP interface, which
trainer processes sample from instead of a colocated engine.

    python -m qwen3_recipe.posttrain.rollout_server --model DIR --max-tokens N --url-file FILE [--host HOST]

The server does only the engine's unit of work (`_complete`: token ids in, token ids and log-probabilities out,
with the per-sample seed and vLLM's native thinking budget); the trainer's client (`ServedRollouts`) is a
GenerationEngine like the colocated ones, so the chat template, the modes, the two-phase budget and its repairs
run in the trainer as they do colocated: a server gives the same rollouts an engine in the trainer would.

Weights: at each sync the trainer process that owns a server (rank r serves itself from server r % servers; rank r
< servers owns server r) writes the policy's weights to a safetensors file in the stage's folder and tells its
server to load it (push_weights, as colocated); the other processes on that server wait until it has taken that
push. On a cluster the run directory is the shared file system; weights do not travel over NCCL (that is TRL's
vLLM server mode, GPU-only), so a push costs a write and a read of the whole model.

Where they run (`start`): locally, processes on this machine (on a GPU machine, its last GPUs); inside a Slurm
allocation, one srun over the nodes after the trainers' (launch/sbatch.py adds them to the allocation). Each writes
its URL to `<stage>/rollout/server-<i>.url` once it serves.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from qwen3_recipe.synth.engines import GenerationEngine

SERVER = "qwen3_recipe.posttrain.rollout_server"
FOLDER = "rollout"  # in the stage's folder: URL files, server logs, pushed weights
START_TIMEOUT = float(os.environ.get("QWEN3_RECIPE_ROLLOUT_START_TIMEOUT", "1800"))


def server_nodes(servers: int, gpus_per_server: int, gpus_per_node: int) -> int:
    """Slurm nodes the servers take beside the trainers'."""
    per_node = max(1, gpus_per_node // gpus_per_server)
    return -(-servers // per_node) if servers else 0


# --------------------------------------------------------------------------- the server
def serve(model: str, max_tokens: int, kind: str | None, url_file: Path, host: str = "127.0.0.1", tp: int = 1) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import torch
    from safetensors.torch import load_file

    from qwen3_recipe.posttrain.rollout_engine import logprobs_at_sampling_temperature, push_weights, rollout_engine
    from qwen3_recipe.synth.budget import Job
    from qwen3_recipe.synth.sampling import SamplingParams
    engine = rollout_engine(Path(model), max_tokens, kind=kind, tp=tp)
    lock, state = threading.Lock(), {"pushes": 0}
    info = {"budget": engine.budget, "supports_native": engine.supports_native,
            "at_sampling_temperature": logprobs_at_sampling_temperature(engine)}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # one line per request would drown the log
            pass

        def _reply(self, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._reply(info | {"pushes": state["pushes"]})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:  # one engine call at a time (vLLM batches within each)
                if self.path == "/weights":
                    push_weights(engine, load_file(body["path"]))
                    state["pushes"] = body["push"]
                    self._reply({"pushes": state["pushes"]})
                    return
                jobs = [Job(**(j | {"params": SamplingParams(**j["params"])})) for j in body["jobs"]]
                with torch.no_grad():
                    done = engine._complete(jobs)
            self._reply({"completions": [asdict(c) for c in done]})

    server = ThreadingHTTPServer(("127.0.0.1" if host == "127.0.0.1" else "0.0.0.0", 0), Handler)
    tmp = url_file.with_suffix(".tmp")
    tmp.write_text(f"http://{host}:{server.server_address[1]}\n")
    os.replace(tmp, url_file)  # whole, once it serves
    print(f"rollout server: {model} at http://{host}:{server.server_address[1]}", flush=True)
    server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    import argparse

    from qwen3_recipe.train.launch import die_with_parent
    die_with_parent()  # a killed stage takes its servers along
    ap = argparse.ArgumentParser(prog=SERVER)
    ap.add_argument("--model", required=True)
    ap.add_argument("--max-tokens", type=int, required=True)
    ap.add_argument("--kind", default=None)
    ap.add_argument("--url-file", type=Path, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--tp", type=int, default=1)
    a = ap.parse_args(argv)
    # the server's GPUs are its own (a colocated engine leaves most of its GPU to the trainer)
    os.environ["QWEN3_RECIPE_ROLLOUT_GPU_MEMORY"] = os.environ.get("QWEN3_RECIPE_SERVER_GPU_MEMORY", "0.9")
    serve(a.model, a.max_tokens, a.kind, a.url_file, a.host, a.tp)


# --------------------------------------------------------------------------- the trainer's client
class ServedRollouts(GenerationEngine):
    """A rollout engine in another process: `generate` as every GenerationEngine, `push` (push_weights) as
    described above. `pusher`: this process writes the server's weights; the others wait for each push."""

    def __init__(self, url: str, tokenizer_dir: Path, *, pusher: bool, weights: Path, timeout: float = 3600) -> None:
        from transformers import AutoTokenizer
        self.url, self.pusher, self.weights, self.timeout, self.pushes = url.rstrip("/"), pusher, weights, timeout, 0
        info = self._get()
        self.budget, self.supports_native = info["budget"], info["supports_native"]
        self.at_sampling_temperature = info["at_sampling_temperature"]
        super().__init__(AutoTokenizer.from_pretrained(tokenizer_dir))

    def _get(self) -> dict:
        with urllib.request.urlopen(self.url + "/info", timeout=self.timeout) as resp:
            return json.load(resp)

    def _post(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return json.load(resp)

    def _complete(self, jobs):
        from qwen3_recipe.synth.budget import Completion
        if not jobs:
            return []
        out = self._post("/complete", {"jobs": [asdict(j) for j in jobs]})["completions"]
        return [Completion(c["token_ids"], c["finish_reason"],
                           None if c["logprobs"] is None else
                           [None if d is None else {int(t): v for t, v in d.items()} for d in c["logprobs"]])
                for c in out]

    def push(self, weights: dict) -> None:
        self.pushes += 1
        if self.pusher:
            from safetensors.torch import save_file
            seen, whole = set(), {}
            for k, v in weights.items():  # safetensors refuses tensors sharing memory (a tied LM head)
                v = v.detach().cpu().contiguous()
                whole[k] = v.clone() if v.data_ptr() in seen else v
                seen.add(v.data_ptr())
            self.weights.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.weights.with_suffix(".tmp")
            save_file(whole, str(tmp))
            os.replace(tmp, self.weights)
            self._post("/weights", {"path": str(self.weights), "push": self.pushes})
            return
        deadline = time.monotonic() + self.timeout
        while self._get()["pushes"] < self.pushes:  # the owner's push of the same sync
            if time.monotonic() > deadline:
                raise TimeoutError(f"rollout server {self.url} took no push {self.pushes} in {self.timeout:.0f} s")
            time.sleep(0.05)


def client(spec: dict, init: Path) -> ServedRollouts:
    """This trainer process's client of its server (spec["rollout_servers"]: their URLs)."""
    urls, rank = spec["rollout_servers"], int(os.environ.get("RANK", "0"))
    return ServedRollouts(urls[rank % len(urls)], init, pusher=rank < len(urls),
                          weights=Path(spec["out"]) / FOLDER / f"weights-{rank}.safetensors")


# --------------------------------------------------------------------------- starting them
def _commands(folder: Path, model: Path, max_tokens: int, kind: str | None, servers: int, tp: int,
              env: dict) -> list[tuple[list[str], dict]]:
    """(command, environment) of each process to start: one per server locally, one srun in an allocation."""
    from qwen3_recipe.train.launch import has_accelerator, local_devices
    base = [sys.executable, "-m", SERVER, "--model", str(model), "--max-tokens", str(max_tokens), "--tp", str(tp)]
    base += ["--kind", kind] if kind else []
    head = env.get("QWEN3_RECIPE_HEAD")
    if head:  # the nodes after the trainers' in this allocation: one task per node starts its servers
        import shlex
        trainers, nodes = int(env.get("QWEN3_RECIPE_NNODES", "1")), int(env["QWEN3_RECIPE_ROLLOUT_NODES"])
        per_node = -(-servers // nodes)
        # server n = node x per_node + i on GPUs i*tp .. i*tp+tp-1 of its node; one server gone ends the step
        gpus = f"$(seq -s, $((i * {tp})) $((i * {tp} + {tp - 1})))"
        inner = (f"for i in $(seq 0 {per_node - 1}); do n=$((SLURM_PROCID * {per_node} + i)); "
                 f"[ $n -lt {servers} ] || break; CUDA_VISIBLE_DEVICES={gpus} " + " ".join(shlex.quote(a) for a in base)
                 + f" --host \"$(hostname)\" --url-file {shlex.quote(str(folder))}/server-$n.url & done; "
                 "wait -n; exit 1")
        return [(["srun", f"--nodes={nodes}", f"--relative={trainers}", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
                  "bash", "-c", inner], env)]
    gpus = local_devices() if has_accelerator() else 0
    out = []
    for i in range(servers):  # the machine's last GPUs, `tp` each (the trainers keep the first)
        own = {"CUDA_VISIBLE_DEVICES": ",".join(str(gpus - (servers - i) * tp + k) for k in range(tp))} if gpus else {}
        out.append((base + ["--url-file", str(folder / f"server-{i}.url")], env | own))
    return out


@contextmanager
def start(stage_folder: Path, model: Path, max_tokens: int, kind: str | None, servers: int, tp: int, env: dict):
    """Start the stage's servers, yield their URLs once all serve; stop them after."""
    import subprocess
    folder = stage_folder / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("server-*.url"):  # a killed run's
        stale.unlink()
    procs = []
    try:
        for i, (cmd, e) in enumerate(_commands(folder, model, max_tokens, kind, servers, tp, env)):
            log = folder / f"server-{i}.log"
            with log.open("w") as out:
                procs.append((subprocess.Popen(cmd, env=e, stdout=out, stderr=subprocess.STDOUT), log))
        files = [folder / f"server-{i}.url" for i in range(servers)]
        deadline = time.monotonic() + START_TIMEOUT
        while not all(f.exists() for f in files):
            for proc, log in procs:
                if proc.poll() is not None:
                    tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                    raise RuntimeError(f"a rollout server stopped (exit status {proc.returncode}); "
                                       f"its log is {log}:\n{tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the rollout servers did not start in {START_TIMEOUT:.0f} s; logs in {folder}")
            time.sleep(0.2)
        yield [f.read_text().strip() for f in files]
    finally:
        for proc, _ in procs:
            proc.terminate()
        for proc, _ in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
