"""`synth` section: synthetic reasoning data jobs, verifiers, sampling."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from qwen3_recipe.recipe.schema.common import Float, Fraction, Mode, PositiveTokens, Section
from qwen3_recipe.recipe.schema.model import ModelRef
from qwen3_recipe.recipe.schema.serving import Serving


class MathVerifier(Section):
    """Answers compared with math-verify (boxed / LaTeX / numeric)."""

    type: Literal["math"]


class CodeVerifier(Section):
    """Run the sample against tests in a sandboxed process."""

    type: Literal["code"]
    timeout_s: Float = Field(10.0, gt=0)
    memory_mb: int = Field(1024, gt=0)


class ExactVerifier(Section):
    type: Literal["exact"]
    normalize: bool = True


class RegexVerifier(Section):
    type: Literal["regex"]
    pattern: str


class MultipleChoiceVerifier(Section):
    type: Literal["multiple_choice"]


class FormatVerifier(Section):
    """Reward well-formed output: a closed think block and an extractable answer."""

    type: Literal["format"]


Verifier = Annotated[
    Union[MathVerifier, CodeVerifier, ExactVerifier, RegexVerifier, MultipleChoiceVerifier,
          FormatVerifier],
    Field(discriminator="type"),
]


class Sampling(Section):
    """Overrides of the per-mode defaults (Qwen3 report: think T=0.6 top-p 0.95 top-k 20;
    no_think T=0.7 top-p 0.8 top-k 20)."""

    temperature: Float | None = Field(None, ge=0)
    top_p: Fraction | None = None
    top_k: int | None = None
    min_p: Fraction | None = None
    seed: int | None = None


class SampleFilters(Section):
    require_closed_think: bool = True
    max_repetition_ratio: Fraction | None = 0.3
    max_language_mix: Fraction | None = 0.1
    dedup: bool = True


class SynthJob(Section):
    """Generate, verify and rejection-sample reasoning data with a teacher."""

    description: str | None = None
    teacher: ModelRef
    prompts: str
    """A datasets_spec/ entry with a prompt field."""
    limit: int | None = Field(None, gt=0)
    """Use at most this many prompts."""
    mode: Literal["think", "no_think", "both"] = "think"
    samples_per_prompt: int = Field(4, gt=0)
    keep_per_prompt: int = Field(1, gt=0)
    verifier: Verifier | None = None
    majority_vote: bool = False
    """Without gold answers: keep samples agreeing with the majority (flagged as such)."""
    thinking_budget: PositiveTokens | None = None
    max_tokens: PositiveTokens = 32768
    expected_tokens: PositiveTokens | None = None
    """Mean generated tokens per sample, for estimates (default: max_tokens / 2)."""
    soft_switch: bool = True
    """With mode both: append /think or /no_think to each prompt, so the data teaches the soft switch
    (Qwen3's fusion data). false: the mode comes from the chat template's enable_thinking alone (the
    hard switch), for a model that has never seen the flags."""
    multi_turn_share: Fraction = Field(0.0, lt=1.0)
    """With mode both: this share of the dataset is two-turn conversations that switch mode (turn 1
    in one mode, turn 2 with the opposite /think or /no_think flag), built from kept samples of two
    different prompts, for thinking-mode fusion (qwen3_recipe/synth/fusion.py). 0: none."""
    sampling: Sampling = Field(default_factory=Sampling)
    filters: SampleFilters = Field(default_factory=SampleFilters)
    decontaminate: bool = True
    engine: Literal["vllm", "vllm_server", "transformers"] = "vllm"
    server_url: str | None = None
    serving: Serving | None = None
    """This job's serving: its keys override `execution.serving`'s."""


class Synth(Section):
    jobs: dict[str, SynthJob] = {}


__all__ = ["Mode", "SynthJob", "Synth", "Verifier", "Sampling"]
