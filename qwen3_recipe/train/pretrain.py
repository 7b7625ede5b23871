"""`pretrain.<stage>` jobs: the compiled stage as a torchtitan job, warm-started from the previous
stage's exported weights, trained on the stage's mixed tokens, exported to HF at the end.

Each stage has its own dump folder (torchtitan resumes from any `checkpoint/step-*` it finds and
then ignores `initial_load_*`, so stages must not share one); a killed stage resumes from its last
checkpoint on rerun.

Not registered as the `pretrain` runner yet: on this 2-core CPU the tiny recipe's stage reached
only ~525 tokens/s (1M-parameter model, 8K-token batches), so its budgets would take half an hour;
the training issue tunes the tiny budgets and throughput before `run` trains by default.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.errors import Problem, RecipeError

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
        "seq_len": seq_len,
        "batch_tokens": batch_tokens,
        "steps": steps,
        "lr": {"peak": lr["peak"], "warmup_steps": min(steps - 1, math.ceil(lr["warmup_tokens"] / batch_tokens)),
               "decay": DECAY[lr["decay"]], "decay_ratio": lr["decay_fraction"] if lr["decay"] == "wsd" else None,
               "min_lr_ratio": 1.0 if lr["decay"] == "constant" else lr["min_lr_ratio"]},
        "optimizer": p.job.config["optimizer"],
        "data": {"tokens_dir": str(plan.run_dir / "jobs" / f"mix.{stage_name(p)}" / "tokens")},
        "tokenizer_dir": str(plan.run_dir / "jobs" / "tokenizer" / "tokenizer"),
        "dump_folder": str(folder / "dump"),
        "metrics_file": str((folder / "metrics.jsonl").resolve()),
        "checkpoint": {"interval": stage["checkpoint_every_steps"],
                       "initial_load_path": str(plan.run_dir / "jobs" / previous[0] / "hf") if previous else None,
                       "model_only": True},
        "seed": p.job.config["seed"],
        "export_hf": True,
    }


def stage_name(p: PlannedJob) -> str:
    return p.job.name.split(".", 1)[1]


def run_pretrain(p: PlannedJob, plan: Plan) -> None:
    from qwen3_recipe.train.job import launch

    folder = plan.run_dir / p.job.dir
    folder.mkdir(parents=True, exist_ok=True)
    job = stage_job(p, plan)
    job_json = folder / "trainer_job.json"
    job_json.write_text(json.dumps(job, indent=2))
    from qwen3_recipe.cli.render import console
    with console().status(f"[cyan]{p.job.name}: {job['steps']} steps of {job['batch_tokens']} tokens "
                          f"at seq_len {job['seq_len']} (torchtitan)[/]"):
        result = launch(job_json)
    (folder / "train.log").write_text((result.stdout or "") + (result.stderr or ""))
    if result.returncode != 0:
        raise RuntimeError(f"torchtitan exited with {result.returncode}; see {folder / 'train.log'}")
    final = Path(job["dump_folder"]) / "checkpoint" / f"step-{job['steps']}"
    hf = folder / "hf"
    if hf.exists():
        shutil.rmtree(hf)
    shutil.copytree(final, hf)
    losses = [json.loads(line).get("loss_metrics/global_avg_loss") for line in
              (folder / "metrics.jsonl").read_text().splitlines()] if (folder / "metrics.jsonl").exists() else []
    losses = [x for x in losses if x is not None]
    if losses:
        console().print(f"{p.job.name}: loss {losses[0]:.3f} -> {losses[-1]:.3f} over {len(losses)} logged steps")
