"""The training side every RL and distillation stage shares: torchtitan's optimizer and LR-scheduler
containers over the policy, DCP checkpoints that resume a killed stage, per-step metrics through a
torchtitan logger, and each step's provenance rows written once, after the step.

A step is (1) made deterministic by its number - rollout seeds and prompt order derive from
(seed, step) - and (2) committed in order: provenance shard, then (every `interval` steps) the
checkpoint. A stage killed at any point resumes from its last checkpoint and redoes the steps after
it, rewriting the same shards: nothing is lost and nothing is counted twice.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from torchtitan.components.optimizer import LRSchedulersContainer, OptimizersContainer, ParamGroupConfig

from qwen3_recipe.posttrain.metric_rows import read_rows, write_rows
from qwen3_recipe.posttrain.policy import Policy

CHECKPOINTS = "checkpoint"


class _ModelState:
    """DCP Stateful view of the policy's weights. The module's own state_dict: torch's
    get_model_state_dict trips over torchtitan's fused-QKV state-dict hooks."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, sd: dict) -> None:
        self.model.load_state_dict(sd)


class StageTrainer:
    def __init__(self, policy: Policy, folder: Path, *, lr: float, steps: int, optimizer: dict,
                 warmup_steps: int = 0, decay: str = "linear", min_lr_ratio: float = 1.0,
                 interval: int = 10, on_step: Callable[[int, dict], None] | None = None) -> None:
        self.policy, self.folder, self.steps, self.interval = policy, Path(folder), steps, interval
        self.grad_clip = float(optimizer.get("grad_clip") or 0.0)
        implementation = "fused" if policy.device.type == "cuda" else "foreach"
        self.optimizers = OptimizersContainer.Config(implementation=implementation, param_groups=[ParamGroupConfig(
            pattern=r".*", optimizer_name="AdamW",
            optimizer_kwargs={"lr": float(lr), "betas": (float(optimizer.get("beta1", 0.9)),
                                                         float(optimizer.get("beta2", 0.95))),
                              "eps": float(optimizer.get("eps", 1e-8)),
                              "weight_decay": float(optimizer.get("weight_decay", 0.0))})]
        ).build(model_parts=[policy.model])
        self.schedulers = LRSchedulersContainer.Config(
            warmup_steps=warmup_steps, decay_type=decay, min_lr_factor=min_lr_ratio,
        ).build(optimizers=self.optimizers, training_steps=steps)
        self.on_step = on_step
        self.metrics_path = self.folder / "metrics.jsonl"
        self.folder.mkdir(parents=True, exist_ok=True)

    # -- checkpoints ---------------------------------------------------------------------
    def _state(self) -> dict:
        return {"model": _ModelState(self.policy.model), "optimizer": self.optimizers,
                "lr_scheduler": self.schedulers}

    def resume(self) -> int:
        """Load the last complete checkpoint; returns the number of steps it had done (0: none)."""
        root = self.folder / CHECKPOINTS
        done = sorted((int(p.name.split("-")[1]) for p in root.glob("step-*") if (p / ".metadata").exists()),
                      reverse=True)
        for p in root.glob("step-*"):
            if not (p / ".metadata").exists():  # a save cut short by a kill
                shutil.rmtree(p)
        if not done:
            return 0
        state = self._state()
        dcp.load(state, checkpoint_id=str(root / f"step-{done[0]}"))
        return done[0]

    def save(self, step: int) -> None:
        root = self.folder / CHECKPOINTS
        target, tmp = root / f"step-{step}", root / f"tmp-step-{step}"
        shutil.rmtree(tmp, ignore_errors=True)
        dcp.save(self._state(), checkpoint_id=str(tmp))
        tmp.rename(target)
        for old in root.glob("step-*"):  # keep the latest only
            if old != target:
                shutil.rmtree(old)

    # -- one optimisation step -------------------------------------------------------------
    def optimise(self, backward: Callable[[], torch.Tensor]) -> dict:
        """backward() runs the step's forward/backward passes (micro-batched as it likes) and returns
        the loss; then clip, step the optimizer and the LR schedule."""
        self.optimizers.zero_grad()
        loss = backward()
        norm = torch.nn.utils.clip_grad_norm_(self.policy.model.parameters(),
                                              self.grad_clip if self.grad_clip > 0 else float("inf"))
        lr = self.optimizers.optimizers[0].param_groups[0]["lr"]
        self.optimizers.step()
        self.schedulers.step()
        return {"loss": float(loss.detach()), "grad_norm": float(norm), "lr": float(lr)}

    def run(self, step_fn: Callable[[int], tuple[dict, Callable[[], None]]]) -> list[dict]:
        """Steps from the last checkpoint to the end. step_fn(step) trains one step and returns its
        metrics and a commit function (writes the step's provenance); then the metrics row is
        appended and, on interval, a checkpoint saved."""
        start = self.resume()
        rows = read_rows(self.metrics_path, below=start)
        for step in range(start, self.steps):
            metrics, commit = step_fn(step)
            commit()
            row = {"step": step + 1, **metrics}
            rows.append(row)
            write_rows(self.metrics_path, rows)
            if (step + 1) % self.interval == 0 or step + 1 == self.steps:
                self.save(step + 1)
            if self.on_step:
                self.on_step(step + 1, row)
        return rows
