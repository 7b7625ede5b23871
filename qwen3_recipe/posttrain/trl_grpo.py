"""A reasoning_rl (GRPO) stage run by TRL's GRPOTrainer (issue 19): what runs beyond one device.

Three things TRL does differently from our stage, made ours here:
- the importance ratio is taken against the rollout engine's log-probabilities (TRL: the policy's own
  before the update, which is the same number only while the engine holds the current weights); with
  `sync_every` > 1 the engine samples from older weights and the ratio corrects for it. Rollouts the
  engine reported no usable log-probabilities for get the policy's own before the update;
- the temperature anneals per step (`GRPOSettings.temperature`): the rollouts are drawn at it and the
  loss's log-probabilities (policy and reference) are of logits / T at it. TRL keeps one temperature for
  the run, bound into the fused LM head it adds to both models at start: the head is re-added when the
  step's temperature changes;
- every step's rollouts, rewards, advantages and metrics land in the stage's provenance shards
  (`rollouts`, `train_steps`) under the names the stage has always used, written after the step
  and before its checkpoint, so a resumed stage rewrites the same shards: nothing lost or counted twice.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from trl import GRPOConfig, GRPOTrainer
from trl.trainer.utils import RepeatSampler

from qwen3_recipe.posttrain.rollouts import Rollout
from qwen3_recipe.posttrain.stage_plan import GRPOSettings
from qwen3_recipe.posttrain.trl_rollouts import RolloutHook
from qwen3_recipe.posttrain.trl_steps import TRAINER_METRICS, StepRecorder, resume_and_train

# TRL's logged names -> ours (the stage's train_steps metrics; the mean reward: rollout_metrics')
METRICS = TRAINER_METRICS | {"reward_std": "reward_std", "entropy": "entropy", "kl": "kl_ref",
                             "clip_ratio/region_mean": "clip_fraction"}


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


class ProvenanceCallback(StepRecorder):
    """The step's rollouts with their advantages, and its metrics: TRL's, the rollouts' over every process,
    the ratio's approx_kl, the temperature (trl_steps.StepRecorder writes them)."""

    named = METRICS

    def __init__(self, hook: RolloutHook, recorder_for: Callable[[int, int], object], stage: str,
                 kind: str = "reasoning_rl", metrics_path: Path | None = None,
                 on_row: Callable[[list[dict]], None] | None = None, offset: int = 0,
                 extra: dict[str, float] | None = None) -> None:
        """extra: metrics logged with every step (general_rl's phase)."""
        super().__init__(recorder_for, stage, metrics_path, on_row, offset)
        self.hook, self.kind, self.extra = hook, kind, extra or {}

    def rollouts(self):  # (the weights' step in the stage's numbering: general_rl's PG phase comes second)
        return self.hook.last, self.hook.version + self.offset, self.trainer.last_advantages

    def metrics(self, logs: dict, state) -> dict[str, float]:
        t = self.trainer
        metrics = rollout_metrics(self.hook.last, t.accelerator)
        stats = t.accelerator.reduce(t.ratio_stats.to(t.accelerator.device), reduction="sum").tolist()
        t.ratio_stats.zero_()
        metrics["approx_kl"] = stats[0] / max(1.0, stats[1])
        # `kl`: to the reference when there is one (TRL logs its k3 KL only when beta > 0), else the ratio's
        metrics["kl"] = float(logs["kl"]) if logs.get("kl") is not None else metrics["approx_kl"]
        metrics["temperature"] = t.settings.temperature(state.global_step - 1)
        return metrics | self.extra


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
