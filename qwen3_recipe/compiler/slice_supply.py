"""What a mixture's label slices can supply, before its mix job runs: each source's annotated sample
(`annotations`, the classifiers' predictions on it) says which share of that source's documents each
weight key takes (recipe/slices.py's assignment, first matching slice first). Unknown (None) until
`quality.annotate` has run in this run directory."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path


def annotated_shares(run_dir: Path, keys: list) -> dict[str, dict[str, float]] | None:
    """source -> weight key -> share of the source's annotated sample drawn under that key."""
    from qwen3_recipe.provenance.database import DB_NAME
    from qwen3_recipe.recipe.slices import assign
    db = run_dir / DB_NAME
    if not db.exists():
        return None
    import duckdb
    try:
        with duckdb.connect(str(db), read_only=True) as con:
            rows = con.execute("select source, doc_id, dimension, coalesce(predicted::varchar, predicted_label), "
                               "predicted is not null from annotations").fetchall()
    except duckdb.Error:  # no annotations table yet
        return None
    labels: dict[tuple[str, str], dict] = defaultdict(dict)
    for source, doc_id, dimension, value, numeric in rows:
        labels[source, doc_id][dimension] = float(value) if numeric else value
    if not labels:
        return None
    counts: dict[str, Counter] = defaultdict(Counter)
    for (source, _), values in labels.items():
        counts[source][assign(source, values, keys)] += 1
    return {s: {k: n / sum(c.values()) for k, n in c.items() if k is not None} for s, c in counts.items()}
