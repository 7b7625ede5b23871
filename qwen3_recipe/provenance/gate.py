"""The contamination gate: a pretraining stage whose documents still hold benchmark overlap
(decontamination action `flag`) above the recipe's threshold is refused - by `plan` and at the
start of `run` as soon as the run's provenance shows it, and by the stage's mix job on the exact
set it would train on - unless the recipe says `allow_contamination`.

Works on plain data (the plan view's `contamination_gate` entry) so that a cached plan can be
checked without loading the recipe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qwen3_recipe.provenance.database import ensure_database
from qwen3_recipe.recipe.slices import key_sources, parse_keys

THRESHOLD_KEY = "data.decontamination.threshold"


def gate_view(loaded) -> dict[str, Any]:
    """What the gate needs from a recipe: threshold, its location, and each stage's sources."""
    recipe = loaded.recipe
    cfg = recipe.data.decontamination
    loc = loaded.raw.smap.find(tuple(THRESHOLD_KEY.split(".")))
    return {"threshold": cfg.threshold, "allow": cfg.allow_contamination, "where": str(loc) if loc else "",
            "stages": {name: key_sources(parse_keys(recipe.data.mixtures[stage.mixture].weights),
                                         list(recipe.data.sources))
                       for name, stage in recipe.pretrain.stages.items()
                       if stage.mixture in recipe.data.mixtures}}


def flagged_share(con, stage: str, sources: list[str]) -> tuple[float, int] | None:
    """Share of a stage's documents that are flagged as contaminated, and how many documents.

    The realised mixture when the stage's mix job has run; before that, the documents of the
    stage's sources that no step dropped (what the mixture will draw from). None: nothing known."""
    mixed = con.execute("select distinct doc_id from mixture where stage = ?", [stage]).fetchall()
    if mixed:
        docs = {r[0] for r in mixed}
    else:
        marks = ",".join("?" * len(sources))
        docs = {r[0] for r in con.execute(
            f"""select distinct doc_id from documents where source in ({marks})
                except select doc_id from decisions where decision = 'dropped'""", sources).fetchall()}
    if not docs:
        return None
    return len(docs & flagged_documents(con)) / len(docs), len(docs)


def flagged_documents(con) -> set[str]:
    """Documents kept with benchmark overlap (decontamination action `flag`)."""
    return {r[0] for r in con.sql("select distinct doc_id from contamination where action = 'flagged'").fetchall()}


def refusals(view: dict[str, Any], run_dir: Path) -> list[str]:
    """One message per stage the gate refuses, from the run's provenance database (if any)."""
    gate = view.get("contamination_gate")
    if not gate or gate["allow"]:
        return []
    db = ensure_database(Path(run_dir))  # decided on the shards as they are, not a stale or broken copy
    if db is None:
        return []
    import duckdb
    out = []
    with duckdb.connect(str(db), read_only=True) as con:
        for stage, sources in gate["stages"].items():
            found = flagged_share(con, stage, sources)
            if found and found[0] > gate["threshold"]:
                out.append(refusal_message(stage, found[0], found[1], gate))
    return out


def refusal_message(stage: str, share: float, docs: int, gate: dict[str, Any]) -> str:
    where = f"{gate['where']}  " if gate.get("where") else ""
    return f"{where}{THRESHOLD_KEY}: {refusal_text(stage, share, docs, gate['threshold'])}"


def refusal_text(stage: str, share: float, docs: int, threshold: float) -> str:
    return (f"stage '{stage}' would train on {share:.2%} contaminated documents (of {docs:,}; threshold "
            f"{threshold:.2%}); drop them (action: drop), raise the threshold, or set allow_contamination: true")
