"""Prompts of a synth job (or an RL stage): rows of a datasets_spec/ entry with a prompt field and
optionally a gold answer (and tests, for code), decontaminated against `evals/` with the one
definition of the data pipeline; dropped prompts are recorded with their evidence."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from qwen3_recipe.compiler.plan import Plan


@dataclass
class Prompt:
    prompt_id: str
    source: str
    text: str
    gold: str | None
    item: dict[str, Any] = field(default_factory=dict)


def load_prompts(plan: Plan, ref: str, limit: int | None) -> list[Prompt]:
    from qwen3_recipe.catalog.items import code_fields
    from qwen3_recipe.catalog.rows import entry_rows
    entry = plan.loaded.catalogs.datasets[ref]
    spec = entry.spec
    prompt_field, answer_field = spec.prompt_field or "prompt", spec.answer_field
    out = []
    for i, row in enumerate(entry_rows(ref, spec, entry.local_path())):
        if limit is not None and len(out) >= limit:
            break
        pid = str(row.get(spec.id_field)) if spec.id_field and row.get(spec.id_field) is not None else f"{ref}-{i}"
        gold = row.get(answer_field) if answer_field else None
        item = row if not spec.tests_field else {**row, **code_fields(spec, row)}  # what a code verifier reads
        out.append(Prompt(pid, ref, str(row[prompt_field]), None if gold is None else str(gold), item))
    return out


def decontaminate(plan: Plan, prompts: list[Prompt], benchmarks: list[str], rec=None,
                  settings: dict | None = None) -> list[Prompt]:
    """Prompts without benchmark overlap; the others get a `prompts` row with their hits.
    `settings` ({method, n}): a compiled job's n-gram settings, else the recipe's."""
    from qwen3_recipe.data.decont_index import contamination_index
    index = contamination_index(plan, benchmarks, settings)
    kept = []
    for p in prompts:
        hits = index.find(p.text) if index is not None else []
        if rec is not None:
            rec.add("prompts", source=p.source, prompt_id=p.prompt_id, prompt=p.text, gold=p.gold,
                    decision="dropped" if hits else "kept", reason="contaminated" if hits else None,
                    details=json.dumps([dataclasses.asdict(h) for h in hits]) if hits else None)
        if not hits:
            kept.append(p)
    return kept
