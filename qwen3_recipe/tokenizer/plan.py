"""The compiled form of the `tokenizer` job (its lowered.json): train a BPE (inputs, sources,
document cap, vocabulary) or copy a pretrained one, and the context length written into a
trained one's config. tokenizer/job.py runs this and nothing else."""

from __future__ import annotations

from typing import Any

from qwen3_recipe.compiler.plan import Plan, PlannedJob


def tokenizer_plan(p: PlannedJob, plan: Plan) -> dict[str, Any]:
    cfg = p.job.config["tokenizer"]
    out: dict[str, Any] = {"type": cfg["type"]}
    if cfg["type"] == "train":  # written with Qwen3's chat template (tokenizer/qwen3.py)
        out |= {"model_max_length": p.job.config["model_max_length"], "inputs": list(p.job.deps),
                "sources": cfg.get("sources"), "max_documents": cfg.get("max_documents"),
                "vocab_size": int(cfg["vocab_size"])}
    else:
        out["path"] = cfg["path"]
    return out
