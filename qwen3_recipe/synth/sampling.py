"""Requests, sampling parameters and results of the generation engines, and prompt rendering.

Modes follow Qwen3: "think" or "no_think". A request's mode, when not given, is the last `/think` or
`/no_think` flag in its user turns (Qwen3's soft switch: the last flag wins), else "think" (Qwen3's
default). The mode picks the chat template's `enable_thinking` and the sampling defaults of the Qwen3
report (thinking T=0.6, top-p 0.95, top-k 20; non-thinking T=0.7, top-p 0.8, top-k 20).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Mode = Literal["think", "no_think"]
MODES: tuple[str, ...] = ("think", "no_think")

# Qwen3 technical report (arXiv:2505.09388), section 4.3, thinking budget: the text inserted when the
# budget runs out, after which the model answers. The "</think>." is the report's wording.
EARLY_STOP = ("Considering the limited time by the user, I have to give the solution based on the "
              "thinking directly now.\n</think>.\n\n")
THINK_START, THINK_END, EOS = "<think>", "</think>", "<|im_end|>"

MODE_DEFAULTS: dict[str, dict[str, float | int]] = {
    "think": {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0},
    "no_think": {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "min_p": 0.0},
}
_FLAG = re.compile(r"/(no_think|think)\b")
FLAGS = {"think": " /think", "no_think": " /no_think"}  # the soft switch as appended to a user turn


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings; None means the mode's default (MODE_DEFAULTS). temperature 0 is greedy.
    seed: sample i of a request uses seed + i (vLLM's convention for n > 1)."""
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    max_tokens: int = 1024
    seed: int | None = None

    def resolved(self, mode: str) -> SamplingParams:
        return replace(self, **{k: v for k, v in MODE_DEFAULTS[mode].items() if getattr(self, k) is None})


@dataclass
class Request:
    """messages (chat turns, rendered with the model's chat template) or prompt (text used verbatim)."""
    id: str
    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    mode: Mode | None = None
    n: int = 1
    sampling: SamplingParams = field(default_factory=SamplingParams)
    thinking_budget: int | None = None  # at most this many thinking tokens, then EARLY_STOP
    logprobs: int | None = None  # top-k log-probabilities per generated token

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError(f"request {self.id}: give exactly one of messages and prompt")
        if self.mode is not None and self.mode not in MODES:
            raise ValueError(f"request {self.id}: mode must be one of {MODES}, not {self.mode!r}")
        if self.n < 1 or (self.thinking_budget is not None and self.thinking_budget < 0):
            raise ValueError(f"request {self.id}: n must be >= 1 and thinking_budget >= 0")


@dataclass
class Sample:
    text: str  # decoded without special tokens (<think> and </think> are kept)
    token_ids: list[int]  # generated tokens, the end-of-turn token included when generated
    finish_reason: str  # "stop" or "length"
    logprobs: list[dict[int, float] | None] | None = None  # per token; None for inserted tokens
    thinking_tokens: int = 0  # tokens between <think> and </think> (or the early-stop text)
    budget_cut: bool = False  # the thinking budget ran out and EARLY_STOP was inserted
    cut_at: int | None = None  # index in token_ids where EARLY_STOP starts


@dataclass
class Result:
    id: str
    mode: Mode
    prompt_token_ids: list[int]
    samples: list[Sample]


def resolve_mode(request: Request) -> Mode:
    if request.mode is not None:
        return request.mode
    if request.messages is not None:
        flags = [f for m in request.messages if m.get("role") == "user"
                 for f in _FLAG.findall(str(m.get("content") or ""))]
        return flags[-1] if flags else "think"  # type: ignore[return-value]
    return "no_think" if request.prompt.rstrip().endswith(THINK_END) else "think"  # type: ignore[union-attr]


def render(tokenizer, request: Request, mode: str) -> list[int]:
    """Prompt token ids: the chat template with enable_thinking for the mode, or the text verbatim."""
    if request.messages is None:
        return tokenizer.encode(request.prompt, add_special_tokens=False)
    text = tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True,
                                         enable_thinking=mode == "think")
    return tokenizer.encode(text, add_special_tokens=False)
