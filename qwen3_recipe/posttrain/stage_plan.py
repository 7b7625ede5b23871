"""The compiled form of a reasoning_rl, general_rl, distill_offpolicy or distill_onpolicy stage
(`jobs/<job>/lowered.json`): the weights it starts from, its prompts and their decontamination,
the optimizer, and the step settings of its algorithm (GRPO's group, clip, KL, temperature ramp and
thinking budget; DPO/RLHF's mix and beta; distillation's teacher, modes, top-k and KL direction).
`run` executes this and does not read the recipe's stage. No torch here: `compile` imports this.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from qwen3_recipe.compiler.plan import Plan, PlannedJob

HELDOUT_SHARE, HELDOUT_MAX = 0.1, 32
CHECKPOINTS = 4  # saves per stage


@dataclass
class GRPOSettings:
    """The sampling-and-update settings every on-policy stage shares (posttrain/grpo.py)."""

    steps: int
    batch_size: int
    group_size: int
    max_response_tokens: int
    clip_eps: float = 0.2
    kl_coef: float = 0.0
    temperature_start: float = 1.0
    temperature_end: float = 1.0
    sync_every: int = 1
    thinking_budget: int | None = None
    reward_scaling: str = "group"
    mode: str = "think"
    seed: int = 0

    def temperature(self, step: int) -> float:
        frac = step / max(1, self.steps - 1)
        return self.temperature_start + (self.temperature_end - self.temperature_start) * frac


def grpo_settings(stage: dict, seed: int, steps: int | None = None) -> GRPOSettings:
    temp = stage.get("temperature") or {}
    return GRPOSettings(steps=steps or stage["steps"], batch_size=stage["batch_size"],
                        group_size=stage.get("group_size") or stage.get("samples_per_prompt", 1),
                        max_response_tokens=stage.get("max_response_tokens") or stage["max_tokens"],
                        clip_eps=stage.get("clip_eps", 0.2), kl_coef=stage.get("kl_coef", 0.0),
                        temperature_start=temp.get("start", 1.0), temperature_end=temp.get("end", 1.0),
                        sync_every=stage.get("sync_every", 1), thinking_budget=stage.get("thinking_budget"),
                        reward_scaling=stage.get("reward_scaling", "group"), seed=seed)


def stage_plan(p: PlannedJob, plan: Plan) -> dict[str, Any]:
    from qwen3_recipe.synth.job import teacher_dir
    from qwen3_recipe.train.sft_plan import decontamination, init_dir
    from qwen3_recipe.train.stage import model_settings

    stage, seed, kind = p.job.config["stage"], p.job.config["seed"], p.job.kind
    init = init_dir(p, plan)
    entry = plan.loaded.catalogs.datasets.get(stage["prompts"])  # (a synth job's name is not a catalog entry)
    spec = entry.spec if entry else None
    out: dict[str, Any] = {
        "init": str(init) if init else None,
        "prompts": {"dataset": stage["prompts"], "limit": stage.get("limit"),
                    "domain": spec and spec.domain, "languages": spec and spec.languages},
        "decontamination": decontamination(p, plan),
        "heldout": {"share": HELDOUT_SHARE, "max": HELDOUT_MAX, "seed": seed},
        "optimizer": plan.loaded.recipe.pretrain.optimizer.model_dump(mode="json"),
        "lr": stage["lr"], "warmup_steps": 0, "checkpoints": CHECKPOINTS,
        "export": model_settings(plan),
        "seed": seed,
    }
    if kind in ("reasoning_rl", "general_rl", "distill_onpolicy"):
        out["grpo"] = dataclasses.asdict(grpo_settings(stage, seed))
    if kind in ("reasoning_rl", "general_rl"):  # verifiers and rewards may run model-written code
        out["sandbox"] = plan.loaded.recipe.execution.sandbox
    if kind == "reasoning_rl":
        out["verifier"] = stage["verifier"]
    if kind == "general_rl":
        out |= {"rewards": stage["rewards"], "method": stage["method"], "dpo_fraction": stage["dpo_fraction"],
                "beta": stage["beta"]}
    if kind.startswith("distill"):
        out |= {"teacher": str(teacher_dir(plan, stage["teacher"])), "modes": stage["modes"]}
    if kind == "distill_offpolicy":  # its training set: the samples of its teacher pass
        from qwen3_recipe.posttrain.teacher_pass import samples_path
        out["teacher_samples"] = str(samples_path(plan, p.job.name))
        out |= {"samples_per_prompt": stage["samples_per_prompt"], "max_tokens": stage["max_tokens"],
                "top_k": stage["top_k"], "sampling": stage.get("sampling"), "epochs": stage["epochs"],
                "batch_size": stage["batch_size"], "kl_weight": stage["kl_weight"], "ce_weight": stage["ce_weight"]}
    if kind == "distill_onpolicy":
        out["kl"] = stage["kl"]
    return out


def teacher_plan(p: PlannedJob, plan: Plan) -> dict[str, Any]:
    """A `posttrain.<stage>.teacher`'s lowered.json (off-policy distillation's teacher pass): the
    stage's training prompts (decontaminated, held-out ones left out, as the stage splits them),
    per mode the requests the synth engines answer with top-k log-probabilities, and the serving.
    The log-probabilities are vLLM's raw ones (T = 1, whatever temperature the sample is drawn at:
    the targets are the teacher's own distribution; rollout_engine.py explains the two modes)."""
    from qwen3_recipe.launch.settings import executor_settings
    from qwen3_recipe.serving import keyed_model, serving_of
    from qwen3_recipe.synth.job import teacher_dir, teacher_id
    from qwen3_recipe.synth.plan import mode_sampling
    from qwen3_recipe.train.sft_plan import decontamination
    cfg, seed = p.job.config["pass"], p.job.config["seed"]
    serving = serving_of(plan.loaded.recipe, p.job.name)
    model_id = keyed_model(teacher_id(plan, cfg["teacher"]), serving)  # the recipe's engine arguments
    args = {"logprobs-mode": "raw_logprobs"} | serving["extra_args"]
    args["max-logprobs"] = max(20, cfg["top_k"], int(args.get("max-logprobs", 0)))  # never below top_k
    serving["extra_args"] = args
    return {
        "engine": {"kind": "vllm", "model": str(teacher_dir(plan, cfg["teacher"])), "model_id": model_id,
                   "serving": serving, "executor": executor_settings(plan, p.job.name)},
        "prompts": {"dataset": cfg["prompts"], "limit": cfg["limit"]},
        "decontamination": decontamination(p, plan),
        "heldout": {"share": HELDOUT_SHARE, "max": HELDOUT_MAX, "seed": seed},
        "modes": {mode: {"n": cfg["samples_per_prompt"], "max_tokens": cfg["max_tokens"], "thinking_budget": None,
                         "suffix": "", "sampling": mode_sampling(cfg["sampling"] or {}, mode)}
                  for mode in cfg["modes"]},
        "top_k": cfg["top_k"], "seed": seed,
    }
