"""A distill_onpolicy stage run by TRL's GKD trainer (issue 19), fully on-policy (`lmbda` = 1).

TRL's GKDTrainer samples the student with `model.generate` on the batch's prompts; ours samples with our
rollout engine instead, as every RL stage does: the Qwen3 chat template, the step's mode (the stage's
`modes` in turn, one per step), seeds from (stage seed, step, prompt, mode), the student's current weights
pushed into the engine before each step. The loss is GKD's generalised JSD at beta 1 (reverse KL, student
|| teacher) or 0 (forward) over the response tokens, the teacher scoring the student's tokens with its own
forward pass (trl_lowering.onpolicy_distill_args; tests/test_trl_equivalence.py finds it equal to
objectives.token_kl), as a token mean over the whole step across processes - what the stage's
loss has always been. Every step's rollouts (with each one's KL to the teacher) and metrics land in the stage's
provenance shards, written after the step and before its checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from transformers import Trainer
from trl.experimental.gkd import GKDConfig, GKDTrainer

from qwen3_recipe.posttrain.rollout_engine import push_weights
from qwen3_recipe.posttrain.rollouts import Rollout, sample_groups
from qwen3_recipe.posttrain.stage_plan import GRPOSettings
from qwen3_recipe.posttrain.trl_rollouts import policy_state_dict
from qwen3_recipe.posttrain.trl_steps import EpochShuffled, StepRecorder, prompt_dataset, right_padded
from qwen3_recipe.synth.prompts import Prompt

EVAL_TEMPERATURE = 1.0  # the student's own distribution, as distill.EVAL_TEMPERATURE


class Qwen3GKDTrainer(EpochShuffled, GKDTrainer):
    def __init__(self, *args, settings: GRPOSettings, engine, prompts: list[Prompt], modes: list[str],
                 micro_rows: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.settings, self.engine, self.modes, self.micro_rows = settings, engine, modes, micro_rows
        self.prompts = {p.prompt_id: p for p in prompts}
        self.version: int | None = None
        self.last: list[Rollout] = []
        self.chunk: list[Rollout] = []  # the micro-batch compute_loss scores
        self.kl_stats = torch.zeros(2, dtype=torch.float64)  # the step's KL sum and tokens, this process

    def sample(self, prompt_ids: list[str]) -> list[Rollout]:
        s, step = self.settings, self.state.global_step
        push_weights(self.engine, policy_state_dict(self))  # on-policy: every step (every process: collective)
        self.version = step
        groups = sample_groups(self.engine, [self.prompts[pid] for pid in prompt_ids], step=step, seed=s.seed,
                               n=s.group_size, max_tokens=s.max_response_tokens, temperature=EVAL_TEMPERATURE,
                               mode=self.modes[step % len(self.modes)])
        return [r for g in groups for r in g]

    def training_step(self, model, inputs, num_items_in_batch=None):
        """The step's rollouts through student and teacher in micro-batches of `micro_rows` rows (default: about
        trl_lowering.MICRO_TOKENS response tokens each), their gradients accumulated: memory, not maths. Every
        process has as many rows, so as many micro-batches (each backward is a collective)."""
        from qwen3_recipe.posttrain.trl_lowering import micro_batch
        self.last = rollouts = self.sample(inputs["prompt_id"])
        micro = self.micro_rows or micro_batch(len(rollouts), self.settings.max_response_tokens)
        chunks = [rollouts[i:i + micro] for i in range(0, len(rollouts), micro)]
        padded = [right_padded([r.seq for r in c], self.processing_class.pad_token_id) for c in chunks]
        device = self.accelerator.device
        mine = sum(float(response.sum()) for _, _, response in padded)
        tokens = self.accelerator.reduce(torch.tensor(mine, device=device), "sum")
        tokens = tokens.clamp(min=1.0)  # a step of empty responses: no loss, not 0 / 0
        loss = torch.zeros((), device=device)
        for chunk, (ids, attention, response) in zip(chunks, padded):
            self.chunk = chunk
            batch = {"input_ids": ids.to(device), "attention_mask": attention.to(device),
                     "labels": torch.where(response, ids, -100).to(device)}
            # the step's token mean over every process: each divides its sum by tokens / processes, DDP averages
            loss = loss + Trainer.training_step(self, model, batch, tokens / self.accelerator.num_processes)
        return loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        student = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits[:, :-1]
        self.teacher_model.eval()
        with torch.no_grad():
            teacher = self.teacher_model(input_ids=inputs["input_ids"],
                                         attention_mask=inputs["attention_mask"]).logits[:, :-1]
        mask = inputs["labels"][:, 1:] != -100
        per_token = self.generalized_jsd_loss(student, teacher, beta=self.beta, temperature=self.temperature,
                                              reduction="none").sum(-1)  # [rows, positions]
        kl = (per_token * mask).sum(-1)
        for r, value, n in zip(self.chunk, kl.detach().tolist(), mask.sum(-1).tolist()):
            r.extra["teacher_kl"] = value / max(1, n)
        self.kl_stats += torch.tensor([float(kl.detach().sum()), float(mask.sum())], dtype=torch.float64)
        loss = kl.sum() / num_items_in_batch
        return (loss, student) if return_outputs else loss


class DistillCallback(StepRecorder):
    """The step's rollouts (each with its KL to the teacher) and its KL over every process."""

    kind = "distill_onpolicy"

    def __init__(self, recorder_for: Callable[[int, int], object], stage: str, direction: str,
                 metrics_path: Path | None = None, on_row: Callable[[list[dict]], None] | None = None) -> None:
        super().__init__(recorder_for, stage, metrics_path, on_row)
        self.direction = direction

    def rollouts(self):
        return self.trainer.last, self.trainer.version, None

    def metrics(self, logs: dict, state) -> dict[str, float]:
        t = self.trainer
        local = torch.cat([t.kl_stats, torch.tensor([float(len(t.last))], dtype=torch.float64)])
        kl_sum, tokens, samples = t.accelerator.reduce(local.to(t.accelerator.device), "sum").tolist()
        t.kl_stats.zero_()
        return {"kl": kl_sum / max(1.0, tokens), "response_tokens": tokens / max(1.0, samples),
                "kl_direction_reverse": float(self.direction == "reverse")}


def onpolicy_trainer(model, teacher, tokenizer, engine, prompts: list[Prompt], s: GRPOSettings, args: dict, *,
                     modes: list[str], direction: str, recorder_for: Callable[[int, int], object], stage: str,
                     metrics_path: Path | None = None, on_row=None, micro_rows: int | None = None) -> Qwen3GKDTrainer:
    """The stage's trainer (trl_lowering.gkd_args), its models prepared (moved, wrapped); trl_steps.resume_and_train
    runs it. micro_rows: rollouts per forward (default: Qwen3GKDTrainer.training_step's)."""
    callback = DistillCallback(recorder_for, stage, direction, metrics_path, on_row)
    dataset, collator = prompt_dataset(prompts)
    trainer = Qwen3GKDTrainer(model=model, teacher_model=teacher, args=GKDConfig(**args), processing_class=tokenizer,
                              train_dataset=dataset, data_collator=collator,
                              callbacks=[callback], settings=s, engine=engine, prompts=prompts, modes=modes,
                              micro_rows=micro_rows)
    callback.trainer = trainer
    return trainer


class HFScorer:
    """What distill.heldout_kl asks of a Policy, for an HF model: the response logits of packed sequences
    (each sequence through the model on its own: an HF forward would attend across a packed row) and the
    weights to push into the rollout engine."""

    def __init__(self, model, weights: dict | None = None) -> None:
        self.model, self.weights = model, weights

    @property
    def device(self) -> torch.device:  # where the trainer put the model (it moves models in place)
        return next(self.model.parameters()).device

    def hf_state_dict(self) -> dict:
        return self.weights

    def response_logits(self, batch) -> list[torch.Tensor]:
        pos, out = batch.positions[0], []
        for s, e in batch.spans:
            start = s - 1 - int(pos[s - 1])  # where the sequence (its prompt) begins in the row
            logits = self.model(input_ids=batch.tokens[:, start:e].to(self.device)).logits[0].float()
            out.append(logits[s - 1 - start:e - 1 - start])
        return out


def heldout_kl_sums(student: HFScorer, engine, teacher: HFScorer, prompts: list[Prompt], modes: list[str],
                    max_tokens: int, seed: int) -> torch.Tensor:
    """distill.heldout_kl on this process's share of the held-out prompts, as sums: [reverse KL x tokens,
    forward KL x tokens, tokens] (summed over processes, then `heldout_kl_of` them)."""
    from qwen3_recipe.posttrain.distill import heldout_kl
    if not prompts:  # the push all the same: a served engine's processes count each other's pushes
        push_weights(engine, student.hf_state_dict())
        return torch.zeros(3, dtype=torch.float64)
    kl = heldout_kl(student, engine, teacher, prompts, modes, max_tokens, seed)
    n = kl["heldout_tokens"]
    return torch.tensor([kl["heldout_kl"] * n, kl["heldout_kl_forward"] * n, n], dtype=torch.float64)


def heldout_kl_of(sums: list[float]) -> dict:
    rev, fwd, tokens = sums
    return {"heldout_kl": rev / max(1.0, tokens), "heldout_kl_forward": fwd / max(1.0, tokens),
            "heldout_tokens": tokens}
