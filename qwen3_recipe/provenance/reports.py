"""Canned reports: `qwen3-recipe report funnel|contamination|mixture RUN_DIR` (the HTML page: qwen3_recipe/report)."""

from __future__ import annotations

from pathlib import Path

from qwen3_recipe.provenance.database import DB_NAME

REPORTS = {
    "funnel": """
        select f.job, f.source, f.step, f.documents_in, f.kept, f.dropped,
               round(100.0 * f.dropped / nullif(f.documents_in, 0), 1) as dropped_pct,
               (select string_agg(reason || ' ' || n, ', ' order by n desc) from (
                    select reason, count(*) n from decisions d
                    where d.job = f.job and d.step_index = f.step_index and d.source = f.source
                      and d.decision = 'dropped' group by reason)) as reasons
        from funnel f order by f.job, f.source, f.step_index""",
    "contamination": """
        select benchmark, source, count(distinct item_id) as items, count(distinct doc_id) as documents,
               string_agg(distinct action, ', ') as action, min(ngram) as example_ngram
        from contamination group by all order by benchmark, source""",
    "mixture": """
        with used as (select stage, weight_key as source, count(*) as documents, sum(tokens * repetitions) as tokens,
                             max(repetitions) as max_repetitions from mixture group by stage, weight_key)
        select u.stage, u.source, u.documents, u.tokens, round(100 * t.declared_share, 2) as declared_pct,
               round(100.0 * u.tokens / sum(u.tokens) over (partition by u.stage), 2) as realized_pct,
               u.max_repetitions, t.shortfall_tokens
        from used u left join mixture_targets t on t.stage = u.stage and t.source = u.source
        order by u.stage, u.source""",
}


def print_report(kind: str, run_dir: Path) -> int:
    import duckdb

    from qwen3_recipe.console import print_query
    with duckdb.connect(str(run_dir / DB_NAME), read_only=True) as con:
        print_query(con.sql(REPORTS[kind]), "table", None)
    return 0
