"""General RL (Qwen3 report, section 4.4) as preference tuning on the policy's own samples, on TRL
(posttrain/trl_general_rl.py: the DPO phase; posttrain/trl_grpo.py: the policy-gradient one).

Each step samples a group per prompt from the current policy and scores it with the recipe's
rewards (posttrain/rewards.py). Then either
- DPO: the best and the worst sample of each group (when their rewards differ) form a pair, and
  the DPO loss against the frozen reference (the stage's starting weights) is minimised; or
- RLHF-style policy gradient: GRPO's clipped update on the same rewards, with the k3 KL to the
  reference weighted by `beta`.
`method: hybrid` spends the first `dpo_fraction` of the steps on DPO, the rest on policy gradient.
Held-out pairs (sampled once from the starting policy on prompts the stage never trains on) track
the chosen-over-rejected margin.
"""

from __future__ import annotations

from qwen3_recipe.posttrain.rollouts import (
    Rollout,
    sample_groups,
    score,
)

ROLLOUT_TEMPERATURE = 1.0


def pairs_of(groups: list[list[Rollout]]) -> list[tuple[Rollout, Rollout]]:
    """(chosen, rejected): each group's best and worst sample, when the rewards differ."""
    out = []
    for g in groups:
        ranked = sorted(g, key=lambda r: r.reward, reverse=True)
        if ranked[0].reward > ranked[-1].reward:
            ranked[0].extra["role"], ranked[-1].extra["role"] = "chosen", "rejected"
            out.append((ranked[0], ranked[-1]))
    return out


def heldout_pairs(engine, prompts, reward_fn, s, n_prompts: int = 32) -> list[tuple[Rollout, Rollout]]:
    """Pairs from the starting policy's samples on held-out prompts (seeded: the same on a rerun)."""
    groups = sample_groups(engine, prompts[:n_prompts], step=-1, seed=s.seed, n=s.group_size,
                           max_tokens=s.max_response_tokens, temperature=ROLLOUT_TEMPERATURE, mode=s.mode)
    score(groups, reward_fn)
    return pairs_of(groups)
