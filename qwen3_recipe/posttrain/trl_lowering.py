"""A post-training stage's lowered.json (stage_plan.py) as the arguments of TRL's trainers (issue 19).

TRL + accelerate is the engine RL and distillation scale out on (FSDP2 / ZeRO-3, several processes and
nodes). This module maps our settings onto TRL's configs as plain data (no torch or TRL at import: `plan`
shows it, tests check it), choosing, for every knob, the TRL option that computes what our loss computes:

- GRPO -> `GRPOConfig(loss_type="dapo")`: a token-level mean over the step's sampled tokens, as
  `objectives.grpo_loss` (TRL's "grpo" averages per sequence first and "dr_grpo" divides by the maximum
  length: neither is ours); `epsilon` = clip_eps on both sides; `beta` = kl_coef with the k3 estimator
  not weighted by the ratio (`use_bias_correction_kl=False`, as ours); advantages scaled as the stage's
  `reward_scaling` says (`scale_rewards`: TRL's formula is `objectives.group_advantages`').
- DPO -> TRL's sigmoid loss (`loss_type=["sigmoid"]`, no label smoothing), as `objectives.dpo_loss`.
- On-policy distillation -> the generalised JSD at `beta` 1 (reverse KL, student || teacher) or 0
  (forward), every sample the student's own (`lmbda=1`), temperature 1, as `objectives.token_kl`.
- Off-policy distillation -> TRL's SFTTrainer with our loss: kl_weight x the top-k KL(teacher || student)
  plus ce_weight x the teacher tokens' cross-entropy, a token mean over the step (posttrain/trl_offpolicy.py).
- The optimizer and schedule as the stages always ran them: AdamW with the recipe's betas, eps, weight
  decay and gradient clip, a constant learning rate, no warm-up, fp32 unless the recipe asks for bf16.

tests/test_trl_equivalence.py computes TRL's losses and ours on the same fixed batches and finds them equal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MICRO_TOKENS = 4096  # response tokens per forward/backward (as posttrain/rollouts.py's micro-batches)


def optimizer_args(lowered: dict) -> dict[str, Any]:
    """TrainingArguments shared by every stage: the recipe's AdamW, its clip, a constant LR."""
    opt = lowered.get("optimizer") or {}
    return {"learning_rate": float(lowered["lr"]), "lr_scheduler_type": "constant",
            "warmup_steps": int(lowered.get("warmup_steps", 0)), "optim": "adamw_torch",
            "adam_beta1": float(opt.get("beta1", 0.9)), "adam_beta2": float(opt.get("beta2", 0.95)),
            "adam_epsilon": float(opt.get("eps", 1e-8)), "weight_decay": float(opt.get("weight_decay", 0.0)),
            "max_grad_norm": float(opt.get("grad_clip") or 0.0), "seed": int(lowered.get("seed", 0))}


def precision_args(execution: dict | None) -> dict[str, Any]:
    """`execution`'s mixed precision, activation checkpointing and compile. HF checkpoints activations per
    decoder layer and has no selective mode: `selective` and `full` both lower to checkpointing every layer."""
    execution = execution or {}
    return {"bf16": execution.get("mixed_precision") == "bf16", "fp16": False,
            "gradient_checkpointing": execution.get("activation_checkpointing", "none") != "none",
            "torch_compile": bool(execution.get("compile", False))}


def bookkeeping_args(out_dir: str | Path, steps: int, checkpoints: int, phase: str | None = None) -> dict[str, Any]:
    """Checkpoints in `<stage>/dump` (general_rl's phases: `dump/dpo`, `dump/pg`), every step logged."""
    dump = Path(out_dir) / "dump"
    return {"output_dir": str(dump / phase if phase else dump), "max_steps": int(steps), "save_strategy": "steps",
            "save_steps": max(1, steps // max(1, checkpoints)), "save_total_limit": 2, "logging_steps": 1,
            "report_to": [], "remove_unused_columns": False, "disable_tqdm": True}


def rollout_max_tokens(lowered: dict) -> int:
    """The longest sample a stage's rollout engine gives: its GRPO settings' response length (RL, on-policy
    distillation), else the stage's max_tokens (off-policy distillation's held-out samples)."""
    return int(lowered["grpo"]["max_response_tokens"] if "grpo" in lowered else lowered["max_tokens"])


def micro_batch(share: int, max_response_tokens: int, budget: int = MICRO_TOKENS) -> int:
    """Sequences per forward/backward: the most that divides a process's share of the step's samples and
    keeps about `budget` response tokens (at least one). Memory, not maths: the dapo loss divides by the
    tokens of the whole step however it is accumulated."""
    most = max(1, budget // max(1, max_response_tokens))
    return max(d for d in range(1, share + 1) if share % d == 0 and d <= most)


def grpo_args(lowered: dict, out_dir: str | Path, execution: dict | None = None, processes: int = 1,
              phase: str | None = None) -> dict:
    """`GRPOConfig(**grpo_args(...))` for a reasoning_rl (or general_rl's policy-gradient) stage: one
    generation batch (batch_size prompts x group_size samples) per optimizer step, split over `processes`
    without splitting a group, each process's share in micro-batches accumulated into one step."""
    g = lowered["grpo"]
    samples = g["batch_size"] * g["group_size"]
    if samples % processes or (samples // processes) % g["group_size"]:
        raise ValueError(f"batch_size {g['batch_size']} prompts x group_size {g['group_size']} samples do not split "
                         f"into whole groups over {processes} processes")
    share = samples // processes
    micro = micro_batch(share, int(g["max_response_tokens"]))
    # general_rl's policy-gradient phase keeps to its reference with the stage's beta (general_rl.py)
    kl_coef = float(lowered["beta"]) if "method" in lowered else float(g["kl_coef"])
    return {
        **optimizer_args(lowered), **precision_args(execution),
        **bookkeeping_args(out_dir, g["steps"], lowered.get("checkpoints", 4), phase),
        "loss_type": "dapo", "scale_rewards": g.get("reward_scaling", "group"), "beta": kl_coef,
        "use_bias_correction_kl": False,
        "epsilon": float(g["clip_eps"]), "epsilon_high": float(g["clip_eps"]),
        "num_generations": int(g["group_size"]), "per_device_train_batch_size": micro,
        "gradient_accumulation_steps": share // micro, "steps_per_generation": share // micro, "num_iterations": 1,
        "max_completion_length": int(g["max_response_tokens"]), "temperature": float(g["temperature_start"]),
        "top_p": 1.0, "top_k": 0, "use_vllm": False, "vllm_importance_sampling_correction": False,
        "mask_truncated_completions": False, "router_aux_loss_coef": 0.0,  # MoE trains without load balancing
    }


def dpo_args(lowered: dict, out_dir: str | Path, execution: dict | None = None, processes: int = 1,
             steps: int | None = None) -> dict:
    """`DPOConfig(**dpo_args(...))`: general_rl's DPO phase (sigmoid loss at the stage's beta) over its first
    `steps` steps, batch_size prompts per step split over `processes` (their pairs sampled at each step)."""
    g = lowered["grpo"]
    if g["batch_size"] % processes:
        raise ValueError(f"batch_size {g['batch_size']} prompts do not split over {processes} processes")
    return {**optimizer_args(lowered), **precision_args(execution),
            **bookkeeping_args(out_dir, g["steps"] if steps is None else steps, lowered.get("checkpoints", 4), "dpo"),
            "beta": float(lowered["beta"]), "loss_type": ["sigmoid"], "label_smoothing": 0.0,
            "router_aux_loss_coef": 0.0,  # MoE trains without load balancing (README)
            "per_device_train_batch_size": g["batch_size"] // processes, "gradient_accumulation_steps": 1,
            "dataloader_drop_last": True}


def general_rl_steps(lowered: dict) -> tuple[int, int]:
    """(DPO steps, policy-gradient steps) of a general_rl stage: `method` dpo, rlhf, or hybrid's first
    `dpo_fraction` of the steps on DPO."""
    steps = int(lowered["grpo"]["steps"])
    dpo = {"dpo": steps, "rlhf": 0}.get(lowered["method"], round(float(lowered["dpo_fraction"]) * steps))
    return dpo, steps - dpo


def gkd_args(lowered: dict, out_dir: str | Path, execution: dict | None = None, processes: int = 1) -> dict:
    """`GKDConfig(**gkd_args(...))` for a distill_onpolicy stage: batch_size prompts per step (split over
    `processes`), samples_per_prompt samples each, every one the student's (lmbda 1), the KL as `kl` says."""
    g = lowered["grpo"]
    if g["batch_size"] % processes:
        raise ValueError(f"batch_size {g['batch_size']} prompts do not split over {processes} processes")
    return {**optimizer_args(lowered), **precision_args(execution),
            **bookkeeping_args(out_dir, g["steps"], lowered.get("checkpoints", 4)),
            **onpolicy_distill_args(lowered), "per_device_train_batch_size": g["batch_size"] // processes,
            "gradient_accumulation_steps": 1, "dataloader_drop_last": True,  # no padded last step
            "dataset_kwargs": {"skip_prepare_dataset": True}}


def onpolicy_distill_args(lowered: dict) -> dict:
    """The generalised-JSD settings of distill_onpolicy: which KL, whose samples, at which temperature."""
    return {"beta": 1.0 if lowered["kl"] == "reverse" else 0.0, "lmbda": 1.0, "temperature": 1.0}


def offpolicy_args(lowered: dict, out_dir: str | Path, steps: int, execution: dict | None = None,
                   processes: int = 1) -> dict:
    """`SFTConfig(**offpolicy_args(...))` for a distill_offpolicy stage: batch_size teacher samples per step
    (split over `processes`, each share in micro-batches accumulated into the step), `steps` of them (the
    stage's epochs over its teacher pass's samples, whole batches: no padded last step)."""
    batch = int(lowered["batch_size"])
    if batch % processes:
        raise ValueError(f"batch_size {batch} samples do not split over {processes} processes")
    share = batch // processes
    micro = micro_batch(share, int(lowered["max_tokens"]))
    return {**optimizer_args(lowered), **precision_args(execution),
            **bookkeeping_args(out_dir, steps, lowered.get("checkpoints", 4)),
            "per_device_train_batch_size": micro, "gradient_accumulation_steps": share // micro,
            "dataloader_drop_last": True, "packing": False, "dataset_kwargs": {"skip_prepare_dataset": True}}


def offpolicy_steps(samples: int, batch_size: int, epochs: float) -> int:
    """Optimizer steps of an off-policy stage: `epochs` passes of whole batches over the teacher's samples."""
    return max(1, round(epochs * (samples // batch_size)))
