"""A trainer process's client of the stage's rollout servers (issue 19, `execution.rollout.servers`; the server:
posttrain/rollout_server.py). It is a GenerationEngine like the colocated ones, so the chat template, the modes,
the two-phase budget and its repairs run here; only `complete` goes to the server.

Trainer process r samples from server r % servers. Weights: at each sync every process counts a new weights
version (push_weights, which every process calls at the same points); process 0 writes the policy's weights once,
in the servers' dtype, to `<stage>/rollout/weights-<version>.safetensors`, has every server load it, and removes
it. Each sampling request names the version it must be sampled with, so a process that arrives before the push
waits for it, and one behind it is refused rather than served other weights (a barrier at each push keeps every
process from falling behind). On a cluster the run directory is
the shared file system: weights do not travel over NCCL (TRL's vLLM server mode does that, GPU-only), so a push
costs a write and a read of the whole model.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from qwen3_recipe.launch.rollout_servers import FOLDER, TOKEN_ENV
from qwen3_recipe.synth.engines import GenerationEngine


class ServedRollouts(GenerationEngine):
    """Process `rank` of `world`'s client of `urls` (the stage's servers, their files in `folder`)."""

    def __init__(self, urls: list[str], tokenizer_dir: Path, *, rank: int, world: int, folder: Path, token: str,
                 timeout: float = 3600) -> None:
        from transformers import AutoTokenizer
        self.urls = [u.rstrip("/") for u in urls]
        self.url, self.writer = self.urls[rank % len(urls)], rank == 0
        self.sharers = len(range(rank % len(urls), max(world, rank + 1), len(urls)))  # processes on this server
        self.folder, self.token, self.timeout, self.version = folder, token, timeout, 0
        info = self._call(self.url, "/info")
        self.budget, self.supports_native = info["budget"], info["supports_native"]
        self.at_sampling_temperature, self.dtype = info["at_sampling_temperature"], info["dtype"]
        super().__init__(AutoTokenizer.from_pretrained(tokenizer_dir))

    def _call(self, url: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json",
                                                                       "X-Rollout-Token": self.token})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout + 60) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as e:
            try:
                message = json.load(e).get("error", e.reason)
            except ValueError:
                message = e.reason
            kind = TimeoutError if e.code == 504 else RuntimeError
            raise kind(f"rollout server {url}{path}: {message} (its log: {self.folder}/server-*.log)") from None
        except urllib.error.URLError as e:
            raise RuntimeError(f"rollout server {url} cannot be reached ({e.reason}); its log is in "
                               f"{self.folder}") from None
        except (OSError, http.client.HTTPException) as e:  # it went away mid-request, or stalled
            kind = TimeoutError if isinstance(e, TimeoutError) else RuntimeError
            raise kind(f"rollout server {url}{path}: {type(e).__name__} {e} (its log: {self.folder}/server-*.log)") \
                from None

    def complete(self, jobs):
        from qwen3_recipe.synth.budget import Completion
        if not jobs:
            return []
        body = {"jobs": [asdict(j) for j in jobs], "version": self.version, "sharers": self.sharers,
                "wait": self.timeout}
        return [Completion(c["token_ids"], c["finish_reason"],
                           None if c["logprobs"] is None else
                           [None if d is None else {int(t): v for t, v in d.items()} for d in c["logprobs"]])
                for c in self._call(self.url, "/complete", body)["completions"]]

    def push(self, weights: dict) -> None:
        """A new weights version (every process); process 0 writes it and has every server load it. Every process
        passes a barrier first, so none still samples the version before when process 0 replaces it (the
        servers would refuse that process's request)."""
        import torch
        self.version += 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()
        if not self.writer:
            return  # its next request waits for the version
        from safetensors.torch import save_file
        dtype, seen, whole = getattr(torch, self.dtype), set(), {}
        for k, v in weights.items():  # safetensors refuses tensors sharing memory (a tied LM head)
            v = v.detach().to(dtype).cpu().contiguous()
            whole[k] = v.clone() if v.data_ptr() in seen else v
            seen.add(v.data_ptr())
        name = f"weights-{self.version}.safetensors"
        path = self.folder / name
        self.folder.mkdir(parents=True, exist_ok=True)
        save_file(whole, str(path.with_suffix(".tmp")))
        os.replace(path.with_suffix(".tmp"), path)
        del whole
        try:
            with ThreadPoolExecutor(len(self.urls)) as pool:
                list(pool.map(lambda url: self._call(url, "/weights", {"name": name, "version": self.version}),
                              self.urls))
        finally:
            path.unlink(missing_ok=True)  # every server holds it now (or the stage stops)


def client(spec: dict, init: Path) -> ServedRollouts:
    """This trainer process's client of the stage's servers (spec["rollout_servers"]: their URLs)."""
    return ServedRollouts(spec["rollout_servers"], init, rank=int(os.environ.get("RANK", "0")),
                          world=int(os.environ.get("WORLD_SIZE", "1")), folder=Path(spec["out"]) / FOLDER,
                          token=os.environ.get(TOKEN_ENV, ""))
