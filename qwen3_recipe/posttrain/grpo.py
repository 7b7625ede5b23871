"""GRPO's pieces in our own code (Qwen3 report, section 4.2): a verifier as a reward, the held-out mean
reward of a stage, and the clipped policy-gradient update that general_rl's policy-gradient phase runs.
reasoning_rl's steps run on TRL's GRPOTrainer (posttrain/trl_grpo.py), whose loss equals `policy_update`'s
(tests/test_trl_equivalence.py).

The update: the importance ratio is taken against the log-probabilities the rollout engine reported, so
stale rollout weights (sync_every > 1) are corrected for; a reference model adds the k3 KL penalty when
its coefficient is > 0. Both sides of the ratio are log-probabilities at the rollout's temperature
(softmax(logits / T)): the distribution it was drawn from. Tokens the thinking budget inserted were not
drawn from it: they are masked out of the loss.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from qwen3_recipe.posttrain.objectives import grpo_loss
from qwen3_recipe.posttrain.policy import Batch, Policy, at_temperature, entropy, gather_logprobs
from qwen3_recipe.posttrain.rollout_engine import push_weights
from qwen3_recipe.posttrain.rollouts import Rollout, logprobs_of, micro_batches, sample_groups, score
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
