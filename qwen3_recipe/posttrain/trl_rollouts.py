"""Our rollouts and judgments inside TRL's GRPO (issue 19).

TRL's GRPOTrainer asks a rollout hook for each step's completions and reward functions for their scores.
Ours keep everything synth and evals do: the hook samples with our engine (the Qwen3 chat template, the
mode, the thinking budget, seeds derived from (stage seed, step, prompt, mode)) after pushing the
trainer's current weights into it every `sync_every` steps, and hands TRL the token ids, the engine's
log-probabilities and which tokens were sampled (`env_mask`: tokens the budget forced take no part in the
loss, as in our own GRPO); the reward function scores our `Rollout` (the engine's text, with its prompt's
gold and item) with our verifier or reward mix, not TRL's re-decoded completion, and keeps the verdict.

TRL's dataset rows carry our prompt ids as `prompt`; its sampler repeats each one `num_generations` times
in a row, so a run of equal ids is one group.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

from qwen3_recipe.posttrain.rollout_engine import push_weights
from qwen3_recipe.posttrain.rollouts import Rollout, sample_groups
from qwen3_recipe.posttrain.stage_plan import GRPOSettings
from qwen3_recipe.synth.prompts import Prompt


def policy_state_dict(trainer) -> dict:
    """The trainer's current weights, whole, under the checkpoint's HF names (what the engines load and an
    export holds). Collective under FSDP2: every process calls it (each parameter's shards are gathered);
    transformers 5 keeps MoE experts fused in memory, so its load-time conversion is reverted (one tensor
    per expert, as the checkpoint and vLLM's loader have them)."""
    return checkpoint_weights(trainer.accelerator.unwrap_model(trainer.model))


def checkpoint_weights(model) -> dict:
    """An HF model's weights, whole (FSDP2 shards gathered: collective), under the checkpoint's names."""
    from transformers.core_model_loading import revert_weight_conversion
    weights = {k: v.full_tensor() if hasattr(v, "full_tensor") else v for k, v in model.state_dict().items()}
    return revert_weight_conversion(model, weights)


class RolloutHook:
    """`GRPOTrainer(rollout_func=RolloutHook(...))`. `version` is the step whose weights the engine holds;
    `last` the step's rollouts in TRL's order (what provenance records)."""

    def __init__(self, engine, prompts: list[Prompt], s: GRPOSettings, offset: int = 0) -> None:
        """offset: the stage's steps before this trainer's, in the rollouts' seeds (general_rl's DPO phase)."""
        self.engine, self.s, self.offset = engine, s, offset
        self.prompts = {p.prompt_id: p for p in prompts}
        self.version: int | None = None
        self.last: list[Rollout] = []

    def __call__(self, prompt_ids: list[str], trainer) -> dict:
        s, step = self.s, trainer.state.global_step
        if self.version is None or (step % s.sync_every == 0 and self.version != step):
            push_weights(self.engine, policy_state_dict(trainer))
            self.version = step
        runs = [(pid, len(list(run))) for pid, run in itertools.groupby(prompt_ids)]
        sizes = {n for _, n in runs}
        if len(sizes) != 1:  # TRL's sampler repeats each prompt num_generations times
            raise ValueError(f"the generation batch is not whole groups: {runs}")
        # one engine call for the process's whole share (the engine batches every request)
        groups = sample_groups(self.engine, [self.prompts[pid] for pid, _ in runs], step=step + self.offset,
                               seed=s.seed, n=sizes.pop(), max_tokens=s.max_response_tokens,
                               temperature=s.temperature(step), mode=s.mode, thinking_budget=s.thinking_budget)
        rollouts: list[Rollout] = [r for g in groups for r in g]
        self.last = rollouts
        return {"prompt_ids": [r.prompt_ids for r in rollouts],
                "completion_ids": [r.response_ids for r in rollouts],
                # the engine's log-probabilities at the sampling temperature; NaN where it had none usable
                "logprobs": [r.old_logps.tolist() if r.old_logps is not None else [math.nan] * len(r.response_ids)
                             for r in rollouts],
                "env_mask": [r.sampled.int().tolist() for r in rollouts],
                "rollout": rollouts}


def trl_reward(fn: Callable[[Rollout], tuple[float, str]]) -> Callable[..., list[float]]:
    """A TRL reward function from ours (verifier_reward, CombinedReward): scores the hook's Rollouts, which
    reach it through the `rollout` extra field, and keeps each verdict on its Rollout. One function, so TRL's
    weighted sum over reward functions never replaces our own mix."""
    def reward(prompts, completions, rollout, **_) -> list[float]:
        out = []
        for r in rollout:
            r.reward, r.verdict = fn(r)
            out.append(r.reward)
        return out
    reward.__name__ = "qwen3_recipe_reward"  # TRL names its reward metrics after the function
    return reward
