"""What every stage on TRL does around its steps (posttrain/trl_grpo.py, trl_general_rl.py, trl_offpolicy.py,
trl_distill.py): each step's provenance written after it, checkpoints marked whole, resume from the last whole one.

After each optimizer step (TRL logs every step, on every process) a StepRecorder writes this process's rollouts
(its own shard rank) and, from the main process, the step's metrics over all processes under the names the
stages have always used, into the stage's `step-<n>` shards, `dump/metrics.jsonl` and the progress display - before
the step's checkpoint, so a resumed stage rewrites the same shards: nothing lost or counted twice.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import TrainerCallback

from qwen3_recipe.posttrain.metric_rows import read_rows, write_rows
from qwen3_recipe.posttrain.rollouts import rollout_rows, step_rows

COMPLETE = "qwen3_recipe.complete"  # in a checkpoint folder once every process has saved its part
TRAINER_METRICS = {"loss": "loss", "grad_norm": "grad_norm", "learning_rate": "lr"}  # TRL's logged names -> ours


class StepRecorder(TrainerCallback):
    """A stage's per-step provenance. Subclasses say which metrics a step has (`metrics`: called on every process,
    so it may reduce over them) and which rollouts this process drew (`rollouts`: (rollouts, the step whose weights
    sampled them, advantages or None), or None for a stage without rollouts)."""

    kind = ""
    named = TRAINER_METRICS  # TRL's logged names -> ours

    def __init__(self, recorder_for: Callable[[int, int], object], stage: str, metrics_path: Path | None = None,
                 on_row: Callable[[list[dict]], None] | None = None, offset: int = 0) -> None:
        """offset: the stage's steps before this trainer's (general_rl's DPO phase), added to its step numbers."""
        self.recorder_for, self.stage, self.metrics_path, self.on_row = recorder_for, stage, metrics_path, on_row
        self.offset = offset
        self.trainer = None
        self.rows: list[dict] = []

    def metrics(self, logs: dict, state) -> dict[str, float]:
        return {}

    def rollouts(self) -> tuple[list, int | None, list[float] | None] | None:
        return None

    def on_save(self, args, state, control, **kwargs) -> None:
        mark_whole(self.trainer.accelerator, args, state)

    def on_log(self, args, state, control, logs=None, **kwargs) -> None:
        if not logs or "loss" not in logs or self.trainer is None:
            return
        step, rank = state.global_step + self.offset, self.trainer.accelerator.process_index
        metrics = {ours: float(logs[theirs]) for theirs, ours in self.named.items() if logs.get(theirs) is not None}
        metrics |= self.metrics(logs, state)
        drawn, main = self.rollouts(), state.is_world_process_zero
        if drawn is not None or main:
            rec = self.recorder_for(step, rank)
            if drawn is not None:
                rollout_rows(rec, self.stage, step, *drawn)
            if main:
                step_rows(rec, self.stage, self.kind, step, metrics)
            rec.close()
        self.rows.append({"step": step, **metrics})
        if main and self.metrics_path is not None:
            write_rows(self.metrics_path, read_rows(self.metrics_path, below=step - 1) + [self.rows[-1]])
        if main and self.on_row is not None:
            self.on_row([self.rows[-1]])


class EpochShuffle(torch.utils.data.Sampler):
    """A shuffle of n samples drawn from (seed, epoch) alone, cut to whole steps of `step` samples (no partial
    last step: an epoch is n // step steps, as the stage's step count assumes)."""

    def __init__(self, n: int, seed: int, step: int = 1) -> None:
        self.n, self.seed, self.step, self.epoch = n, seed, max(1, step), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        return iter(order[:len(self)])

    def __len__(self) -> int:
        return self.n - self.n % self.step


class EpochShuffled:
    """Trainer mixin: the training order an EpochShuffle of whole optimizer steps, its epoch set at each epoch's
    start (_run_epoch): a resumed multi-process epoch's loader is wrapped (skipped batches over process shards)
    and neither transformers nor accelerate reach the sampler's set_epoch, so a resumed epoch would replay
    epoch 0's order."""

    def _get_train_sampler(self, dataset=None):
        a = self.args
        step = a.per_device_train_batch_size * a.gradient_accumulation_steps * self.accelerator.num_processes
        self._epoch_sampler = EpochShuffle(len(dataset if dataset is not None else self.train_dataset), a.seed, step)
        return self._epoch_sampler

    def _run_epoch(self, *args, epoch, **kwargs):
        self._epoch_sampler.set_epoch(epoch)
        return super()._run_epoch(*args, epoch=epoch, **kwargs)


def right_padded(seqs: list[tuple[list[int], list[int]]], pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(prompt, response) token ids as one right-padded batch (each row's positions start at 0): token ids,
    attention mask, and the response tokens' mask (bool)."""
    width = max(len(p) + len(r) for p, r in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    attention = torch.zeros_like(ids)
    response = torch.zeros((len(seqs), width), dtype=torch.bool)
    for k, (p, r) in enumerate(seqs):
        ids[k, :len(p) + len(r)] = torch.tensor(p + r)
        attention[k, :len(p) + len(r)] = 1
        response[k, len(p):len(p) + len(r)] = True
    return ids, attention, response


def prompt_dataset(prompts: list) -> tuple:
    """A trainer's dataset of prompt ids and its collator (the rollouts are drawn from them at each step)."""
    from datasets import Dataset
    return (Dataset.from_dict({"prompt_id": [p.prompt_id for p in prompts]}),
            lambda rows: {"prompt_id": [r["prompt_id"] for r in rows]})


def checkpoint_step(checkpoint: Path | None) -> int:
    """The steps a `checkpoint-<step>` folder holds (0: no checkpoint)."""
    return int(checkpoint.name.split("-")[1]) if checkpoint else 0


def mark_whole(accelerator, args, state) -> None:
    """on_save, on every process: once all have written their part, mark the checkpoint whole (what
    `last_checkpoint` looks for)."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (Path(args.output_dir) / f"checkpoint-{state.global_step}" / COMPLETE).touch()


def last_checkpoint(folder: Path, remove_partial: bool = False) -> Path | None:
    """The newest whole `checkpoint-<step>` in the folder. HF's Trainer writes a checkpoint's files in place,
    each process its own; StepRecorder.on_save marks it once all have: one without the mark is a save a kill
    cut short (removed when asked: by one process only)."""
    found = []
    for path in folder.glob("checkpoint-*") if folder.is_dir() else ():
        if (path / COMPLETE).exists():
            found.append((checkpoint_step(path), path))
        elif remove_partial:
            shutil.rmtree(path, ignore_errors=True)
    return max(found)[1] if found else None


def resume_and_train(trainer) -> None:
    """A TRL trainer's steps from the last whole checkpoint in its output folder (all of them without one)."""
    last = last_checkpoint(Path(trainer.args.output_dir), trainer.accelerator.is_main_process)
    if last is not None:
        print(f"{type(trainer).__name__}: resuming from {last.name}", flush=True)
    trainer.train(resume_from_checkpoint=last and str(last))
