"""The compiled form of an `sft` or `fusion` stage (`jobs/<job>/lowered.json`).

An SFT stage's step count depends on its data: conversations are rendered and packed at run time,
and the steps are epochs x packed rows / batch. So the artifact holds everything but that count -
where each conversation set is read from, the decontamination and mode balance applied to them, the
packing length, and the torchtitan job with the schedule that completes it (`trainer_job`) - and
`run` executes it without reading the recipe. No torch here: `compile` imports this.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from qwen3_recipe.compiler.plan import Plan, PlannedJob

WARMUP_FRACTION = 0.05
CHECKPOINTS = 4  # saves per stage (the last one is the export)


def init_dir(p: PlannedJob, plan: Plan) -> Path | None:
    """The weights a post-training stage starts from: the previous stage's export (its last dependency;
    a teacher stage or a teacher pass comes before it), else `init` (set in its config exactly when no
    stage precedes it)."""
    if "init" in p.job.config:
        return Path(p.job.config["init"]).resolve() if p.job.config["init"] else None
    return (plan.run_dir / "jobs" / p.job.deps[-1] / "hf").resolve()


def conversation_sources(plan: Plan, refs: list[str]) -> list[dict[str, Any]]:
    """Where each of a stage's `data` entries is read from: a synth job's dataset folder of this run,
    or a datasets_spec/ chat entry (its spec and local file)."""
    out = []
    for ref in refs:
        if ref in plan.loaded.recipe.synth.jobs:
            folder = plan.run_dir / "jobs" / f"synth.{ref}" / "dataset"
            out.append({"name": ref, "synth_dataset": str(folder.resolve())})
            continue
        entry = plan.loaded.catalogs.datasets[ref]
        local = entry.local_path()
        out.append({"name": ref, "spec": entry.spec.model_dump(mode="json", exclude={"description"}),
                    "path": str(local.resolve()) if local else None})
    return out


def decontamination(p: PlannedJob, plan: Plan) -> dict[str, Any] | None:
    """Benchmarks a stage's datasets_spec/ conversations are checked against, and how."""
    benchmarks = sorted(k.split(":", 1)[1] for k in p.job.inputs if k.startswith("benchmark:"))
    if not benchmarks:
        return None
    cfg = plan.loaded.recipe.data.decontamination
    return {"benchmarks": benchmarks, "method": cfg.method, "n": cfg.n}


def sft_plan(p: PlannedJob, plan: Plan) -> dict[str, Any]:
    from qwen3_recipe.train.stage import execution_settings, model_settings

    stage, folder = p.job.config["stage"], plan.run_dir / p.job.dir
    init = init_dir(p, plan)
    dump = (folder / "dump").resolve()
    return {
        "data": {"sources": conversation_sources(plan, stage["data"]), "decontamination": decontamination(p, plan),
                 "no_think_ratio": stage["no_think_ratio"] if stage["type"] == "fusion" else None,
                 "seq_len": stage["seq_len"], "seed": p.job.config["seed"], "folder": str(dump / "sft_data")},
        "schedule": {"epochs": stage["epochs"], "batch_size": stage["batch_size"], "warmup_fraction": WARMUP_FRACTION,
                     "checkpoints": CHECKPOINTS},
        # the RoPE base the initial weights were trained with, read from their config.json at run time
        "rope_theta_from": str(init / "config.json") if init else None,
        "trainer": {
            "arch": dataclasses.asdict(plan.loaded.arch), **model_settings(plan),
            "seq_len": stage["seq_len"],
            "lr": {"peak": stage["lr"], "decay": "cosine", "min_lr_ratio": 0.1},
            "optimizer": plan.loaded.recipe.pretrain.optimizer.model_dump(mode="json"),
            "data": {"kind": "sft", "tokens_dir": str(dump / "sft_data")},
            "tokenizer_dir": str((plan.run_dir / "jobs" / "tokenizer" / "tokenizer").resolve()),
            "dump_folder": str(dump),
            "metrics_file": "metrics.jsonl",
            "checkpoint": {"model_only": init is not None, "initial_load_path": str(init) if init else None},
            "seed": p.job.config["seed"], "export_hf": True,
            **execution_settings(plan),
        },
    }


def trainer_job(lowered: dict[str, Any], rows: int) -> dict[str, Any]:
    """The torchtitan job of a compiled SFT stage once its data is packed into `rows` rows."""
    sched, job = lowered["schedule"], json.loads(json.dumps(lowered["trainer"]))
    batch = min(sched["batch_size"], rows)
    steps = max(1, math.ceil(sched["epochs"] * rows / batch))
    job["batch_tokens"], job["steps"] = batch * job["seq_len"], steps
    job["lr"]["warmup_steps"] = min(steps - 1, math.ceil(sched["warmup_fraction"] * steps))
    job["checkpoint"]["interval"] = max(1, steps // sched["checkpoints"])
    source = lowered.get("rope_theta_from")
    if source and Path(source).exists():  # keep the RoPE base the weights were trained with
        job["arch"]["rope_theta"] = json.loads(Path(source).read_text())["rope_theta"]
    return job
