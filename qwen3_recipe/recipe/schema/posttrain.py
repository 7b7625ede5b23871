"""`posttrain` section: ordered stages of the Qwen3 post-training pipeline."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from qwen3_recipe.recipe.schema.common import Float, Fraction, Mode, PositiveTokens, Section, SeqLen
from qwen3_recipe.recipe.schema.model import ModelRef
from qwen3_recipe.recipe.schema.serving import Serving
from qwen3_recipe.recipe.schema.synth import Sampling, Verifier


class _Stage(Section):
    description: str | None = None
    lr: Float = Field(1e-5, gt=0)
    batch_size: int = Field(64, gt=0)
    """Sequences (SFT) or prompts (RL) per optimizer step."""


class SFTStage(_Stage):
    """Supervised fine-tuning on chat data (long-CoT cold start); loss on assistant tokens only."""

    type: Literal["sft"]
    data: list[str]
    """Synth job names or datasets_spec/ chat entries."""
    seq_len: SeqLen = 32768
    """Tokens per packed row. (RL and distillation bound responses by max_(response_)tokens.)"""
    epochs: Float = Field(2.0, gt=0)
    tokens: PositiveTokens | None = None
    """Training tokens, for estimates (default: derived from the data)."""


class FusionStage(SFTStage):
    """Thinking-mode fusion: continual SFT on thinking and non-thinking samples."""

    type: Literal["fusion"]  # type: ignore[assignment]
    no_think_ratio: Fraction = 0.5


RewardScaling = Literal["group", "batch", "none"]


class Temperature(Section):
    start: Float = Field(1.0, ge=0)
    end: Float = Field(1.0, ge=0)


class ReasoningRLStage(_Stage):
    """GRPO on query-verifier pairs."""

    type: Literal["reasoning_rl"]
    prompts: str
    limit: int | None = Field(None, gt=0)
    """Use the first `limit` prompts (default: all)."""
    verifier: Verifier
    steps: int = Field(gt=0)
    group_size: int = Field(16, gt=1)
    max_response_tokens: PositiveTokens = 32768
    expected_tokens: PositiveTokens | None = None
    clip_eps: Float = Field(0.2, gt=0)
    kl_coef: Float = Field(0.0, ge=0)
    temperature: Temperature = Field(default_factory=Temperature)
    sync_every: int = Field(1, gt=0)
    """Push policy weights to the rollout engine every k steps."""
    thinking_budget: PositiveTokens | None = None
    reward_scaling: RewardScaling = "group"
    """Advantages: a reward minus its group's mean, divided by the standard deviation of its group, of the
    step's batch, or not divided (`none`: Dr. GRPO's unbiased choice)."""


class Reward(Section):
    """One weighted component of general RL's reward (qwen3_recipe/posttrain/rewards.py): `rule`
    checks (think block, answer given, length, the answer in the prompt's language, `must_include`),
    agreement with the prompt's `reference` answer, or a `reward_model`'s score."""

    type: Literal["rule", "reference", "reward_model"]
    weight: Float = 1.0
    path: str | None = None
    """Reward model directory (reward_model): an HF sequence-classification model with its tokenizer."""
    verifier: Verifier | None = None
    """How the answer is checked against the reference (reference). Default: by the prompt dataset's
    `domain`: math and reasoning -> math, code -> code (the item's tests), anything else -> exact
    (normalised)."""

    @model_validator(mode="after")
    def _fields_of_type(self) -> Reward:
        if self.type == "reward_model" and not self.path:
            raise ValueError("a reward_model reward needs `path` (the reward model's directory)")
        if self.path is not None and self.type != "reward_model":
            raise ValueError(f"`path` is for reward_model rewards, not {self.type}")
        if self.verifier is not None and self.type != "reference":
            raise ValueError(f"`verifier` is for reference rewards, not {self.type}")
        return self


class GeneralRLStage(_Stage):
    """Preference tuning: DPO on self-sampled pairs, RLHF policy gradient, or a hybrid schedule."""

    type: Literal["general_rl"]
    prompts: str
    limit: int | None = Field(None, gt=0)
    """Use the first `limit` prompts (default: all)."""
    rewards: list[Reward] = Field(default_factory=lambda: [Reward(type="rule")])
    method: Literal["dpo", "rlhf", "hybrid"] = "hybrid"
    dpo_fraction: Fraction = 0.5
    """Hybrid: share of steps spent on DPO before policy gradient."""
    steps: int = Field(gt=0)
    group_size: int = Field(8, gt=1)
    max_response_tokens: PositiveTokens = 8192
    expected_tokens: PositiveTokens | None = None
    beta: Float = Field(0.1, gt=0)
    reward_scaling: RewardScaling = "group"
    """Policy-gradient advantages (rlhf, hybrid's second phase), as reasoning_rl's."""


class DistillOffPolicyStage(_Stage):
    """Strong-to-weak, off-policy: the teacher's outputs (both modes) with top-k logprobs."""

    type: Literal["distill_offpolicy"]
    teacher: ModelRef
    prompts: str
    limit: int | None = Field(None, gt=0)
    modes: list[Mode] = ["think", "no_think"]
    samples_per_prompt: int = Field(1, gt=0)
    top_k: int = Field(20, gt=0)
    max_tokens: PositiveTokens = 32768
    expected_tokens: PositiveTokens | None = None
    kl_weight: Float = 1.0
    ce_weight: Float = 1.0
    epochs: Float = Field(1.0, gt=0)
    sampling: Sampling = Field(default_factory=Sampling)
    serving: Serving | None = None
    """How the teacher is served for its pass over the prompts (the job `posttrain.<stage>.teacher`):
    its keys override `execution.serving`'s."""


class DistillOnPolicyStage(_Stage):
    """Strong-to-weak, on-policy: the student samples, the teacher scores, minimise per-token KL."""

    type: Literal["distill_onpolicy"]
    teacher: ModelRef
    prompts: str
    limit: int | None = Field(None, gt=0)
    """Use the first `limit` prompts (default: all)."""
    steps: int = Field(gt=0)
    samples_per_prompt: int = Field(1, gt=0)
    max_tokens: PositiveTokens = 32768
    expected_tokens: PositiveTokens | None = None
    kl: Literal["reverse", "forward"] = "reverse"
    modes: list[Mode] = ["think", "no_think"]


PosttrainStage = Annotated[
    Union[SFTStage, FusionStage, ReasoningRLStage, GeneralRLStage, DistillOffPolicyStage,
          DistillOnPolicyStage],
    Field(discriminator="type"),
]


class Posttrain(Section):
    stages: dict[str, PosttrainStage] = {}
    """Ordered: each stage warm-starts from the one above (the first from the last pretrain stage)."""
    init: str | None = None
    """Path to a checkpoint to post-train instead of this recipe's pretrained model."""
