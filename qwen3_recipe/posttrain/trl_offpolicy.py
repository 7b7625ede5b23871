"""A distill_offpolicy stage run by TRL's SFTTrainer (issue 19): supervised distillation on the teacher's
cached top-k log-probabilities (the teacher pass's samples, posttrain/teacher_pass.py).

Each step takes `batch_size` samples in an order drawn from (seed, epoch) and minimises, over their response
tokens, kl_weight x KL(teacher || student) over the teacher's top-k (renormalised: objectives.topk_kl) plus
ce_weight x the cross-entropy of the teacher's tokens, as a token mean over the whole step - across its
micro-batches (gradient accumulation) and processes (DDP averages gradients: each process scales its sum by
processes / the step's tokens). SFTTrainer brings TRL's supervised trainer (accelerate, FSDP2, checkpoints);
its own loss, dataset preparation and collator are replaced by ours: the samples are token ids already.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from trl import SFTConfig, SFTTrainer

from qwen3_recipe.posttrain.objectives import topk_kl
from qwen3_recipe.posttrain.trl_steps import EpochShuffled, StepRecorder, right_padded


class Qwen3OffPolicyTrainer(EpochShuffled, SFTTrainer):
    loss_is_scaled_for_ga = True  # compute_loss divides by the step's tokens (all micro-batches and processes)

    def __init__(self, *args, kl_weight: float, ce_weight: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.kl_weight, self.ce_weight = kl_weight, ce_weight
        self.sums = torch.zeros(3, dtype=torch.float64)  # the step's KL, cross-entropy and tokens, this process

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device) -> torch.Tensor:
        """The step's response tokens over its micro-batches and every process (at least 1: no 0 / 0)."""
        local = torch.tensor(float(sum(int(b["mask"].sum()) for b in batch_samples)), device=device)
        return self.accelerator.reduce(local, "sum").clamp(min=1.0)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], use_cache=False).logits
        mask = inputs["mask"][:, 1:]  # the response tokens, each predicted from the position before it
        lg = logits[:, :-1][mask].float()
        kl = topk_kl(lg, inputs["top_ids"][:, 1:][mask], inputs["top_logps"][:, 1:][mask]).sum()
        ce = F.cross_entropy(lg, inputs["input_ids"][:, 1:][mask], reduction="sum")
        self.sums += torch.tensor([float(kl.detach()), float(ce.detach()), float(mask.sum())], dtype=torch.float64)
        total = num_items_in_batch if num_items_in_batch is not None else mask.sum().clamp(min=1)
        loss = (self.kl_weight * kl + self.ce_weight * ce) * self.accelerator.num_processes / total
        return (loss, logits) if return_outputs else loss


def collate(samples: list[dict], pad: int) -> Callable[[list[dict]], dict]:
    """Rows of `index` -> right-padded token ids, attention, the response mask and the teacher's top-k per token
    (at the token's own position)."""
    def fn(rows: list[dict]) -> dict:
        chosen = [samples[r["index"]] for r in rows]
        ids, attention, mask = right_padded([(s["prompt_ids"], s["response_ids"]) for s in chosen], pad)
        width = ids.shape[1]
        k = next((len(s["top_ids"][0]) for s in chosen if s["top_ids"]), 1)
        top_ids = torch.zeros((len(chosen), width, k), dtype=torch.long)
        top_logps = torch.zeros((len(chosen), width, k), dtype=torch.float32)
        for i, s in enumerate(chosen):
            n, m = len(s["prompt_ids"]), len(s["response_ids"])
            if m:
                top_ids[i, n:n + m] = torch.tensor(s["top_ids"])
                top_logps[i, n:n + m] = torch.tensor(s["top_logps"], dtype=torch.float32)
        return {"input_ids": ids, "attention_mask": attention, "mask": mask, "top_ids": top_ids,
                "top_logps": top_logps, "labels": torch.where(mask, ids, -100)}
    return fn


class OffPolicyCallback(StepRecorder):
    """The step's metrics over all processes (loss, grad_norm, lr, kl_topk, ce, tokens); no rollouts."""

    kind = "distill_offpolicy"

    def metrics(self, logs: dict, state) -> dict[str, float]:
        t = self.trainer
        kl, ce, tokens = t.accelerator.reduce(t.sums.to(t.accelerator.device), "sum").tolist()
        t.sums.zero_()
        return {"kl_topk": kl / max(1.0, tokens), "ce": ce / max(1.0, tokens), "tokens": tokens}


def offpolicy_trainer(model, tokenizer, samples: list[dict], args: dict, *, kl_weight: float, ce_weight: float,
                      recorder_for: Callable[[int, int], object], stage: str, metrics_path: Path | None = None,
                      on_row=None) -> Qwen3OffPolicyTrainer:
    """The stage's trainer (trl_lowering.offpolicy_args); trl_steps.resume_and_train runs it."""
    from datasets import Dataset
    callback = OffPolicyCallback(recorder_for, stage, metrics_path, on_row)
    trainer = Qwen3OffPolicyTrainer(model=model, args=SFTConfig(**args), processing_class=tokenizer,
                                    train_dataset=Dataset.from_dict({"index": list(range(len(samples)))}),
                                    data_collator=collate(samples, tokenizer.pad_token_id or 0),
                                    callbacks=[callback], kl_weight=kl_weight, ce_weight=ce_weight)
    callback.trainer = trainer
    return trainer
