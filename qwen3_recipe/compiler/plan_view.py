"""A plan as plain data: what `plan` prints (table or JSON) and what the plan cache stores."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # kept light: the plan cache imports this module without the compiler
    from qwen3_recipe.compiler.plan import Plan, PlannedJob

DONE_FILE = "done.json"


def job_status(run_dir: Path, job_dir: str, fingerprint: str) -> str:
    """`cached` when the job's done marker holds this fingerprint, `changed` when another, else `new`."""
    marker = run_dir / job_dir / DONE_FILE
    if not marker.exists():
        return "new"
    try:
        done = json.loads(marker.read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return "changed"
    return "cached" if done == fingerprint else "changed"


def plan_view(plan: "Plan") -> dict[str, Any]:
    from qwen3_recipe.compiler.decont_estimate import false_match_warnings
    from qwen3_recipe.provenance.gate import gate_view
    from qwen3_recipe.recipe.serving_checks import in_process_teacher_warnings
    from qwen3_recipe.serving import GENERATION_KINDS
    loaded, hw, arch = plan.loaded, plan.loaded.recipe.execution.hardware, plan.loaded.arch
    return {
        "recipe": loaded.recipe.name,
        "files": loaded.raw.chain,
        "overrides": loaded.raw.overrides,
        "run_dir": str(plan.run_dir),
        "model": {"preset": loaded.recipe.model.preset, "total_params": arch.total_params,
                  "compute_params": arch.compute_params},
        "hardware": {"accelerator": hw.accelerator, "count": hw.count, "mfu": hw.mfu},
        "jobs": [{"name": p.job.name, "kind": p.job.kind, "deps": p.job.deps, "dir": p.job.dir,
                  "fingerprint": p.job.fingerprint, "outputs": p.job.outputs,
                  "estimate": asdict(p.estimate) | {"flops": p.estimate.flops},
                  "shortfalls": [asdict(s) for s in p.shortfalls], "status": p.status,
                  **({"segments": seq_len_segments(p)} if p.job.kind == "pretrain" else {}),
                  **({"serving": served(plan, p)} if p.job.kind in GENERATION_KINDS else {}),
                  **({"trainer": trl_trainer(plan, p)} if p.job.kind in TRL_KINDS else {})}
                 for p in plan.jobs],
        "languages": {name: {"family": g.family, "rule": g.rule, "shares": g.shares, "tokens": g.tokens,
                             "sources": g.sources} for name, g in loaded.languages.items()},
        "contamination_gate": gate_view(loaded),
        # settings that validate but cannot work
        "warnings": false_match_warnings(loaded) + in_process_teacher_warnings(loaded.recipe, loaded.arch),
    }


def served(plan: "Plan", p: "PlannedJob") -> dict[str, Any]:
    """How a generation job's model is served: {text, gpus} (all its tasks' GPUs together)."""
    from qwen3_recipe.serving import describe, serving_of
    s = serving_of(plan.loaded.recipe, p.job.name)
    return {"text": describe(s), "gpus": s["tasks"] * s["gpus_per_task"]}


# the stages that train on TRL + accelerate (posttrain/trl_launch.py), by the trainer they run
TRL_KINDS = {"reasoning_rl": "TRL GRPOTrainer", "general_rl": "TRL DPOTrainer, then GRPOTrainer",
             "distill_offpolicy": "TRL SFTTrainer", "distill_onpolicy": "TRL GKDTrainer"}
GENERAL_RL_TRAINERS = {"dpo": "TRL DPOTrainer", "rlhf": "TRL GRPOTrainer"}  # hybrid: both, in turn


def trl_trainer(plan: "Plan", p: "PlannedJob") -> dict[str, Any]:
    """Where a TRL stage runs: its processes (one per GPU: `execution.slurm` nodes x GPUs on Slurm, else the
    GPUs `execution.hardware` assumes, less the rollout servers' there), each with its own colocated rollout
    engine or sampling from `execution.rollout.servers` on GPUs of their own (on Slurm, nodes added to the
    stage's allocation), and its GPU-hours split into rollouts and updates at the estimate's rates."""
    from qwen3_recipe.compiler.estimate import GENERATION_MFU, PEAK_TFLOPS
    from qwen3_recipe.launch.rollout_servers import server_nodes
    ex = plan.loaded.recipe.execution
    nodes, per_node = (ex.slurm.nodes, ex.slurm.gpus_per_node) if ex.executor == "slurm" else (1, ex.hardware.count)
    servers, tp = ex.rollout.servers, ex.rollout.gpus_per_server
    if ex.executor == "ray" and ex.ray.workers:  # Ray Train workers (posttrain/trl_ray.py)
        nodes, per_node = 1, ex.ray.workers
    elif ex.hardware.accelerator == "cpu":
        nodes, per_node = 1, 1
    elif ex.executor != "slurm":
        per_node = max(1, per_node - servers * tp)
    peak = (ex.hardware.peak_tflops or PEAK_TFLOPS.get(ex.hardware.accelerator, PEAK_TFLOPS["H100"])) * 1e12
    est = p.estimate
    rollout_h = est.gen_flops / (peak * min(ex.hardware.mfu, GENERATION_MFU)) / 3600
    update_h = est.train_flops / (peak * ex.hardware.mfu) / 3600
    shard = ", FSDP2" if ex.fsdp == "full" and nodes * per_node > 1 else ""
    name = TRL_KINDS[p.job.kind]
    if p.job.kind == "general_rl":
        name = GENERAL_RL_TRAINERS.get(p.job.config["stage"]["method"], name)
    if servers:
        where = f"{server_nodes(servers, tp, per_node)} more node(s)" if ex.executor == "slurm" else "this machine"
        size = f" of {tp} GPU{'s' * (tp > 1)}" if ex.hardware.accelerator != "cpu" else ""
        rollouts = f"rollouts on {servers} server{'s' * (servers > 1)}{size} ({where})"
    else:
        rollouts = "rollouts colocated"
    if p.job.kind == "distill_offpolicy":
        rollouts = "on the teacher pass's samples" + (f", held-out samples from {servers} server(s)" if servers else "")
    return {"text": f"{name}, {nodes * per_node} process{'es' if nodes * per_node > 1 else ''} "
                    f"({nodes} node{'s' if nodes > 1 else ''} x {per_node}){shard}, {rollouts}",
            "gpus": nodes * per_node, "rollout_gpus": servers * tp if ex.hardware.accelerator != "cpu" else 0,
            # on Slurm the servers' nodes are the stage's whole (exclusive) nodes, used or not
            "rollout_gpus_held": (server_nodes(servers, tp, per_node) * per_node if ex.executor == "slurm"
                                  else servers * tp) if ex.hardware.accelerator != "cpu" else 0,
            "rollout_gpu_hours": rollout_h, "update_gpu_hours": update_h}


def seq_len_segments(p: "PlannedJob") -> list[dict[str, int]]:
    """A pretraining stage's lengths as it will train them: [{first_step, steps, seq_len, tokens}]
    (one segment unless it has seq_len_start), the same cut its torchtitan job is compiled with."""
    from qwen3_recipe.compiler.jobs import stage_steps
    from qwen3_recipe.train.pretrain import seq_len_segments as segments
    stage = p.job.config["stage"]
    batch, steps = stage_steps(stage["tokens"], stage["seq_len"], stage["batch_tokens"])
    return [s | {"tokens": s["steps"] * batch} for s in segments(stage.get("seq_len_start"), stage["seq_len"], steps)]


def refresh_status(view: dict[str, Any]) -> dict[str, Any]:
    """Recompute each job's status from the run directory's done markers."""
    for job in view["jobs"]:
        job["status"] = job_status(Path(view["run_dir"]), job["dir"], job["fingerprint"])
    return view
