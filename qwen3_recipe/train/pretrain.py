"""`pretrain.<stage>` jobs: the compiled curriculum stage as a torchtitan job - token budget ->
steps from the global batch in tokens, the stage's LR schedule and RoPE base, warm-started from
the previous stage's exported weights, trained on the stage's mixed tokens (mix.<stage>).

A stage with `seq_len_start` grows its sequence length within one torchtitan run: the steps are cut
into equal segments at doubling lengths (seq_len_start, 2x, ..., seq_len); the loader follows that
schedule with the global batch in tokens held constant (more, shorter rows), so the LR schedule and
the optimizer state run on unbroken across the segments."""

from __future__ import annotations

import dataclasses
import math

from qwen3_recipe.compiler.jobs import stage_steps
from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.train.stage import execution_settings, dump_folder, model_settings, run_stage

# recipe decay -> torchtitan's decay_type (wsd = warmup, stable, then linear decay over decay_ratio)
DECAY = {"cosine": "cosine", "linear": "linear", "wsd": "linear", "constant": "linear"}


def stage_job(p: PlannedJob, plan: Plan) -> dict:
    """The torchtitan job description (qwen3_recipe/train/job.py) of one pretraining stage."""
    stage, folder = p.job.config["stage"], plan.run_dir / p.job.dir
    seq_len = stage["seq_len"]
    batch_tokens, steps = stage_steps(stage["tokens"], seq_len, stage["batch_tokens"])
    lr = stage["lr"]
    previous = [d for d in p.job.deps if d.startswith("pretrain.")]
    schedule = seq_len_segments(stage.get("seq_len_start"), seq_len, steps)
    return {
        "arch": dataclasses.asdict(plan.loaded.arch) | {"rope_theta": stage["rope_theta"]},
        **model_settings(plan),
        "seq_len": seq_len,
        "batch_tokens": batch_tokens,
        "steps": steps,
        **({"seq_len_schedule": schedule} if len(schedule) > 1 else {}),
        "lr": {"peak": lr["peak"], "warmup_steps": min(steps - 1, math.ceil(lr["warmup_tokens"] / batch_tokens)),
               "decay": DECAY[lr["decay"]], "decay_ratio": decay_ratio(lr),
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


def decay_ratio(lr: dict) -> float | None:
    """torchtitan decays over the last `decay_ratio` of the steps (after a stable phase) for any decay
    shape; None decays right after warmup. wsd is linear decay over its decay_fraction."""
    return lr["decay_fraction"] if lr["decay"] == "wsd" or lr["decay_fraction"] < 1 else None


def seq_len_segments(start: int | None, seq_len: int, steps: int) -> list[dict]:
    """[{first_step, steps, seq_len}] (1-based steps): equal shares of the steps at seq_len_start,
    2x, ... up to seq_len (the checks make seq_len = seq_len_start x 2^k). A stage with fewer steps
    than lengths keeps the longest lengths."""
    lengths = [seq_len]
    while start and lengths[0] // 2 >= start:
        lengths.insert(0, lengths[0] // 2)
    lengths = lengths[-steps:]
    cuts = [round(i * steps / len(lengths)) for i in range(len(lengths) + 1)]
    return [{"first_step": cuts[i] + 1, "steps": cuts[i + 1] - cuts[i], "seq_len": length}
            for i, length in enumerate(lengths)]


def stage_name(p: PlannedJob) -> str:
    return p.job.name.split(".", 1)[1]


def run_pretrain(p: PlannedJob, plan: Plan) -> None:
    from qwen3_recipe.compiler.lowerers import load_lowered
    dump_folder(plan.run_dir / p.job.dir, p.job.fingerprint)
    run_stage(p, plan, load_lowered(p, plan))
