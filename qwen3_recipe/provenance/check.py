"""`qwen3-recipe check RUN_DIR`: the provenance invariants. For every step: documents in =
kept + dropped (+ modified); what a step passes on is what the next step receives; every
document has exactly one fate per step it reached; ids are unique per job."""

from __future__ import annotations

from pathlib import Path

from qwen3_recipe.provenance.database import DB_NAME

CHECKS = {
    "counts add up: in = kept + dropped + modified": """
        select job, step, source, rank from step_counts where documents_in <> kept + dropped + modified""",
    "each step receives what the previous step passed on": """
        select job, step, source, rank from (
            select *, lag(kept + modified) over (partition by job, source, rank order by step_index) as passed
            from step_counts) where passed is not null and passed <> documents_in""",
    "one fate per document per step": """
        select job, step_index, doc_id from decisions group by all having count(*) > 1""",
    "document ids unique per job": """
        select job, doc_id from documents group by all having count(*) > 1""",
    "every read document is counted at the read step": """
        select d.job, d.source from (select job, source, count(*) n from documents group by all) d
        join (select job, source, sum(documents_in) n from step_counts where step_index = 0 group by all) c
        using (job, source) where d.n <> c.n""",
    "drops at a step match its count (drops are never thinned)": """
        select c.job, c.step from (select job, step_index, step, source, sum(dropped) n from step_counts group by all) c
        left join (select job, step_index, source, count(*) n from decisions where decision = 'dropped' group by all) d
        using (job, step_index, source) where c.n <> coalesce(d.n, 0)""",
}
UNTHINNED = {
    "every document that reached a step has a decision there": """
        select c.job, c.step from (select job, step_index, step, source, sum(documents_in) n from step_counts
                                   where step_index > 0 group by all) c
        left join (select job, step_index, source, count(*) n from decisions group by all) d
        using (job, step_index, source) where c.n <> coalesce(d.n, 0)""",
}


def violations(run_dir: Path, thinned: bool = False) -> dict[str, list[tuple]]:
    import duckdb
    checks = CHECKS if thinned else {**CHECKS, **UNTHINNED}
    with duckdb.connect(str(run_dir / DB_NAME), read_only=True) as con:
        return {name: con.sql(sql).fetchall() for name, sql in checks.items()}


def _thinned(run_dir: Path) -> bool:
    import yaml
    lock = run_dir / "recipe.lock.yaml"
    if not lock.exists():
        return False
    rate = (yaml.safe_load(lock.read_text()) or {}).get("outputs", {}).get("provenance", {}).get("kept_sample_rate", 1)
    return rate < 1


def check_run(run_dir: Path) -> int:
    from qwen3_recipe.console import console
    con = console()
    failed = 0
    for name, rows in violations(run_dir, _thinned(run_dir)).items():
        if rows:
            failed += 1
            con.print(f"[red]FAIL[/] {name}: {len(rows)} violations, e.g. {rows[:3]}")
        else:
            con.print(f"[green]ok[/]   {name}")
    return 1 if failed else 0
