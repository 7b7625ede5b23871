"""`pretrain.<stage>` jobs: the compiled curriculum stage as a torchtitan job - token budget ->
steps from the global batch in tokens, the stage's LR schedule and RoPE base, warm-started from
the previous stage's exported weights, trained on the stage's mixed tokens (mix.<stage>)."""

from __future__ import annotations

import dataclasses
import math

from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.train.stage import execution_settings, dump_folder, model_settings, run_stage

# recipe decay -> torchtitan's decay_type (wsd = warmup, stable, then linear decay over decay_ratio)
DECAY = {"cosine": "cosine", "linear": "linear", "wsd": "linear", "constant": "linear"}


def stage_job(p: PlannedJob, plan: Plan) -> dict:
    """The torchtitan job description (qwen3_recipe/train/job.py) of one pretraining stage."""
    stage, folder = p.job.config["stage"], plan.run_dir / p.job.dir
    seq_len = stage["seq_len"]
    batch_tokens = max(seq_len, stage["batch_tokens"] // seq_len * seq_len)  # whole sequences
    steps = max(1, math.ceil(stage["tokens"] / batch_tokens))
    lr = stage["lr"]
    previous = [d for d in p.job.deps if d.startswith("pretrain.")]
    return {
        "arch": dataclasses.asdict(plan.loaded.arch) | {"rope_theta": stage["rope_theta"]},
        **model_settings(plan),
        "seq_len": seq_len,
        "batch_tokens": batch_tokens,
        "steps": steps,
        "lr": {"peak": lr["peak"], "warmup_steps": min(steps - 1, math.ceil(lr["warmup_tokens"] / batch_tokens)),
               "decay": DECAY[lr["decay"]], "decay_ratio": lr["decay_fraction"] if lr["decay"] == "wsd" else None,
               "min_lr_ratio": 1.0 if lr["decay"] == "constant" else lr["min_lr_ratio"]},
        "optimizer": p.job.config["optimizer"],
        "data": {"kind": "tokens", "tokens_dir": str((plan.run_dir / "jobs" / f"mix.{stage_name(p)}" / "tokens").resolve())},
        "tokenizer_dir": str((plan.run_dir / "jobs" / "tokenizer" / "tokenizer").resolve()),
        "dump_folder": str((folder / "dump").resolve()),
        "metrics_file": "metrics.jsonl",  # in the dump folder: a changed stage starts a clean file
        "checkpoint": {"interval": stage["checkpoint_every_steps"],
                       "initial_load_path": str((plan.run_dir / "jobs" / previous[0] / "hf").resolve()) if previous else None,
                       "model_only": bool(previous)},
        "seed": p.job.config["seed"],
        "export_hf": True,
        **execution_settings(plan),
    }


def stage_name(p: PlannedJob) -> str:
    return p.job.name.split(".", 1)[1]


def run_pretrain(p: PlannedJob, plan: Plan) -> None:
    dump_folder(plan.run_dir / p.job.dir, p.job.fingerprint)
    run_stage(p, plan, stage_job(p, plan))
