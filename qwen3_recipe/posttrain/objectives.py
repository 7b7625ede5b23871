"""The losses of the post-training stages, as plain functions of per-token log-probabilities / logits.

- GRPO (DeepSeekMath; Qwen3 section 4.2): group-normalised advantages, the PPO-clipped ratio,
  token-level mean (DAPO) over sampled tokens, optional KL to a reference with the k3 estimator.
- DPO (Rafailov et al.): -log sigmoid(beta * (policy margin - reference margin)).
- Distillation: KL over the teacher's top-k (off-policy, with renormalised teacher probabilities)
  and the full-vocabulary per-token KL, reverse (mode-seeking, on-policy) or forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def group_advantages(rewards: torch.Tensor, scaling: str = "group", eps: float = 1e-4) -> torch.Tensor:
    """r - its group's mean (rows are groups), divided by the sample standard deviation (+ eps) of the group
    ("group"), of the whole step's rewards ("batch"), or not at all ("none"): TRL's GRPO formula (its
    `scale_rewards`), so the two paths train alike. A group whose rewards are all equal teaches nothing."""
    centred = rewards - rewards.mean(-1, keepdim=True)
    if scaling == "none":
        return centred
    if scaling == "group":
        return centred / (rewards.std(-1, keepdim=True) + eps)
    if scaling == "batch":
        return centred / (rewards.flatten().std() + eps)
    raise ValueError(f"reward scaling must be 'group', 'batch' or 'none', not {scaling!r}")


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Unbiased, non-negative per-token estimate of KL(policy || reference) (Schulman's k3)."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1


def grpo_loss(logps: list[torch.Tensor], old_logps: list[torch.Tensor], advantages: torch.Tensor,
              clip_eps: float, ref_logps: list[torch.Tensor] | None = None, kl_coef: float = 0.0,
              masks: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, dict]:
    """Clipped policy gradient over the response tokens of a batch (one advantage per sequence), a
    token-level mean: mean over tokens of -min(r A, clip(r, 1 - eps, 1 + eps) A) + kl_coef k3, with
    r = exp(logp - old_logp). masks (bool per token) keep a sequence's sampled tokens: forced ones
    (the thinking budget's early-stop text) condition the rest but take no part in the loss."""
    terms, kls, clipped = [], [], []
    for i, (lp, old) in enumerate(zip(logps, old_logps)):
        keep = masks[i] if masks is not None else None
        if keep is not None:
            lp, old = lp[keep], old[keep]
        if lp.numel() == 0:
            continue
        ratio = torch.exp(lp - old)
        a = advantages[i]
        term = -torch.minimum(ratio * a, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * a)
        if ref_logps is not None and kl_coef > 0:
            ref = ref_logps[i][keep] if keep is not None else ref_logps[i]
            kl = k3_kl(lp, ref)
            term = term + kl_coef * kl
            kls.append(kl.detach())
        terms.append(term)
        clipped.append(((ratio - 1).abs() > clip_eps).float().detach())
    if not terms:
        return torch.zeros((), requires_grad=True), {}
    loss = torch.cat(terms).mean()
    stats = {"clip_fraction": float(torch.cat(clipped).mean())}
    if kls:
        stats["kl_ref"] = float(torch.cat(kls).mean())
    return loss, stats


def dpo_loss(chosen: torch.Tensor, rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequence log-probabilities in, (loss, per-pair implicit reward margin) out."""
    margin = (chosen - ref_chosen) - (rejected - ref_rejected)
    return -F.logsigmoid(beta * margin).mean(), margin.detach()


def topk_kl(student_logits: torch.Tensor, top_ids: torch.Tensor, top_logps: torch.Tensor) -> torch.Tensor:
    """Per-token KL(teacher || student) over the teacher's top-k tokens ([T, V], [T, k], [T, k])."""
    p = torch.softmax(top_logps, -1)  # renormalised over the top-k
    q = torch.log_softmax(student_logits, -1).gather(-1, top_ids)
    return (p * (torch.log(p.clamp_min(1e-12)) - q)).sum(-1)


def token_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, direction: str) -> torch.Tensor:
    """Per-token KL over the full vocabulary: "reverse" KL(student || teacher), "forward" KL(teacher || student)."""
    s, t = F.log_softmax(student_logits, -1), F.log_softmax(teacher_logits, -1)
    if direction == "reverse":
        return (s.exp() * (s - t)).sum(-1)
    if direction == "forward":
        return (t.exp() * (t - s)).sum(-1)
    raise ValueError(f"KL direction must be 'reverse' or 'forward', not {direction!r}")
