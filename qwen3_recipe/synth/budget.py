"""Thinking budgets: reading a sample's thinking span, and the two-phase fallback.

Two-phase (any engine that can continue from token ids): phase 1 stops at `</think>`, at the end of
turn, or after B thinking tokens; a sample cut there gets the early-stop text's tokens appended, and
phase 2 continues from prompt + phase-1 tokens (+ early-stop tokens) to the end of turn. With prefix
caching, phase 2 recomputes little of its prompt. The native path (vLLM's `thinking_token_budget`)
forces the same early-stop tokens after exactly B thinking tokens, so `analyze` reads both alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from qwen3_recipe.synth.sampling import EOS, THINK_END, THINK_START, SamplingParams


@dataclass(frozen=True)
class Markers:
    think_start: int
    think_end: int
    eos: int
    early_stop: tuple[int, ...]  # the early-stop text's tokens, as an engine forces them

    @classmethod
    def from_tokenizer(cls, tokenizer, early_stop: str) -> Markers:
        ids = [tokenizer.convert_tokens_to_ids(t) for t in (THINK_START, THINK_END, EOS)]
        if any(i is None or i == tokenizer.unk_token_id for i in ids):
            raise ValueError(f"tokenizer lacks one of {THINK_START}, {THINK_END}, {EOS}")
        return cls(*ids, tuple(tokenizer.encode(early_stop, add_special_tokens=False)))


@dataclass
class Job:
    """One sample to generate: an engine's unit of work."""
    prompt_ids: list[int]
    params: SamplingParams  # resolved; seed is this sample's
    max_tokens: int
    stop_token_ids: list[int]
    logprobs: int | None = None
    thinking_budget: int | None = None  # for the engine's native budget; None in two-phase calls


@dataclass
class Completion:
    token_ids: list[int]
    finish_reason: str  # "stop" | "length"
    logprobs: list[dict[int, float] | None] | None = None


def _find(seq: list[int], sub: tuple[int, ...] | list[int], start: int = 0) -> int:
    n = len(sub)
    for i in range(start, len(seq) - n + 1):
        if seq[i:i + n] == list(sub):
            return i
    return -1


def prompt_thinking(prompt_ids: list[int], m: Markers) -> int | None:
    """Thinking tokens already in the prompt when it ends inside <think>; None when it does not."""
    start = max((i for i, t in enumerate(prompt_ids) if t == m.think_start), default=-1)
    end = max((i for i, t in enumerate(prompt_ids) if t == m.think_end), default=-1)
    return len(prompt_ids) - start - 1 if start > end else None


def analyze(prompt_ids: list[int], ids: list[int], m: Markers, budget: int | None,
            inserted_at: int | None = None) -> tuple[int, bool, int | None]:
    """(thinking_tokens, budget_cut, cut_at) of generated ids. A cut is the early-stop text where it was
    inserted (two-phase), or found right after exactly `budget` thinking tokens (native forcing)."""
    pre = prompt_thinking(prompt_ids, m)
    if pre is None:
        if m.think_start not in ids:
            return 0, False, None
        body, pre = ids.index(m.think_start) + 1, 0
    else:
        body = 0
    if inserted_at is not None:
        return inserted_at - body + pre, True, inserted_at
    cut = _find(ids, m.early_stop, body) if budget is not None else -1
    end = ids.index(m.think_end, body) if m.think_end in ids[body:] else len(ids)
    if cut >= 0 and cut <= end and cut - body + pre == budget:
        return budget, True, cut
    return end - body + pre, False, None


def forced_after_end(prompt_ids: list[int], ids: list[int], m: Markers) -> bool:
    """The early-stop text forced into an answer after thinking had ended by itself: vLLM <= 0.32's
    native budget detects the end of thinking only as the whole configured end text, so a bare
    `</think>` goes unseen and the count runs on into the answer (vllm-project/vllm#39697; fixes open
    in #53572, #43210)."""
    body = 0 if prompt_thinking(prompt_ids, m) is not None else (
        ids.index(m.think_start) + 1 if m.think_start in ids else None)
    if body is None:
        return False
    cut = _find(ids, m.early_stop, body)
    return cut >= 0 and m.think_end in ids[body:cut]


def native_budget_supported() -> bool:
    """This vLLM has SamplingParams.thinking_token_budget and ReasoningConfig.reasoning_end_str."""
    import inspect
    try:
        import vllm
        from vllm.config.reasoning import ReasoningConfig
    except ImportError:
        return False
    return ("thinking_token_budget" in inspect.signature(vllm.SamplingParams).parameters
            and "reasoning_end_str" in inspect.signature(ReasoningConfig).parameters)


def native_budget_declared() -> bool:
    """The same answer as native_budget_supported, from vLLM's source instead of importing it: for a
    served job's client process, whose servers run vLLM (an import here costs ~7 s on 2 cores before
    they can start). Reads the fields the two classes declare; falls back to the import when either
    class is not where vLLM keeps it."""
    import ast
    import importlib.util
    from pathlib import Path
    spec = importlib.util.find_spec("vllm")
    if spec is None:
        return False
    root = Path(list(spec.submodule_search_locations or [""])[0])
    wanted = {("SamplingParams", root / "sampling_params.py"): "thinking_token_budget",
              ("ReasoningConfig", root / "config" / "reasoning.py"): "reasoning_end_str"}
    for (cls, path), field in wanted.items():
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, ValueError):
            return native_budget_supported()
        body = next((n.body for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls), None)
        if body is None:
            return native_budget_supported()
        if not any(isinstance(n, ast.AnnAssign) and getattr(n.target, "id", None) == field for n in body):
            return False
    return True


def two_phase(complete: Callable[[list[Job]], list[Completion]], jobs: list[Job], budgets: list[int | None],
              m: Markers) -> list[tuple[Completion, int | None]]:
    """Generate jobs, holding job i to budgets[i] thinking tokens; (completion, inserted_at) per job."""
    first = []
    for job, b in zip(jobs, budgets):
        stop = job.stop_token_ids + [m.think_end]
        limit = job.max_tokens
        if b is not None:
            pre = prompt_thinking(job.prompt_ids, m)
            limit = min(limit, b - pre if pre is not None else b + 1)  # b thinking tokens (+ <think>)
        first.append(replace(job, max_tokens=limit, stop_token_ids=stop if b is not None else job.stop_token_ids,
                             thinking_budget=None))
    runnable = [i for i, j in enumerate(first) if j.max_tokens > 0]
    done = dict(zip(runnable, complete([first[i] for i in runnable])))
    phase1 = [done.get(i, Completion([], "length", [] if j.logprobs else None)) for i, j in enumerate(first)]

    out: list[tuple[Completion, int | None]] = []
    second, where = [], []
    for i, (job, b, c) in enumerate(zip(jobs, budgets, phase1)):
        ids, insert = c.token_ids, []
        ended = bool(ids) and ids[-1] in job.stop_token_ids
        if b is None or ended or len(ids) >= job.max_tokens:
            out.append((c, None))
            continue
        thinking = prompt_thinking(job.prompt_ids, m) is not None or (m.think_start in ids and m.think_end not in ids)
        if c.finish_reason == "length" and thinking:
            insert = list(m.early_stop)
        rest = job.max_tokens - len(ids) - len(insert)
        lp = None if c.logprobs is None else c.logprobs + [None] * len(insert)  # inserted: not sampled
        out.append((Completion(ids + insert, "length", lp), len(ids) if insert else None))
        if rest > 0:
            second.append(replace(job, prompt_ids=job.prompt_ids + ids + insert, max_tokens=rest, thinking_budget=None))
            where.append(i)
    for i, c2 in zip(where, complete(second) if second else []):
        c1, at = out[i]
        lp = None if c1.logprobs is None else c1.logprobs + (c2.logprobs or [])
        out[i] = (Completion(c1.token_ids + c2.token_ids, c2.finish_reason, lp), at)
    return out
