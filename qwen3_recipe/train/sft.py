"""`posttrain.<stage>` jobs of type `sft` (long-CoT cold start) and `fusion` (thinking-mode fusion):
chat data rendered with the run's Qwen3 chat template, loss on assistant tokens only, packed
(train/sft_data.py), trained by torchtitan from the previous stage's exported weights.

Fusion draws think and no-think conversations at the stage's `no_think_ratio` (the larger side is
subsampled, deterministically by seed) so the model learns both modes and the /think, /no_think
switches.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from collections.abc import Iterator
from pathlib import Path

from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.train.stage import execution_settings, dump_folder, model_settings, run_stage

WARMUP_FRACTION = 0.05


def conversations(plan: Plan, refs: list[str], benchmarks: list[str] = (), rec=None) -> Iterator[dict]:
    """Conversations of a stage's `data`: synth jobs' datasets (decontaminated as prompts by their
    job) or datasets_spec/ chat entries, the latter without any overlapping `benchmarks` (each
    conversation gets a `prompts` row in provenance: kept, or dropped as contaminated with its hits)."""
    from qwen3_recipe.catalog.rows import entry_rows, file_rows
    from qwen3_recipe.data.decont_index import contamination_index
    recipe, catalog = plan.loaded.recipe, plan.loaded.catalogs.datasets
    index = contamination_index(plan, list(benchmarks)) if benchmarks else None
    for ref in refs:
        if ref in recipe.synth.jobs:
            for row in file_rows(plan.run_dir / "jobs" / f"synth.{ref}" / "dataset"):
                yield row | {"source": ref}
            continue
        entry = catalog[ref]
        field, id_field = entry.spec.messages_field or "messages", entry.spec.id_field or "id"
        for i, row in enumerate(entry_rows(ref, entry.spec, entry.local_path())):
            conv = {**row, "messages": row[field], "source": ref}
            text = "\n".join(_text(m.get(k)) for m in conv["messages"] for k in ("content", "reasoning_content"))
            hits = index.find(text) if index is not None else []
            if rec is not None:
                user = next((_text(m.get("content")) for m in conv["messages"] if m.get("role") == "user"), None)
                row_id = row.get(id_field)
                rec.add("prompts", source=ref, prompt_id=f"{ref}-{i}" if row_id is None else str(row_id), prompt=user, gold=None,
                        decision="dropped" if hits else "kept", reason="contaminated" if hits else None,
                        details=json.dumps([dataclasses.asdict(h) for h in hits]) if hits else None)
            if not hits:
                yield conv


def _text(content) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, list):
        return "\n".join(p.get("text") or "" if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)


def balance_modes(convs: list[dict], no_think_ratio: float, seed: int) -> list[dict]:
    """Subsample so that no-think conversations are `no_think_ratio` of the result."""
    from qwen3_recipe.train.sft_data import declared_mode
    modes = [declared_mode(c, c["messages"]) or "think" for c in convs]
    think = [c for c, m in zip(convs, modes) if m == "think"]
    no_think = [c for c, m in zip(convs, modes) if m == "no_think"]
    if not think or not no_think or no_think_ratio in (0.0, 1.0):
        return think if no_think_ratio == 0.0 else no_think if no_think_ratio == 1.0 else convs
    rng = random.Random(seed)
    n_no = min(len(no_think), int(len(think) * no_think_ratio / (1 - no_think_ratio)))
    n_think = min(len(think), int(n_no * (1 - no_think_ratio) / no_think_ratio))
    return rng.sample(think, n_think) + rng.sample(no_think, n_no)


def init_dir(p: PlannedJob, plan: Plan) -> Path | None:
    previous = [d for d in p.job.deps if d.startswith(("pretrain.", "posttrain."))]
    if previous:
        return (plan.run_dir / "jobs" / previous[-1] / "hf").resolve()
    return Path(p.job.config["init"]).resolve() if p.job.config.get("init") else None


def sft_job(p: PlannedJob, plan: Plan, data_dir: Path, rows: int) -> dict:
    stage, folder = p.job.config["stage"], plan.run_dir / p.job.dir
    init = init_dir(p, plan)
    arch = dataclasses.asdict(plan.loaded.arch)
    if init and (init / "config.json").exists():  # keep the RoPE base the weights were trained with
        arch["rope_theta"] = json.loads((init / "config.json").read_text())["rope_theta"]
    batch = min(stage["batch_size"], rows)
    steps = max(1, math.ceil(stage["epochs"] * rows / batch))
    return {
        "arch": arch, **model_settings(plan),
        "seq_len": stage["seq_len"], "batch_tokens": batch * stage["seq_len"], "steps": steps,
        "lr": {"peak": stage["lr"], "warmup_steps": min(steps - 1, math.ceil(WARMUP_FRACTION * steps)),
               "decay": "cosine", "min_lr_ratio": 0.1},
        "optimizer": plan.loaded.recipe.pretrain.optimizer.model_dump(),
        "data": {"kind": "sft", "tokens_dir": str(data_dir.resolve())},
        "tokenizer_dir": str((plan.run_dir / "jobs" / "tokenizer" / "tokenizer").resolve()),
        "dump_folder": str((folder / "dump").resolve()),
        "metrics_file": "metrics.jsonl",
        "checkpoint": {"interval": max(1, steps // 4), "model_only": init is not None,
                       "initial_load_path": str(init) if init else None},
        "seed": p.job.config["seed"], "export_hf": True,
        **execution_settings(plan),
    }


def run_sft(p: PlannedJob, plan: Plan) -> None:
    from qwen3_recipe.cli.render import console
    from qwen3_recipe.train.sft_data import prepare_sft

    stage, folder = p.job.config["stage"], plan.run_dir / p.job.dir
    dump = dump_folder(folder, p.job.fingerprint)
    data_dir = dump / "sft_data"
    if not (data_dir / "meta.json").exists():
        from qwen3_recipe.provenance.database import build_database
        from qwen3_recipe.provenance.recorder import ShardRecorder
        benchmarks = sorted(k.split(":", 1)[1] for k in p.job.inputs if k.startswith("benchmark:"))
        rec = ShardRecorder(folder / "provenance", p.job.name, "prompts", 0) if benchmarks else None
        convs = list(conversations(plan, stage["data"], benchmarks, rec))
        if rec is not None:  # a chat set from datasets_spec/ was decontaminated: its rows are queryable now
            rec.close()
            build_database(plan.run_dir)
        if stage["type"] == "fusion":
            convs = balance_modes(convs, stage["no_think_ratio"], p.job.config["seed"])
        stats = prepare_sft(convs, plan.run_dir / "jobs" / "tokenizer" / "tokenizer", data_dir,
                            stage["seq_len"], seed=p.job.config["seed"])
        console().print(f"{p.job.name}: {stats['samples']:,} samples ({stats['think']:,} think, "
                        f"{stats['no_think']:,} no-think) from {stats['conversations']:,} conversations -> "
                        f"{stats['rows']:,} packed rows, {stats['loss_tokens']:,} loss tokens")
    meta = json.loads((data_dir / "meta.json").read_text())
    if meta["stats"]["rows"] == 0:
        raise RuntimeError(f"{p.job.name}: no trainable samples in {', '.join(stage['data'])}")
    run_stage(p, plan, sft_job(p, plan, data_dir, meta["stats"]["rows"]))
