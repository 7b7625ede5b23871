"""General RL (Qwen3 report, section 4.4) as preference tuning on the policy's own samples.

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

import torch

from qwen3_recipe.posttrain.grpo import policy_update
from qwen3_recipe.posttrain.objectives import dpo_loss, group_advantages
from qwen3_recipe.posttrain.policy import Batch, Policy
from qwen3_recipe.posttrain.rollouts import (
    PolicySampler,
    Rollout,
    micro_batches,
    reward_summary,
    rollout_rows,
    sample_groups,
    score,
    step_rows,
)
from qwen3_recipe.posttrain.trainer import StageTrainer

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


def sequence_logps(policy: Policy, seqs: list, grad: bool) -> torch.Tensor:
    """Summed response log-probability per sequence."""
    sums = []
    for idx in micro_batches(seqs):
        with torch.set_grad_enabled(grad):
            lps = policy.token_logprobs(Batch.pack([seqs[i] for i in idx], policy.device))
        sums += [lp.sum() for lp in lps]
    return torch.stack(sums) if sums else torch.zeros(0)


def pair_margin(policy: Policy, pairs: list[tuple[Rollout, Rollout]]) -> float:
    """Mean log p(chosen) - log p(rejected) under the policy."""
    with torch.no_grad():
        c = sequence_logps(policy, [p[0].seq for p in pairs], grad=False)
        r = sequence_logps(policy, [p[1].seq for p in pairs], grad=False)
    return float((c - r).mean()) if pairs else 0.0


def dpo_update(trainer: StageTrainer, ref: Policy, pairs: list[tuple[Rollout, Rollout]], beta: float) -> dict:
    chosen, rejected = [p[0].seq for p in pairs], [p[1].seq for p in pairs]
    ref_c, ref_r = sequence_logps(ref, chosen, False), sequence_logps(ref, rejected, False)
    stats = {}

    def backward() -> torch.Tensor:
        loss, margin = dpo_loss(sequence_logps(trainer.policy, chosen, True),
                                sequence_logps(trainer.policy, rejected, True), ref_c, ref_r, beta)
        loss.backward()
        stats["dpo_margin"] = float(margin.mean())
        stats["dpo_accuracy"] = float((margin > 0).float().mean())
        return loss.detach()

    return trainer.optimise(backward) | stats


def run_general_rl(trainer: StageTrainer, engine, ref: Policy, prompts, reward_fn, s, rec_for, stage: str,
                   heldout_pairs: list[tuple[Rollout, Rollout]], method: str, dpo_fraction: float,
                   beta: float) -> list[dict]:
    """s: GRPOSettings (steps, batch, group, response length, clip, seed)."""
    dpo_steps = {"dpo": s.steps, "rlhf": 0}.get(method, round(dpo_fraction * s.steps))
    sample = PolicySampler(engine, trainer.policy, s)

    def step_fn(step: int):
        groups = sample(prompts, step, temperature=ROLLOUT_TEMPERATURE, reward_fn=reward_fn)
        rewards, rollouts, metrics = reward_summary(groups)
        adv = None
        if step < dpo_steps:
            pairs = pairs_of(groups)
            metrics |= {"phase": 0.0, "pairs": float(len(pairs))}
            if pairs:
                metrics |= dpo_update(trainer, ref, pairs, beta)
        else:
            adv = group_advantages(rewards, s.reward_scaling).flatten()
            metrics |= {"phase": 1.0, **policy_update(trainer, rollouts, adv, s.clip_eps, ref, beta)}
        if heldout_pairs and ((step + 1) % max(1, s.steps // 4) == 0 or step + 1 == s.steps):
            metrics["heldout_margin"] = pair_margin(trainer.policy, heldout_pairs)

        def commit() -> None:
            rec = rec_for(step + 1)
            rollout_rows(rec, stage, step + 1, rollouts, sample.version, None if adv is None else adv.tolist())
            step_rows(rec, stage, "general_rl", step + 1, metrics)
            rec.close()
        return metrics, commit

    return trainer.run(step_fn)


def heldout_pairs(engine, prompts, reward_fn, s, n_prompts: int = 32) -> list[tuple[Rollout, Rollout]]:
    """Pairs from the starting policy's samples on held-out prompts (seeded: the same on a rerun)."""
    groups = sample_groups(engine, prompts[:n_prompts], step=-1, seed=s.seed, n=s.group_size,
                           max_tokens=s.max_response_tokens, temperature=ROLLOUT_TEMPERATURE, mode=s.mode)
    score(groups, reward_fn)
    return pairs_of(groups)
