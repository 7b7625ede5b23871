"""Running one training stage of a plan (pretraining or SFT): its own dump folder, torchrun with
a progress bar fed by the metrics file, the final checkpoint exported to `<job>/hf`.

Resume rules. torchtitan resumes from any `checkpoint/step-*` in the dump folder and then ignores
`initial_load_*`, so each stage has its own folder, stamped with the job's fingerprint: a killed
stage resumes from its last checkpoint; a changed stage starts clean (`run` clears it). Saves cut short by a kill are
dropped; a stage killed after its final (HF-format) save is not retrained: the export is reused.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from qwen3_recipe.compiler.plan import Plan, PlannedJob

STAMP = "fingerprint.txt"


def execution_settings(plan: Plan) -> dict:
    """What the recipe's `execution` section says about how to train (not part of fingerprints)."""
    ex = plan.loaded.recipe.execution
    return {"mixed_precision": ex.mixed_precision, "fsdp": ex.fsdp,
            "activation_checkpointing": ex.activation_checkpointing, "compile": ex.compile,
            "parallelism": ex.parallelism.model_dump()}


def model_settings(plan: Plan) -> dict:
    from qwen3_recipe.presets import yarn_scaling
    model = plan.loaded.recipe.model
    return {"preset": model.preset, "model_name": model.name or plan.loaded.recipe.name,
            "rope_scaling": yarn_scaling(model.yarn)}


def dump_folder(folder: Path, fingerprint: str) -> Path:
    """The stage's dump folder, stamped with the version that trains in it. A changed stage never
    finds an older one here: `run` clears a job whose fingerprint changed (runners.start_clean)."""
    dump = folder / "dump"
    dump.mkdir(parents=True, exist_ok=True)
    (dump / STAMP).write_text(fingerprint)
    return dump


def drop_unfinished_saves(job: dict) -> None:
    """A save cut short by a kill would be picked up as the step to resume from: keep only complete
    DCP checkpoints (`.metadata` is written last) and complete HF exports (index written last)."""
    from qwen3_recipe.train.launch import HF_INDEX
    for step in (Path(job["dump_folder"]) / "checkpoint").glob("step-*"):
        if not ((step / ".metadata").exists() or (step / HF_INDEX).exists()):
            shutil.rmtree(step)


def final_step(job: dict) -> Path:
    return Path(job["dump_folder"]) / "checkpoint" / f"step-{job['steps']}"


def run_stage(p: PlannedJob, plan: Plan, job: dict) -> list[dict]:
    """Train `job` (a dict for train/job.py) for stage `p`; returns its metric rows."""
    from qwen3_recipe.console import console
    from qwen3_recipe.progress import training_progress
    from qwen3_recipe.train.launch import launch

    folder = plan.run_dir / p.job.dir
    job_json = folder / "trainer_job.json"
    job_json.write_text(json.dumps(job, indent=2))
    final = final_step(job)
    from qwen3_recipe.train.export import write_hf_assets
    from qwen3_recipe.train.launch import HF_INDEX
    if not (final / HF_INDEX).exists():
        drop_unfinished_saves(job)
        with training_progress(p.job.name, job["steps"]) as update:
            result = launch(job_json, log_path=folder / "train.log", on_metrics=update)
        if result.returncode != 0 or not (final / HF_INDEX).exists():
            tail = "\n".join(result.stdout.splitlines()[-5:])
            raise RuntimeError(f"torchtitan exited with {result.returncode}; see {folder / 'train.log'}\n{tail}")
    write_hf_assets(job, final)  # (again) - cheap, and covers a kill right after the HF save
    hf, tmp = folder / "hf", folder / "hf.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(final, tmp, ignore=shutil.ignore_patterns("sharded"))  # DCP's pre-consolidation shards
    shutil.rmtree(hf, ignore_errors=True)
    tmp.rename(hf)
    rows = read_metrics(Path(job["dump_folder"], job.get("metrics_file", "metrics.jsonl")))
    if p.job.kind == "pretrain":
        rows = with_fed_lengths(rows, job)
        record_steps(p, plan.run_dir, rows)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    losses = [r["loss_metrics/global_avg_loss"] for r in rows if "loss_metrics/global_avg_loss" in r]
    if losses:
        console().print(f"{p.job.name}: loss {losses[0]:.3f} -> {losses[-1]:.3f} over {len(losses)} steps; "
                        f"weights in {hf}")
    return rows


def read_metrics(path: Path) -> list[dict]:
    """Metric rows by step; a resumed stage logs some steps twice, the last run's row wins."""
    if not path.exists():
        return []
    by_step: dict[int, dict] = {}
    for line in path.read_text().splitlines():
        if line.endswith("}"):
            row = json.loads(line)
            by_step[row["step"]] = row
    return [by_step[s] for s in sorted(by_step)]


def with_fed_lengths(rows: list[dict], job: dict) -> list[dict]:
    """Metric rows plus the sequence length and tokens fed at each step: a growing stage's loader
    trace (a resumed stage re-feeds the micro-batches after its last checkpoint: the last feed wins);
    a fixed-length loader cannot feed anything but the job's seq_len and batch."""
    from qwen3_recipe.train.launch import LOADER_TRACE
    if not job.get("seq_len_schedule"):
        return [r | {"seq_len": job["seq_len"], "tokens": job["batch_tokens"]} for r in rows]
    dump = Path(job["dump_folder"])
    fed: dict[int, dict] = {}
    for line in (dump / LOADER_TRACE).read_text().splitlines() if (dump / LOADER_TRACE).exists() else []:
        if line.endswith("}"):
            entry = json.loads(line)
            fed[entry["micro"]] = entry
    per_step: dict[int, dict] = {}
    for entry in fed.values():
        step = per_step.setdefault(entry["step"], {"seq_len": set(), "tokens": 0})
        step["seq_len"].add(entry["seq_len"])
        step["tokens"] += entry["tokens"]
    out = []
    for row in rows:
        step = per_step.get(row["step"])
        if step and len(step["seq_len"]) == 1:
            row = row | {"seq_len": next(iter(step["seq_len"])), "tokens": step["tokens"]}
        out.append(row)
    return out


def record_steps(p: PlannedJob, run_dir: Path, rows: list[dict]) -> None:
    """Per step: loss, sequence length and tokens trained, as provenance's train_steps."""
    from qwen3_recipe.provenance.database import build_database
    from qwen3_recipe.provenance.recorder import ShardRecorder
    rec = ShardRecorder(run_dir / p.job.dir / "provenance", p.job.name, "steps", 0)
    stage = p.job.name.split(".", 1)[1]
    for row in rows:
        for metric, key in (("loss", "loss_metrics/global_avg_loss"), ("seq_len", "seq_len"), ("tokens", "tokens")):
            if isinstance(row.get(key), (int, float)):
                rec.add("train_steps", stage=stage, kind=p.job.kind, step=row["step"], metric=metric,
                        value=float(row[key]))
    rec.close()
    build_database(run_dir)
