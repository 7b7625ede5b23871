"""The synth job's side of the engines: build the recipe's engine for a teacher, and turn the job's
JSON-able request records into engine Requests and back (samples as plain dicts for the cache).
Each request's seed is derived from (job seed, prompt, mode), so a sample never depends on which
batch it was generated in - what makes a resumed job reproduce an uninterrupted one."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any


def build_engine(kind: str, model: str, *, server_url: str | None = None, max_tokens: int = 1024, **vllm_kwargs):
    import os
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # our progress bar, not vLLM's start-up log
    from qwen3_recipe.synth import engines
    if kind == "vllm_server":
        if not server_url:
            raise ValueError("engine vllm_server needs server_url")
        return engines.OpenAIServerEngine(server_url, tokenizer=model)
    if kind == "transformers":
        return engines.TransformersEngine(model)
    from qwen3_recipe.train.launch import has_accelerator
    # CPUs without bf16 matmul units emulate bf16 (vLLM's CPU default) several times slower than fp32
    extra = {} if has_accelerator() else {"dtype": "float32"}
    vllm_kwargs.setdefault("max_model_len", max_model_len(model, max_tokens))
    return engines.VLLMEngine(model, **extra | vllm_kwargs)


def max_model_len(model: str, max_tokens: int) -> int | None:
    """Enough for the prompt and the answer, no more than the model knows (small KV cache on CPU)."""
    from pathlib import Path
    cfg = Path(model) / "config.json"
    if not cfg.exists():
        return None
    limit = json.loads(cfg.read_text()).get("max_position_embeddings") or 4096
    return int(min(limit, max_tokens + 1024))


def derived_seed(parts: Any) -> int:
    return int(hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:8], 16)


def run_requests(engine, batch: list[dict]) -> list[list[dict]]:
    """Generate a batch of request records; per request a list of sample dicts."""
    from qwen3_recipe.synth.sampling import Request, Sample, SamplingParams
    requests = []
    for r in batch:
        overrides = {k: v for k, v in (r["sampling"] or {}).items() if v is not None and k != "seed"}
        base = (r["sampling"] or {}).get("seed")
        seed = derived_seed([base, r["seed"]])
        requests.append(Request(id=r["key"], messages=r["messages"], mode=r["mode"], n=r["n"],
                                sampling=SamplingParams(max_tokens=r["max_tokens"], seed=seed, **overrides),
                                thinking_budget=r["thinking_budget"], logprobs=r.get("logprobs")))
    # shallow: dataclasses.asdict copied every token id list element by element (~2% of generation time)
    names = [f.name for f in dataclasses.fields(Sample) if f.name != "logprobs"]
    out = []
    for r, res in zip(batch, engine.generate(requests)):
        k = r.get("logprobs")
        extra = {"prompt_ids": list(res.prompt_token_ids)} if k else {}
        out.append([{n: getattr(s, n) for n in names} | extra | (top_k_lists(s.token_ids, s.logprobs, k) if k else {})
                    for s in res.samples])
    return out


def top_k_lists(token_ids: list[int], logprobs: list[dict] | None, k: int) -> dict[str, list[list]]:
    """Per generated token, the k most likely token ids and their log-probabilities, best first (ties
    by id, so every engine orders them alike); a token without log-probabilities (one a thinking budget
    inserted) is certain: itself at 0, repeated. A sample without any is an error, not one-hot targets."""
    if token_ids and logprobs is None:
        raise RuntimeError("the engine returned no log-probabilities for a request that asked for them")
    ids, lps = [], []
    for t, d in zip(token_ids, logprobs):
        ranked = sorted((d or {t: 0.0}).items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        ranked += [ranked[-1]] * (k - len(ranked))
        ids.append([i for i, _ in ranked])
        lps.append([v for _, v in ranked])
    return {"top_ids": ids, "top_logps": lps}
