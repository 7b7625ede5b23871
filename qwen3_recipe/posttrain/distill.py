"""Strong-to-weak distillation (Qwen3 report, section 4.5).

Off-policy: the teacher answers the stage's prompts in thinking and non-thinking modes, keeping its
top-k log-probabilities per token (a generation job of its own, posttrain/teacher_pass.py, served
like synth jobs); the student minimises KL over the teacher's top-k (renormalised) plus
cross-entropy on the teacher's tokens (posttrain/trl_offpolicy.py, on TRL's SFTTrainer).

On-policy (posttrain/trl_distill.py, on TRL's GKD trainer): the student samples (its weights pushed
into the rollout engine), the teacher scores those very tokens with a forward pass, and the student
minimises the per-token KL to the teacher over the full vocabulary - reverse KL(student || teacher) by
default, as the report's on-policy phase; `kl: forward` is recorded as such.

Both stages measure the same number on held-out prompts the stage never trains on: the student's
per-token KL to the teacher on the student's own samples (reverse and forward), before and after.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from qwen3_recipe.posttrain.objectives import token_kl
from qwen3_recipe.posttrain.policy import Batch, Policy
from qwen3_recipe.posttrain.rollout_engine import push_weights
from qwen3_recipe.posttrain.rollouts import (
    micro_batches,
    sample_groups,
)

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
