"""Strong-to-weak distillation (Qwen3 report, section 4.5).

Off-policy: the teacher answers the stage's prompts in thinking and non-thinking modes, keeping its
top-k log-probabilities per token (a generation job of its own, posttrain/teacher_pass.py, served
like synth jobs); the student minimises KL over the teacher's top-k (renormalised) plus
cross-entropy on the teacher's tokens.

On-policy (posttrain/trl_distill.py, on TRL's GKD trainer): the student samples (its weights pushed
into the rollout engine), the teacher scores those very tokens with a forward pass, and the student
minimises the per-token KL to the teacher over the full vocabulary - reverse KL(student || teacher) by
default, as the report's on-policy phase; `kl: forward` is recorded as such.

Both stages measure the same number on held-out prompts the stage never trains on: the student's
per-token KL to the teacher on the student's own samples (reverse and forward), before and after.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import torch
import torch.nn.functional as F

from qwen3_recipe.posttrain.objectives import token_kl, topk_kl
from qwen3_recipe.posttrain.policy import Batch, Policy
from qwen3_recipe.posttrain.rollout_engine import push_weights
from qwen3_recipe.posttrain.rollouts import (
    micro_batches,
    sample_groups,
    step_rows,
)
from qwen3_recipe.posttrain.trainer import StageTrainer
from qwen3_recipe.synth.generate import derived_seed

EVAL_TEMPERATURE = 1.0
# Student samples per held-out prompt and mode: one each made the tiny recipe's number swing from 1.0 to
# 6.1 across seeds for the same student (its few held-out prompts; a sample that wanders dominates)
HELDOUT_SAMPLES = 8


def load_samples(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@torch.no_grad()
def heldout_kl(student: Policy, engine, teacher: Policy, prompts, modes: list[str], max_tokens: int,
               seed: int) -> dict:
    """Per-token KL between student and teacher on the student's own samples (fixed seeds)."""
    push_weights(engine, student.hf_state_dict())
    rollouts = [r for m in modes for g in sample_groups(engine, prompts, step=-1, seed=seed, n=HELDOUT_SAMPLES,
                                                       max_tokens=max_tokens, temperature=EVAL_TEMPERATURE, mode=m)
                for r in g]
    sums = {"reverse": 0.0, "forward": 0.0}
    seqs = [r.seq for r in rollouts]
    for idx in micro_batches(seqs):
        batch = Batch.pack([seqs[i] for i in idx], student.device)
        for s_lg, t_lg in zip(student.response_logits(batch), teacher.response_logits(batch)):
            for d in sums:
                sums[d] += float(token_kl(s_lg, t_lg, d).sum())
    tokens = max(1, sum(len(r.response_ids) for r in rollouts))
    return {"heldout_kl": sums["reverse"] / tokens, "heldout_kl_forward": sums["forward"] / tokens,
            "heldout_tokens": float(tokens)}


def run_offpolicy(trainer: StageTrainer, samples: list[dict], *, batch_size: int, kl_weight: float,
                  ce_weight: float, seed: int, rec_for, stage: str) -> list[dict]:
    order = list(range(len(samples)))
    per_epoch = max(1, math.ceil(len(samples) / batch_size))

    def step_fn(step: int):
        epoch, i = divmod(step, per_epoch)
        perm = order[:]
        random.Random(derived_seed([seed, "distill", epoch])).shuffle(perm)
        chosen = [samples[j] for j in perm[i * batch_size:(i + 1) * batch_size]]
        seqs = [(r["prompt_ids"], r["response_ids"]) for r in chosen]
        total = max(1, sum(len(r["response_ids"]) for r in chosen))
        stats = {"kl_topk": 0.0, "ce": 0.0}
        policy = trainer.policy

        def backward() -> torch.Tensor:
            loss_sum = torch.zeros(())
            for idx in micro_batches(seqs):
                batch = Batch.pack([seqs[j] for j in idx], policy.device)
                kl_sum = ce_sum = torch.zeros((), device=policy.device)
                for j, lg, (s, e) in zip(idx, policy.response_logits(batch), batch.spans):
                    ids = torch.tensor(chosen[j]["top_ids"], device=policy.device)
                    lps = torch.tensor(chosen[j]["top_logps"], device=policy.device)
                    kl_sum = kl_sum + topk_kl(lg, ids, lps).sum()
                    ce_sum = ce_sum + F.cross_entropy(lg, batch.tokens[0, s:e], reduction="sum")
                loss = (kl_weight * kl_sum + ce_weight * ce_sum) / total
                loss.backward()
                loss_sum += loss.detach()
                stats["kl_topk"] += float(kl_sum.detach()) / total
                stats["ce"] += float(ce_sum.detach()) / total
            return loss_sum

        metrics = trainer.optimise(backward) | stats

        def commit() -> None:
            rec = rec_for(step + 1)
            step_rows(rec, stage, "distill_offpolicy", step + 1, metrics)
            rec.close()
        return metrics, commit

    return trainer.run(step_fn)
