"""GRPO's pieces in our own code (Qwen3 report, section 4.2): a verifier as a reward and the held-out mean
reward of a stage. The steps run on TRL's GRPOTrainer (posttrain/trl_grpo.py: reasoning_rl, general_rl's
policy-gradient phase), whose loss equals objectives.grpo_loss (tests/test_trl_equivalence.py).
"""

from __future__ import annotations

from collections.abc import Callable

from qwen3_recipe.posttrain.rollout_engine import push_weights
from qwen3_recipe.posttrain.rollouts import (
    Rollout,
    sample_groups,
    score,
)
from qwen3_recipe.posttrain.stage_plan import GRPOSettings


def verifier_reward(verifier) -> Callable[[Rollout], tuple[float, str]]:
    def reward(r: Rollout) -> tuple[float, str]:
        v = verifier.verify(r.text, r.prompt.gold, r.prompt.item)
        return v.score, v.reason
    return reward


HELDOUT_SAMPLES = 4  # per held-out prompt


def mean_reward(engine, weights: dict | None, prompts, verifier, s: GRPOSettings, n: int = HELDOUT_SAMPLES) -> float:
    """Mean verifier reward of n fixed-seed samples per prompt at the final rollout temperature, from the
    policy's `weights` (HF names; None: those the engine holds): the before / after number of a stage."""
    if weights is not None:
        push_weights(engine, weights)
    groups = sample_groups(engine, prompts, step=-1, seed=s.seed, n=n, max_tokens=s.max_response_tokens,
                           temperature=s.temperature_end, mode=s.mode, thinking_budget=s.thinking_budget)
    score(groups, verifier_reward(verifier))
    rewards = [r.reward for g in groups for r in g]
    return sum(rewards) / max(1, len(rewards))
