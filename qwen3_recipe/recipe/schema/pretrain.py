"""`pretrain` section: the curriculum of stages."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from qwen3_recipe.recipe.schema.common import Float, Fraction, PositiveTokens, Section, SeqLen, Tokens


class LRSchedule(Section):
    """Learning-rate schedule of a stage: linear warmup, then decay to min_lr_ratio x peak."""

    peak: Float = Field(3e-4, gt=0)
    warmup_tokens: Tokens = 0
    decay: Literal["cosine", "linear", "wsd", "constant"] = "cosine"
    decay_fraction: Fraction = 1.0
    """Share of the stage spent decaying (wsd: the final 10-20%)."""
    min_lr_ratio: Fraction = 0.1


class Optimizer(Section):
    name: Literal["adamw"] = "adamw"
    beta1: Fraction = 0.9
    beta2: Fraction = 0.95
    eps: Float = Field(1e-8, gt=0)
    weight_decay: Float = Field(0.1, ge=0)
    grad_clip: Float = Field(1.0, gt=0)


class PretrainStage(Section):
    """One curriculum stage: compiled to one torchtitan job, warm-started from the previous."""

    description: str | None = None
    tokens: PositiveTokens
    """Token budget of the stage (18T, 500B, ...)."""
    seq_len: SeqLen
    seq_len_start: SeqLen | None = None
    """Grow the sequence length within the stage: equal shares of its steps at seq_len_start, 2x, ...
    up to `seq_len` (which must be seq_len_start x 2^k), the batch in tokens held constant."""
    mixture: str
    """Name of a `data.mixtures` entry."""
    rope_theta: Float | None = Field(None, gt=0)
    """RoPE base for this stage (ABF raises it for long context); default: the model's."""
    lr: LRSchedule | None = None
    """Default: `pretrain.lr`."""
    batch_tokens: PositiveTokens | None = None
    """Global batch in tokens; default: `pretrain.batch_tokens`."""
    checkpoint_every_steps: int | None = Field(None, gt=0)
    init: Literal["previous", "scratch"] = "previous"
    """Warm-start from the previous stage's final checkpoint, or start fresh."""


class Pretrain(Section):
    batch_tokens: PositiveTokens = 4_000_000
    optimizer: Optimizer = Field(default_factory=Optimizer)
    lr: LRSchedule = Field(default_factory=LRSchedule)
    checkpoint_every_steps: int = Field(1000, gt=0)
    stages: dict[str, PretrainStage] = {}
    """Ordered: stages run top to bottom."""
