"""A reasoning_rl (GRPO) stage run by TRL's GRPOTrainer (issue 19): what runs beyond one device.

Three things TRL does differently from our stage, made ours here:
- the importance ratio is taken against the rollout engine's log-probabilities (TRL: the policy's own
  before the update, which is the same number only while the engine holds the current weights); with
  `sync_every` > 1 the engine samples from older weights and the ratio corrects for it. Rollouts the
  engine reported no usable log-probabilities for get the policy's, as in `grpo.policy_update`;
- the temperature anneals per step (`GRPOSettings.temperature`): the rollouts are drawn at it and the
  loss's log-probabilities (policy and reference) are of logits / T at it. TRL keeps one temperature for
  the run, bound into the fused LM head it adds to both models at start: the head is re-added when the
  step's temperature changes;
- every step's rollouts, rewards, advantages and metrics land in the stage's provenance shards
  (`rollouts`, `train_steps`) under the same names as the single-process stage, written after the step
  and before its checkpoint, so a resumed stage rewrites the same shards: nothing lost or counted twice.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer
from trl.trainer.utils import RepeatSampler

from qwen3_recipe.posttrain.metric_rows import read_rows, write_rows
from qwen3_recipe.posttrain.rollouts import Rollout, rollout_rows, step_rows
from qwen3_recipe.posttrain.stage_plan import GRPOSettings
from qwen3_recipe.posttrain.trl_rollouts import RolloutHook

# TRL's logged names -> ours (the single-process stage's train_steps metrics)
# (the mean reward: rollout_metrics')
METRICS = {"loss": "loss", "grad_norm": "grad_norm", "learning_rate": "lr",
           "reward_std": "reward_std", "entropy": "entropy", "kl": "kl_ref", "clip_ratio/region_mean": "clip_fraction"}


COMPLETE = "qwen3_recipe.complete"  # in a checkpoint folder once every process has saved its part


class Qwen3GRPOTrainer(GRPOTrainer):
    def __init__(self, *args, settings: GRPOSettings, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.settings = settings
        self.last_advantages: list[float] = []
        self.ratio_stats = torch.zeros(2, dtype=torch.float64)  # sum of (old - new) log-prob, tokens: this step
        self._capture: torch.Tensor | None = None

    def _get_train_sampler(self, dataset=None):
        """TRL's sampler, reseeded at each epoch from (seed, epoch): TRL's draws each epoch's order from one
        generator that a checkpoint does not keep, so a stage resumed after its first epoch would replay the
        first epoch's order; reseeded, epoch e's order is the same however often the stage was resumed."""
        sampler = super()._get_train_sampler(dataset)
        sampler.__class__ = EpochSeededSampler
        self._epoch_sampler = sampler
        return sampler

    def _run_epoch(self, *args, epoch, **kwargs):
        # set here, not through the loaders' set_epoch: with several processes a resumed epoch's loader is
        # wrapped (skipped batches over process shards) and neither transformers nor accelerate reach our sampler
        if getattr(self, "_epoch_sampler", None) is not None:
            self._epoch_sampler.set_epoch(epoch)
        return super()._run_epoch(*args, epoch=epoch, **kwargs)

    def _get_per_token_logps_and_entropies(self, *args, **kwargs):
        out = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        if self._capture is not None and self._capture.numel() == 0:
            self._capture = out[0].detach()
        return out

    def _compute_loss(self, model, inputs):
        """TRL's loss; beside it, the ratio's log: mean (old - new) log-probability over the loss's tokens
        (`approx_kl`: 0 when the engine sampled from the weights being updated)."""
        self._capture = torch.empty(0)
        loss = super()._compute_loss(model, inputs)
        new, self._capture = self._capture, None
        mask = inputs["completion_mask"] * inputs.get("tool_mask", 1)
        diff = (inputs["old_per_token_logps"] - new) * mask
        self.ratio_stats += torch.tensor([float(diff.sum()), float(mask.sum())], dtype=torch.float64)
        return loss

    def set_temperature(self, t: float) -> None:
        from trl.trainer.utils import add_fused_lm_head
        if t == self.temperature:
            return
        self.temperature = t
        for model, outputs in ((self.model, ("log_probs", "entropy")), (self.ref_model, ("log_probs",))):
            if model is None:
                continue
            model = self.accelerator.unwrap_model(model)
            # back to the forward TRL fused the head onto (accelerate's mixed-precision wrapper, if any, with
            # it), then the head again at the new temperature
            model.forward = pre_fused_forward(model.forward)
            add_fused_lm_head(model, temperature=t, cast_lm_head_to_fp32=self.args.cast_lm_head_to_fp32,
                              outputs=outputs)

    def _generate_and_score_completions(self, inputs):
        self.set_temperature(self.settings.temperature(self.state.global_step))
        out = super()._generate_and_score_completions(inputs)
        sampled = out.get("sampling_per_token_logps")
        if sampled is not None:
            missing = torch.isnan(sampled).any(dim=1)
            if missing.any():  # the policy's own, before the update (what TRL would use for every row)
                ids = torch.cat([out["prompt_ids"], out["completion_ids"]], dim=1)
                mask = torch.cat([out["prompt_mask"], out["completion_mask"]], dim=1)
                with torch.no_grad():
                    own, _, _ = self._get_per_token_logps_and_entropies(
                        self.model, ids, mask, out["completion_ids"].size(1), batch_size=ids.size(0))
                sampled = torch.where(missing[:, None], own, sampled)
            out["old_per_token_logps"] = sampled
        self.last_advantages = out["advantages"].tolist()
        return out


def pre_fused_forward(forward):
    """The forward that trl.trainer.utils.add_fused_lm_head wrapped (it keeps it as `original_forward`)."""
    fn = getattr(forward, "__func__", forward)
    cells = dict(zip(fn.__code__.co_freevars, fn.__closure__ or ()))
    if "original_forward" not in cells:
        raise RuntimeError("TRL's fused LM head has changed: no original_forward to restore (TRL is pinned)")
    return cells["original_forward"].cell_contents


class EpochSeededSampler(RepeatSampler):
    def set_epoch(self, epoch: int) -> None:  # transformers and accelerate call it before each epoch
        if self.seed is not None:
            self.generator.manual_seed(self.seed + epoch)


class ProvenanceCallback(TrainerCallback):
    """After each optimizer step (TRL logs every step, on every process): the step's rollouts from this
    process (its own shard rank) and, from the main process, the step's metrics over all processes, as the
    single-process stage writes them."""

    def __init__(self, hook: RolloutHook, recorder_for: Callable[[int, int], object], stage: str,
                 kind: str = "reasoning_rl", metrics_path: Path | None = None,
                 on_row: Callable[[list[dict]], None] | None = None, offset: int = 0,
                 extra: dict[str, float] | None = None) -> None:
        """offset: the stage's steps before this trainer's (general_rl's DPO phase), added to its step numbers;
        extra: metrics logged with every step."""
        self.hook, self.recorder_for, self.stage, self.kind = hook, recorder_for, stage, kind
        self.metrics_path, self.on_row, self.offset, self.extra = metrics_path, on_row, offset, extra or {}
        self.trainer: Qwen3GRPOTrainer | None = None
        self.rows: list[dict] = []

    def on_save(self, args, state, control, **kwargs) -> None:
        mark_whole(self.trainer.accelerator, args, state)

    def on_log(self, args, state, control, logs=None, **kwargs) -> None:
        if not logs or "loss" not in logs or self.trainer is None:
            return
        step, rank = state.global_step + self.offset, self.trainer.accelerator.process_index
        rollouts: list[Rollout] = self.hook.last
        metrics = {ours: float(logs[theirs]) for theirs, ours in METRICS.items() if logs.get(theirs) is not None}
        metrics |= rollout_metrics(rollouts, self.trainer.accelerator)
        stats = self.trainer.accelerator.reduce(self.trainer.ratio_stats.to(self.trainer.accelerator.device),
                                                reduction="sum").tolist()
        self.trainer.ratio_stats.zero_()
        metrics["approx_kl"] = stats[0] / max(1.0, stats[1])
        # `kl`: to the reference when there is one (TRL logs its k3 KL only when beta > 0), else the ratio's
        metrics["kl"] = metrics.get("kl_ref", metrics["approx_kl"])
        metrics["temperature"] = self.trainer.settings.temperature(state.global_step - 1)
        metrics |= self.extra
        rec = self.recorder_for(step, rank)
        rollout_rows(rec, self.stage, step, rollouts, self.hook.version, self.trainer.last_advantages)
        if state.is_world_process_zero:
            step_rows(rec, self.stage, self.kind, step, metrics)
        rec.close()
        self.rows.append({"step": step, **metrics})
        if self.metrics_path is not None and state.is_world_process_zero:
            write_rows(self.metrics_path, read_rows(self.metrics_path, below=step - 1) + [self.rows[-1]])
        if self.on_row is not None and state.is_world_process_zero:
            self.on_row([self.rows[-1]])


def rollout_metrics(rollouts: list[Rollout], accelerator) -> dict[str, float]:
    """The step's mean reward, accuracy, mean response length and forced tokens over every process's rollouts."""
    local = torch.tensor([len(rollouts), sum(r.reward for r in rollouts), sum(r.verdict == "correct" for r in rollouts),
                          sum(len(r.response_ids) for r in rollouts),
                          sum(int(r.forced.sum()) for r in rollouts if r.forced is not None)],
                         dtype=torch.float64, device=accelerator.device)
    n, reward, correct, tokens, forced = accelerator.reduce(local, reduction="sum").tolist()
    return {"reward_mean": reward / max(1, n), "accuracy": correct / max(1, n),
            "response_tokens": tokens / max(1, n), "forced_tokens": forced}


def train_grpo(model, tokenizer, engine, prompts, reward_fn, s: GRPOSettings, args: dict, *,
               recorder_for: Callable[[int, int], object], stage: str, kind: str = "reasoning_rl",
               resume: bool = True, metrics_path: Path | None = None,
               callbacks: tuple = (), on_row: Callable[[list[dict]], None] | None = None,
               offset: int = 0, extra: dict[str, float] | None = None,
               ) -> tuple[Qwen3GRPOTrainer, list[dict]]:
    """Run the stage's steps (from its last complete TRL checkpoint in `args["output_dir"]` when `resume`);
    returns the trainer and this run's per-step metric rows (also kept in `metrics_path`, metric_rows.py, and
    handed to `on_row` as they come: a progress display).
    `args`: trl_lowering.grpo_args(...) plus any run-local overrides (use_cpu, save_strategy)."""
    from datasets import Dataset

    from qwen3_recipe.posttrain.trl_rollouts import trl_reward
    hook = RolloutHook(engine, prompts, s, offset)
    callback = ProvenanceCallback(hook, recorder_for, stage, kind, metrics_path, on_row, offset, extra)
    trainer = Qwen3GRPOTrainer(model=model, reward_funcs=trl_reward(reward_fn), args=GRPOConfig(**args),
                               rollout_func=hook, processing_class=tokenizer, callbacks=[callback, *callbacks],
                               settings=s, train_dataset=Dataset.from_dict({"prompt": [p.prompt_id for p in prompts]}))
    callback.trainer = trainer
    if resume:
        resume_and_train(trainer)
    else:
        trainer.train()
    return trainer, callback.rows


def resume_and_train(trainer) -> None:
    """A TRL trainer's steps from the last whole checkpoint in its output folder (all of them without one)."""
    last = last_checkpoint(Path(trainer.args.output_dir), trainer.accelerator.is_main_process)
    if last is not None:
        print(f"{type(trainer).__name__}: resuming from {last.name}", flush=True)
    trainer.train(resume_from_checkpoint=last and str(last))


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
    each process its own; ProvenanceCallback.on_save marks it once all have: one without the mark is a save a
    kill cut short (removed when asked: by one process only)."""
    import shutil
    found = []
    for path in folder.glob("checkpoint-*") if folder.is_dir() else ():
        if (path / COMPLETE).exists():
            found.append((checkpoint_step(path), path))
        elif remove_partial:
            shutil.rmtree(path, ignore_errors=True)
    return max(found)[1] if found else None
