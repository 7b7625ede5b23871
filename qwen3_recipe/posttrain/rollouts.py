"""Sampling groups from the current policy and scoring them: the part GRPO, general RL and on-policy
distillation share (each on TRL: their trainers push the policy's weights into the engine).

Each rollout's seed derives from (stage seed, step, prompt, mode), so a step redone after a resume samples
exactly what it sampled the first time (given the same weights, which the checkpoint restores).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from qwen3_recipe.posttrain.policy import Batch, Policy
from qwen3_recipe.posttrain.rollout_engine import (
    logprobs_at_sampling_temperature,
)
from qwen3_recipe.synth.generate import derived_seed
from qwen3_recipe.synth.prompts import Prompt
from qwen3_recipe.synth.sampling import Request, SamplingParams

MICRO_TOKENS = 4096  # tokens per packed forward/backward; memory, not maths


@dataclass
class Rollout:
    prompt: Prompt
    mode: str
    prompt_ids: list[int]
    response_ids: list[int]
    text: str
    # the sampling engine's log-probabilities of the response at `temperature` (0 at forced tokens);
    # None when it reported none usable (the policy then scores the rollout before the update)
    old_logps: torch.Tensor | None
    reward: float | None = None
    verdict: str | None = None
    extra: dict = field(default_factory=dict)
    temperature: float = 1.0  # what the response was sampled at: its log-probabilities are of logits / T
    forced: torch.Tensor | None = None  # bool per response token: inserted by the thinking budget, not sampled

    @property
    def seq(self) -> tuple[list[int], list[int]]:
        return self.prompt_ids, self.response_ids

    @property
    def sampled(self) -> torch.Tensor:
        """bool per response token: drawn from the policy (what the policy-gradient loss is over)."""
        return ~self.forced if self.forced is not None else torch.ones(len(self.response_ids), dtype=torch.bool)


def sample_groups(engine, prompts: list[Prompt], *, step: int, seed: int, n: int, max_tokens: int,
                  temperature: float, mode: str = "think", thinking_budget: int | None = None,
                  top_p: float = 1.0) -> list[list[Rollout]]:
    """n samples per prompt from the engine's current weights (plain sampling: temperature and top-p,
    no top-k, so the policy gradient sees the policy's own distribution). Tokens the thinking budget
    forced are marked (Rollout.forced); the sampled ones keep the engine's log-probabilities when they
    are at the sampling temperature (rollout_engine.logprobs_at_sampling_temperature) or T is 1."""
    requests = [Request(id=p.prompt_id, messages=[{"role": "user", "content": p.text}], mode=mode, n=n,
                        sampling=SamplingParams(temperature=temperature, top_p=top_p, top_k=0, min_p=0.0,
                                                max_tokens=max_tokens,
                                                seed=derived_seed([seed, step, p.prompt_id, mode])),
                        thinking_budget=thinking_budget if mode == "think" else None, logprobs=0)
                for p in prompts]
    # top-p < 1 would make vLLM's processed log-probabilities those of the truncated distribution
    usable = top_p == 1.0 and (temperature == 1.0 or logprobs_at_sampling_temperature(engine))
    early_stop = len(engine.markers.early_stop) if hasattr(engine, "markers") else 0
    groups = []
    for p, res in zip(prompts, engine.generate(requests)):
        group = []
        for s in res.samples:
            forced = forced_mask(s, early_stop)
            old = sampled_logprobs(s, forced) if usable else None
            group.append(Rollout(p, res.mode, list(res.prompt_token_ids), list(s.token_ids), s.text, old,
                                 temperature=temperature, forced=forced))
        groups.append(group)
    return groups


def forced_mask(sample, early_stop_tokens: int) -> torch.Tensor:
    """The tokens of a sample its engine inserted rather than sampled: the early-stop text where the
    thinking budget cut (two-phase appends it, vLLM's native budget forces it through the logits, so it
    has log-probabilities there, of a distribution the policy never sampled from) and any token the
    engine gave no log-probabilities for by design (synth.sampling.Sample: None = inserted)."""
    n = len(sample.token_ids)
    forced = torch.zeros(n, dtype=torch.bool)
    if sample.budget_cut and sample.cut_at is not None:
        forced[sample.cut_at:min(n, sample.cut_at + early_stop_tokens)] = True
    if sample.logprobs is not None and len(sample.logprobs) == n:
        forced |= torch.tensor([d is None for d in sample.logprobs], dtype=torch.bool)
    return forced


def sampled_logprobs(sample, forced: torch.Tensor) -> torch.Tensor | None:
    """The engine's log-probability of each sampled token (0 at forced ones, which the loss masks);
    None when it lacks one for a sampled token."""
    lps = sample.logprobs or []
    if len(lps) != len(sample.token_ids):
        return None
    out = []
    for t, d, f in zip(sample.token_ids, lps, forced.tolist()):
        if f:
            out.append(0.0)
        elif d and t in d:
            out.append(float(d[t]))
        else:
            return None
    return torch.tensor(out, dtype=torch.float32)


def score(groups: list[list[Rollout]], reward_fn: Callable[[Rollout], tuple[float, str]]) -> None:
    for group in groups:
        for r in group:
            r.reward, r.verdict = reward_fn(r)


def micro_batches(seqs: list, max_tokens: int = MICRO_TOKENS) -> list[list[int]]:
    """Indices of `seqs` ((prompt, response) pairs) in packs of about max_tokens."""
    packs, cur, size = [], [], 0
    for i, (p, r) in enumerate(seqs):
        n = len(p) + len(r)
        if cur and size + n > max_tokens:
            packs.append(cur)
            cur, size = [], 0
        cur.append(i)
        size += n
    return packs + ([cur] if cur else [])


@torch.no_grad()
def logprobs_of(policy: Policy, seqs: list[tuple[list[int], list[int]]],
                temperatures: float | list[float] = 1.0) -> list[torch.Tensor]:
    """Each response token's log-probability under the policy at its sequence's temperature (logits / T)."""
    temps = [temperatures] * len(seqs) if isinstance(temperatures, (int, float)) else temperatures
    out: list[torch.Tensor] = [None] * len(seqs)  # type: ignore[list-item]
    for idx in micro_batches(seqs):
        batch = Batch.pack([seqs[i] for i in idx], policy.device)
        for i, lp in zip(idx, policy.token_logprobs(batch, [temps[i] for i in idx])):
            out[i] = lp.detach()
    return out


def rollout_rows(rec, stage: str, step: int, rollouts: list[Rollout], version: int,
                 advantages: list[float] | None = None) -> None:
    for k, r in enumerate(rollouts):
        rec.add("rollouts", stage=stage, step=step, source=r.prompt.source, prompt_id=r.prompt.prompt_id,
                sample_id=f"{stage}/{step}/{r.prompt.prompt_id}/{r.mode}/{k}", mode=r.mode,
                tokens=len(r.response_ids), reward=r.reward, verdict=r.verdict,
                advantage=None if advantages is None else float(advantages[k]), role=r.extra.get("role"),
                teacher_kl=r.extra.get("teacher_kl"), policy_version=version, text=r.text)


def step_rows(rec, stage: str, kind: str, step: int, metrics: dict) -> None:
    for name, value in metrics.items():
        if isinstance(value, (int, float)):
            rec.add("train_steps", stage=stage, kind=kind, step=step, metric=name, value=float(value))
