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
import random
from collections.abc import Iterator
from pathlib import Path

from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.train.sft_plan import trainer_job
from qwen3_recipe.train.stage import dump_folder, run_stage


def conversations(plan: Plan, data: dict, rec=None) -> Iterator[dict]:
    """Conversations of a compiled stage's `data` (train/sft_plan.py): synth jobs' datasets
    (decontaminated as prompts by their job) or datasets_spec/ chat entries, the latter without any
    overlapping benchmark (each conversation gets a `prompts` row in provenance: kept, or dropped as
    contaminated with its hits)."""
    from qwen3_recipe.catalog.rows import entry_rows, file_rows
    from qwen3_recipe.catalog.specs import DatasetSpec
    from qwen3_recipe.data.decont_index import contamination_index
    decont = data.get("decontamination")
    index = contamination_index(plan, decont["benchmarks"], decont) if decont else None
    for source in data["sources"]:
        ref = source["name"]
        if "synth_dataset" in source:
            for row in file_rows(Path(source["synth_dataset"])):
                yield row | {"source": ref}
            continue
        spec = DatasetSpec.model_validate(source["spec"])
        field, id_field = spec.messages_field or "messages", spec.id_field or "id"
        for i, row in enumerate(entry_rows(ref, spec, Path(source["path"]) if source["path"] else None)):
            conv = {**row, "messages": row[field], "source": ref}
            text = "\n".join(_text(m.get(k)) for m in conv["messages"] for k in ("content", "reasoning_content"))
            hits = index.find(text) if index is not None else []
            if rec is not None:
                user = next((_text(m.get("content")) for m in conv["messages"] if m.get("role") == "user"), None)
                row_id = row.get(id_field)
                rec.add("prompts", source=ref, prompt_id=f"{ref}-{i}" if row_id is None else str(row_id),
                        prompt=user, gold=None, decision="dropped" if hits else "kept",
                        reason="contaminated" if hits else None,
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


def run_sft(p: PlannedJob, plan: Plan) -> None:
    """Pack the compiled stage's conversations, then train the torchtitan job they complete."""
    from qwen3_recipe.compiler.lowerers import load_lowered
    from qwen3_recipe.console import console
    from qwen3_recipe.train.sft_data import prepare_sft

    lowered = load_lowered(p, plan)
    data, folder = lowered["data"], plan.run_dir / p.job.dir
    dump_folder(folder, p.job.fingerprint)
    data_dir = Path(data["folder"])
    if not (data_dir / "meta.json").exists():
        from qwen3_recipe.provenance.database import build_database
        from qwen3_recipe.provenance.recorder import ShardRecorder
        rec = ShardRecorder(folder / "provenance", p.job.name, "prompts", 0) if data["decontamination"] else None
        convs = list(conversations(plan, data, rec))
        if rec is not None:  # a chat set from datasets_spec/ was decontaminated: its rows are queryable now
            rec.close()
            build_database(plan.run_dir)
        if data["no_think_ratio"] is not None:  # fusion
            convs = balance_modes(convs, data["no_think_ratio"], data["seed"])
        stats = prepare_sft(convs, Path(lowered["trainer"]["tokenizer_dir"]), data_dir, data["seq_len"],
                            seed=data["seed"])
        console().print(f"{p.job.name}: {stats['samples']:,} samples ({stats['think']:,} think, "
                        f"{stats['no_think']:,} no-think) from {stats['conversations']:,} conversations -> "
                        f"{stats['rows']:,} packed rows, {stats['loss_tokens']:,} loss tokens")
    meta = json.loads((data_dir / "meta.json").read_text())
    if meta["stats"]["rows"] == 0:
        raise RuntimeError(f"{p.job.name}: no trainable samples in {', '.join(s['name'] for s in data['sources'])}")
    run_stage(p, plan, trainer_job(lowered, meta["stats"]["rows"]))
