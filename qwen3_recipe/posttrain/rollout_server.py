"""A rollout server (issue 19, `execution.rollout.servers`): one of our rollout engines (posttrain/rollout_engine.py:
vLLM, or transformers) in a process on GPUs of its own, behind a small HTTP interface that trainer processes
sample from (their client: posttrain/rollout_client.py; started by launch/rollout_servers.py).

    python -m qwen3_recipe.posttrain.rollout_server --model DIR --max-tokens N --folder DIR --index I [--host H]

It does only the engine's unit of work (`complete`: token ids in, token ids and log-probabilities out, with the
per-sample seed and vLLM's native thinking budget); the chat template, the modes, the two-phase budget and its
repairs run in the trainer's client as they do colocated, so a server gives the rollouts an engine in the trainer
would.

- GET /info: the engine's budget method, whether its log-probabilities are at the sampling temperature, the
  dtype pushed weights should come in, and the weights version it holds (0: the model it started with).
- POST /weights {name, version}: load `<folder>/<name>` (a safetensors file the trainers' process 0 wrote) and
  hold weights version `version`.
- POST /complete {jobs, version, sharers, wait}: sample `jobs` with weights `version`: waits up to `wait` s for
  that push (504 after), refuses a server already past it (409: the trainers are out of step). Requests of the
  `sharers` trainer processes this server serves are gathered into one engine call (vLLM batches them).
Every request carries the stage's token (X-Rollout-Token); an engine error answers 500 with its message.
"""

from __future__ import annotations

import hmac
import json
import os
import queue
import threading
import time
import traceback
from concurrent.futures import Future
from dataclasses import asdict
from pathlib import Path

from qwen3_recipe.launch.rollout_servers import SERVER, TOKEN_ENV

GATHER_S = 0.25  # how long a server waits for its other trainer processes' requests to batch with the first
WAIT_S = 3600.0  # the longest a request waits: for its weights version, for the engine
GPU_MEMORY = 0.9  # vLLM's share of a server's GPUs (its own: no trainer beside it)


class StaleVersion(Exception):
    """A request for weights the server has already replaced."""


class EngineThread:
    """The one thread that calls the engine: weight loads in order, and completions gathered across the trainer
    processes sharing the server, each run only at the weights version it asks for."""

    def __init__(self, engine) -> None:
        self.engine, self.version, self.queue = engine, 0, queue.Queue()
        self.changed = threading.Condition()
        threading.Thread(target=self._loop, daemon=True).start()

    def submit(self, kind: str, payload, version: int, sharers: int = 1) -> Future:
        done = Future()
        self.queue.put((kind, payload, version, sharers, done))
        return done

    def wait_for(self, version: int, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.version >= version, timeout)

    def _loop(self) -> None:
        pending = None
        while True:
            item, pending = pending or self.queue.get(), None
            if item[0] == "weights":
                self._run([item], self._load)
                continue
            batch, deadline = [item], time.monotonic() + GATHER_S
            while len(batch) < item[3]:
                try:
                    nxt = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt[0] == "weights":  # after this batch
                    pending = nxt
                    break
                batch.append(nxt)
            self._run(batch, self._sample)  # (it resolves every future, so this thread never dies)

    def _run(self, batch: list, work) -> None:
        try:
            for item, result in zip(batch, work(batch)):
                item[4].set_result(result)
        except BaseException as e:  # noqa: BLE001 (even SystemExit: the trainer gets the message, no future hangs)
            traceback.print_exc()
            for item in batch:
                if not item[4].done():
                    item[4].set_exception(e if isinstance(e, Exception) else RuntimeError(repr(e)))

    def _load(self, batch: list) -> list:
        from safetensors.torch import load_file

        from qwen3_recipe.posttrain.rollout_engine import push_weights
        [(_, path, version, _, _)] = batch
        if version <= self.version:
            raise ValueError(f"weights version {version} after version {self.version}: versions only go up")
        push_weights(self.engine, load_file(str(path)))
        with self.changed:
            self.version = version
            self.changed.notify_all()
        print(f"rollout server: took weights version {version}", flush=True)
        return [{"version": version}]

    def _sample(self, batch: list) -> list:
        import torch
        fresh = []
        for item in batch:
            if item[2] != self.version:
                item[4].set_exception(StaleVersion(f"asked for weights version {item[2]}, holds {self.version}"))
            else:
                fresh.append(item)
        if not fresh:
            return []
        with torch.no_grad():
            done = self.engine.complete([j for item in fresh for j in item[1]])
        out, k = [], 0
        for item in fresh:
            out.append([asdict(c) for c in done[k:k + len(item[1])]])
            k += len(item[1])
        for item, result in zip(fresh, out):
            item[4].set_result(result)
        return []


def serve(model: str, max_tokens: int, kind: str | None, folder: Path, index: int, host: str = "127.0.0.1",
          tp: int = 1) -> None:
    import signal
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from qwen3_recipe.posttrain.rollout_engine import logprobs_at_sampling_temperature, rollout_engine, weights_dtype
    from qwen3_recipe.synth.budget import Job
    from qwen3_recipe.synth.sampling import SamplingParams
    # tp = 1: vLLM's engine core in this process, so nothing outlives it; its GPUs are its own
    token = os.environ.get(TOKEN_ENV, "")
    if not token and host != "127.0.0.1":  # it listens on every interface: only the stage's trainers may use it
        raise SystemExit(f"rollout server: no {TOKEN_ENV} for a server other machines can reach")
    engine = rollout_engine(Path(model), max_tokens, kind=kind, tp=tp, gpu_memory=GPU_MEMORY, in_process=tp == 1)
    work = EngineThread(engine)
    info = {"budget": engine.budget, "supports_native": engine.supports_native,
            "at_sampling_temperature": logprobs_at_sampling_temperature(engine), "dtype": weights_dtype(engine)}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # one line per request would drown the log
            pass

        def _reply(self, body: dict, code: int = 200) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _allowed(self) -> bool:
            if hmac.compare_digest(self.headers.get("X-Rollout-Token", "").encode("latin-1"), token.encode()):
                return True
            self._reply({"error": "wrong or missing X-Rollout-Token"}, 403)
            return False

        def do_GET(self) -> None:
            if not self._allowed():
                return
            if self.path != "/info":
                return self._reply({"error": f"no {self.path} here"}, 404)
            self._reply(info | {"version": work.version})

        def do_POST(self) -> None:
            if not self._allowed():
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/weights":
                    name = body["name"]
                    if not name.startswith("weights-") or Path(name).name != name:
                        return self._reply({"error": f"weights come as a file in {folder}, not {name!r}"}, 400)
                    return self._reply(work.submit("weights", folder / name, int(body["version"])).result(WAIT_S))
                if self.path != "/complete":
                    return self._reply({"error": f"no {self.path} here"}, 404)
                want, wait, sharers = int(body["version"]), float(body.get("wait", WAIT_S)), int(body.get("sharers", 1))
                if not work.wait_for(want, wait):
                    return self._reply({"error": f"weights version {want} was not pushed in {wait:.0f} s "
                                                 f"(holds {work.version})"}, 504)
                jobs = [Job(**(j | {"params": SamplingParams(**j["params"])})) for j in body["jobs"]]
                self._reply({"completions": work.submit("complete", jobs, want, sharers).result(WAIT_S)})
            except StaleVersion as e:
                self._reply({"error": f"{e}: the trainer processes are out of step"}, 409)
            except TimeoutError:  # the engine held it past WAIT_S
                self._reply({"error": f"the engine did not answer in {WAIT_S:.0f} s"}, 504)
            except Exception as e:  # noqa: BLE001
                traceback.print_exc()
                self._reply({"error": f"{type(e).__name__}: {e}"}, 500)

    # on a cluster the trainers reach it on another node (the token keeps other users out)
    server = ThreadingHTTPServer(("127.0.0.1" if host == "127.0.0.1" else "0.0.0.0", 0), Handler)

    def stop(*_) -> None:  # SIGTERM (the stage is over, or its process died): close the engine, then exit
        threading.Thread(target=server.shutdown, daemon=True).start()
        threading.Timer(60, lambda: os._exit(1)).start()  # an engine that will not close
    signal.signal(signal.SIGTERM, stop)
    url_file, url = folder / f"server-{index}.url", f"http://{host}:{server.server_address[1]}"
    tmp = url_file.with_suffix(".tmp")
    tmp.write_text(url + "\n")
    os.replace(tmp, url_file)  # whole, once it serves
    print(f"rollout server: {model} at {url}", flush=True)
    try:
        server.serve_forever()
    finally:
        engine.close()
    os._exit(0)  # the watchdog timer and the engine thread need not be waited for


def main(argv: list[str] | None = None) -> None:
    import argparse
    import signal

    from qwen3_recipe.train.launch import die_with_parent
    die_with_parent(signal.SIGTERM)  # a killed stage (or srun task) takes its servers along
    ap = argparse.ArgumentParser(prog=SERVER)
    ap.add_argument("--model", required=True)
    ap.add_argument("--max-tokens", type=int, required=True)
    ap.add_argument("--kind", default=None)
    ap.add_argument("--folder", type=Path, required=True, help="the stage's rollout folder (URL file, weights)")
    ap.add_argument("--index", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--tp", type=int, default=1)
    a = ap.parse_args(argv)
    serve(a.model, a.max_tokens, a.kind, a.folder, a.index, a.host, a.tp)


if __name__ == "__main__":
    main()
