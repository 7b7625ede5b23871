"""The compiled form of a `mix.<stage>` job (its lowered.json): the curated inputs, the mixture
(weights, token target, repetition cap, length buckets, packing), the contamination gate it checks,
and the tokenize step (tokenizer file, EOS, output name). data/mix.py runs this and nothing else.
No engine is imported here."""

from __future__ import annotations

from typing import Any

from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.launch.settings import executor_settings

EOS = "<|endoftext|>"


def mix_plan(p: PlannedJob, plan: Plan) -> dict[str, Any]:
    """The lowerer of `data_mix` jobs."""
    cfg = p.job.config
    mixture = cfg["mixture"]
    buckets = [[b["min"], b["max"], b["share"]] for b in mixture["length_buckets"] or []] or None
    stage = plan.loaded.recipe.pretrain.stages[cfg["stage"]]
    decont = plan.loaded.recipe.data.decontamination
    return {
        # the name and the gate are not the work (out of the config and fingerprint): a cached mix
        # is checked against a changed gate by plan and run (provenance/gate.py)
        "stage": cfg["stage"], "mixture_name": stage.mixture,
        "inputs": [dep for dep in p.job.deps if dep != "tokenizer"],
        # [key, share] pairs in the recipe's order (recipe/slices.py: the first matching slice takes a document)
        "weights": [[k, mixture["weights"][k]] for k in cfg.get("weight_order") or mixture["weights"]],
        "max_repetition": mixture["max_repetition"],
        # the trainer reads steps x batch tokens and one more (the last position's label)
        "tokens": cfg["tokens"] + 1, "seed": cfg["seed"], "length_buckets": buckets,
        "pack_related": mixture["pack_related"],
        "pack_target_tokens": cfg["pack_target_tokens"],
        "gate": {"threshold": decont.threshold, "allow": decont.allow_contamination},
        "tokenize": {"tokenizer": str((plan.run_dir / "jobs" / "tokenizer" / "tokenizer" / "tokenizer.json").resolve()),
                     "eos_token": EOS, "save_filename": cfg["stage"]},
        "executor": executor_settings(plan, p.job.name),
    }
