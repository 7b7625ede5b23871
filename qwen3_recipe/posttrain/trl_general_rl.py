"""general_rl's DPO phase on TRL's DPOTrainer (issue 19): DPO on the policy's own samples.

Each step samples a group per prompt from the current policy with our engine (its weights pushed every
`sync_every` steps; the Qwen3 template, the stage's mode), scores it with the stage's reward mix
(posttrain/rewards.py), and pairs each group's best and worst sample when their rewards differ
(general_rl.pairs_of). TRL's DPOTrainer computes the sigmoid loss on those pairs against the frozen
reference (the stage's starting weights) - the loss tests/test_trl_equivalence.py finds equal to
objectives.dpo_loss. The loss is a mean over the step's pairs across processes: TRL gathers per-pair
metrics, so every process sends as many pairs (those short pad with a sample paired with itself: margin 0,
no gradient, its log 2 taken out of the loss) and turns TRL's mean over its rows into its share of the
step's sum over real pairs (DDP averages).
The policy-gradient phase that follows is our GRPO trainer (posttrain/trl_grpo.py) on the reward mix.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch
from trl import DPOConfig, DPOTrainer

from qwen3_recipe.posttrain.general_rl import ROLLOUT_TEMPERATURE, pairs_of
from qwen3_recipe.posttrain.policy import Batch, gather_logprobs
from qwen3_recipe.posttrain.rollout_engine import push_weights
from qwen3_recipe.posttrain.rollouts import Rollout, sample_groups, score
from qwen3_recipe.posttrain.stage_plan import GRPOSettings
from qwen3_recipe.posttrain.trl_distill import HFScorer
from qwen3_recipe.posttrain.trl_grpo import rollout_metrics
from qwen3_recipe.posttrain.trl_lowering import micro_batch
from qwen3_recipe.posttrain.trl_rollouts import policy_state_dict
from qwen3_recipe.posttrain.trl_steps import EpochShuffled, StepRecorder, prompt_dataset, right_padded
from qwen3_recipe.synth.prompts import Prompt


class Qwen3DPOTrainer(EpochShuffled, DPOTrainer):
    def __init__(self, *args, settings: GRPOSettings, engine, prompts: list[Prompt],
                 reward_fn: Callable[[Rollout], tuple[float, str]], micro_pairs: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.settings, self.engine, self.reward_fn, self.micro_pairs = settings, engine, reward_fn, micro_pairs
        self.prompts = {p.prompt_id: p for p in prompts}
        self.version: int | None = None
        self.last: list[Rollout] = []
        self.pairs = (0.0, 1.0)  # the step's pairs over all processes, and the rows TRL's metrics average over
        self._loss_fix = (1, 0, 1.0)  # this micro-batch's rows, its padding rows, processes / the step's pairs

    def _prepare_dataset(self, dataset, *args, **kwargs):
        return dataset  # prompt ids: the pairs are sampled at each step (training_step)

    def sample(self, prompt_ids: list[str]) -> list[list[Rollout]]:
        s, step = self.settings, self.state.global_step
        if self.version is None or (step % s.sync_every == 0 and self.version != step):
            push_weights(self.engine, policy_state_dict(self))  # every process (FSDP gathers: collective)
            self.version = step
        groups = sample_groups(self.engine, [self.prompts[pid] for pid in prompt_ids], step=step, seed=s.seed,
                               n=s.group_size, max_tokens=s.max_response_tokens, temperature=ROLLOUT_TEMPERATURE,
                               mode=s.mode)
        score(groups, self.reward_fn)
        return groups

    def training_step(self, model, inputs, num_items_in_batch=None):
        groups = self.sample(inputs["prompt_id"])
        self.last = [r for g in groups for r in g]
        pairs = pairs_of(groups)
        device, processes = self.accelerator.device, self.accelerator.num_processes
        counts = self.accelerator.gather(torch.tensor([len(pairs)], device=device)).tolist()
        # TRL gathers per-pair metrics: every process sends as many pairs, padded with a sample paired with itself
        # (margin 0 exactly: no gradient, a loss of log 2 that compute_loss takes out again)
        width = max(1, *counts)
        rows = pairs + [(self.last[0], self.last[0])] * (width - len(pairs))
        self.pairs = (float(sum(counts)), float(width * processes))
        # micro-batches of equal size (memory: a pair is two sequences); every process has `width` rows, so as
        # many micro-batches (each backward is a collective), and TRL's per-call metric means stay the step's
        micro = self.micro_pairs or micro_batch(width, 2 * self.settings.max_response_tokens)
        loss = torch.zeros((), device=device)
        for i in range(0, width, micro):
            chunk = rows[i:i + micro]
            self._loss_fix = (len(chunk), max(0, i + len(chunk) - max(i, len(pairs))), processes / max(1, sum(counts)))
            batch = pair_batch(chunk, self.processing_class.pad_token_id or 0)
            loss = loss + super().training_step(model, {k: v.to(device) for k, v in batch.items()}, num_items_in_batch)
        return loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """TRL's mean over this process's rows, made its share of the step's mean over real pairs (DDP averages)."""
        out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        width, padded, scale = self._loss_fix
        loss = (out[0] if return_outputs else out) * width
        loss = (loss - padded * math.log(2)) * scale
        return (loss, out[1]) if return_outputs else loss


def pair_batch(pairs: list[tuple[Rollout, Rollout]], pad: int) -> dict[str, torch.Tensor]:
    """TRL's preference batch (DataCollatorForPreference's layout): the chosen rows, then the rejected ones,
    right-padded; completion_mask marks the response tokens."""
    ids, attention, completion = right_padded([c.seq for c, _ in pairs] + [r.seq for _, r in pairs], pad)
    return {"input_ids": ids, "attention_mask": attention, "completion_mask": completion.long()}


class DPOCallback(StepRecorder):
    """The step's rollouts (chosen and rejected marked) and its metrics over all processes."""

    kind = "general_rl"

    def rollouts(self):
        return self.trainer.last, self.trainer.version, None

    def metrics(self, logs: dict, state) -> dict[str, float]:
        t = self.trainer
        total, rows = t.pairs
        metrics = rollout_metrics(t.last, t.accelerator) | {"phase": 0.0, "pairs": total}
        if total:  # TRL's pair metrics average over every row sent, padding too (margin 0, not won)
            real = rows / total
            metrics |= {"dpo_margin": float(logs["rewards/margins"]) * real / t.beta,
                        "dpo_accuracy": float(logs["rewards/accuracies"]) * real}
        return metrics


def dpo_trainer(model, ref_model, tokenizer, engine, prompts: list[Prompt], reward_fn, s: GRPOSettings, args: dict,
                *, recorder_for: Callable[[int, int], object], stage: str, metrics_path: Path | None = None,
                on_row=None, micro_pairs: int | None = None) -> Qwen3DPOTrainer:
    """The DPO phase's trainer (trl_lowering.dpo_args); trl_steps.resume_and_train runs it. micro_pairs: pairs per
    forward (default: about trl_lowering.MICRO_TOKENS tokens)."""
    callback = DPOCallback(recorder_for, stage, metrics_path, on_row)
    dataset, collator = prompt_dataset(prompts)
    trainer = Qwen3DPOTrainer(model=model, ref_model=ref_model, args=DPOConfig(**args), processing_class=tokenizer,
                              train_dataset=dataset, data_collator=collator,
                              callbacks=[callback], settings=s, engine=engine, prompts=prompts, reward_fn=reward_fn,
                              micro_pairs=micro_pairs)
    callback.trainer = trainer
    return trainer


@torch.no_grad()
def margin_sums(model, pairs: list[tuple[Rollout, Rollout]]) -> tuple[float, float]:
    """(the sum over pairs of log p(chosen) - log p(rejected) under an HF model, the pairs): general_rl's
    held-out number as sums, to add over processes."""
    def logp(r: Rollout) -> float:
        batch = Batch.pack([r.seq])
        logits = HFScorer(model).response_logits(batch)[0]
        s, e = batch.spans[0]
        return float(gather_logprobs(logits, batch.tokens[0, s:e].to(logits.device)).sum())
    return sum(logp(c) - logp(r) for c, r in pairs), float(len(pairs))
