"""Reasoning RL: GRPO on query-verifier pairs (Qwen3 report, section 4.2).

Per step: B prompts, G samples each from the current policy (the rollout engine holds the weights
pushed every `sync_every` steps), rewards from the registered verifiers, group-normalised advantages,
and one clipped policy-gradient update. The importance ratio is taken against the log-probabilities
the rollout engine reported, so stale rollout weights (sync_every > 1) are corrected for; a reference
model adds the k3 KL penalty when kl_coef > 0. The rollout temperature anneals linearly from
`temperature.start` to `temperature.end`, and both sides of the ratio are log-probabilities at the
step's temperature (softmax(logits / T)): the distribution the rollouts were drawn from. Tokens the
thinking budget inserted were not drawn from it: they are masked out of the loss (`forced_tokens`
counts them per step).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from qwen3_recipe.posttrain.objectives import group_advantages, grpo_loss
from qwen3_recipe.posttrain.policy import Batch, Policy, at_temperature, entropy, gather_logprobs
from qwen3_recipe.posttrain.rollout_engine import push_weights
from qwen3_recipe.posttrain.rollouts import (
    PolicySampler,
    Rollout,
    logprobs_of,
    micro_batches,
    reward_summary,
    rollout_rows,
    sample_groups,
    score,
    step_rows,
)
from qwen3_recipe.posttrain.stage_plan import GRPOSettings
from qwen3_recipe.posttrain.trainer import StageTrainer


def verifier_reward(verifier) -> Callable[[Rollout], tuple[float, str]]:
    def reward(r: Rollout) -> tuple[float, str]:
        v = verifier.verify(r.text, r.prompt.gold, r.prompt.item)
        return v.score, v.reason
    return reward


def policy_update(trainer: StageTrainer, rollouts: list[Rollout], advantages: torch.Tensor, clip_eps: float,
                  ref: Policy | None = None, kl_coef: float = 0.0) -> dict:
    """One clipped policy-gradient step over all rollouts (token-level mean over sampled tokens,
    micro-batched). Every log-probability is at the rollout's sampling temperature: the policy's new
    ones (logits / T), the engine's old ones (processed, see rollout_engine.ROLLOUT_LOGPROBS) and the
    reference's, so the k3 term estimates KL(policy_T || reference_T) from samples of policy_T (and the
    entropy logged is policy_T's).
    Tokens the thinking budget forced condition the rest but are masked out of loss and statistics."""
    policy = trainer.policy
    seqs = [r.seq for r in rollouts]
    temps = [r.temperature for r in rollouts]
    masks = [r.sampled for r in rollouts]
    missing = [i for i, r in enumerate(rollouts) if r.old_logps is None]
    # engines that report no usable log-probabilities: the policy's own, before the update
    for i, lp in zip(missing, logprobs_of(policy, [seqs[i] for i in missing], [temps[i] for i in missing])):
        rollouts[i].old_logps = lp
    ref_logps = logprobs_of(ref, seqs, temps) if ref is not None and kl_coef > 0 else None
    total = max(1, sum(int(m.sum()) for m in masks))
    stats = {"entropy": 0.0, "approx_kl": 0.0, "clip_fraction": 0.0, "kl_ref": 0.0}

    def backward() -> torch.Tensor:
        loss_sum = torch.zeros(())
        for idx in micro_batches(seqs):
            batch = Batch.pack([seqs[i] for i in idx], policy.device)
            logits = at_temperature(policy.response_logits(batch), [temps[i] for i in idx])
            logps = [gather_logprobs(lg, batch.tokens[0, s:e]) for lg, (s, e) in zip(logits, batch.spans)]
            old = [rollouts[i].old_logps.to(policy.device) for i in idx]
            keep = [masks[i].to(policy.device) for i in idx]
            refs = [ref_logps[i] for i in idx] if ref_logps is not None else None
            loss, st = grpo_loss(logps, old, advantages[idx].to(policy.device), clip_eps, refs, kl_coef, keep)
            tokens = sum(int(k.sum()) for k in keep)
            (loss * tokens / total).backward()
            loss_sum += loss.detach() * tokens / total
            with torch.no_grad():
                stats["entropy"] += float(sum(entropy(lg[k]).sum() for lg, k in zip(logits, keep))) / total
                stats["approx_kl"] += float(sum((o - n)[k].sum() for o, n, k in zip(old, logps, keep))) / total
                for k in ("clip_fraction", "kl_ref"):
                    stats[k] += st.get(k, 0.0) * tokens / total
        return loss_sum

    out = trainer.optimise(backward)
    if ref_logps is None:
        stats.pop("kl_ref")
    return out | stats


def run_grpo(trainer: StageTrainer, engine, prompts, verifier, s: GRPOSettings, rec_for, stage: str,
             ref: Policy | None = None) -> list[dict]:
    """Train `trainer.policy` with GRPO; rec_for(step) gives the step's provenance recorder."""
    reward = verifier_reward(verifier)
    sample = PolicySampler(engine, trainer.policy, s)

    def step_fn(step: int):
        groups = sample(prompts, step, temperature=s.temperature(step), reward_fn=reward)
        rewards, rollouts, metrics = reward_summary(groups)
        adv = group_advantages(rewards, s.reward_scaling)
        metrics |= {"reward_std": float(rewards.std(unbiased=False)), "temperature": s.temperature(step),
                    **policy_update(trainer, rollouts, adv.flatten(), s.clip_eps, ref, s.kl_coef)}
        metrics["kl"] = metrics.get("kl_ref", metrics["approx_kl"])

        def commit() -> None:
            rec = rec_for(step + 1)
            rollout_rows(rec, stage, step + 1, rollouts, sample.version, adv.flatten().tolist())
            step_rows(rec, stage, "reasoning_rl", step + 1, metrics)
            rec.close()
        return metrics, commit

    return trainer.run(step_fn)


def mean_reward(engine, policy: Policy, prompts, verifier, s: GRPOSettings, n: int = 4) -> float:
    """Mean verifier reward of n fixed-seed samples per prompt at the final rollout temperature:
    the before / after number of a stage (and of the tests)."""
    push_weights(engine, policy.hf_state_dict())
    groups = sample_groups(engine, prompts, step=-1, seed=s.seed, n=n, max_tokens=s.max_response_tokens,
                           temperature=s.temperature_end, mode=s.mode, thinking_budget=s.thinking_budget)
    score(groups, verifier_reward(verifier))
    rewards = [r.reward for g in groups for r in g]
    return sum(rewards) / max(1, len(rewards))
