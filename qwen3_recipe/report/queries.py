"""What the report asks `provenance.duckdb`, opened read-only. A missing database, an older schema
without some table, or an empty table all read as "no rows": the page never fails on a partial run.
Views are queried through their definitions (schema.VIEWS) so a database built before a view
existed still answers."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from qwen3_recipe.provenance.database import DB_NAME
from qwen3_recipe.provenance.schema import VIEWS


class Db:
    def __init__(self, run_dir: Path) -> None:
        self.con, self.tables, self.note = None, set(), ""
        path = run_dir / DB_NAME
        if not path.exists():
            self.note = f"no {DB_NAME} yet"
            return
        import duckdb
        try:
            self.con = duckdb.connect(str(path), read_only=True)
            names = self.con.execute("select table_name from information_schema.tables").fetchall()
            self.tables = {r[0] for r in names}
        except duckdb.Error as exc:  # e.g. written by a newer duckdb: say so on the page
            self.con, self.note = None, f"{DB_NAME} could not be opened: {exc}"

    def __enter__(self) -> Db:
        return self

    def __exit__(self, *exc) -> None:
        if self.con is not None:
            self.con.close()

    def has(self, *tables: str) -> bool:
        return self.con is not None and all(t in self.tables for t in tables)

    def rows(self, sql: str, params: list | None = None, needs: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        if not self.has(*needs):
            return []
        cur = self.con.execute(sql, params or [])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


def funnel(db: Db, job_order: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Per source, every step in run order: documents in / kept / dropped, the main drop reasons,
    bytes kept (exact: input bytes less the bytes of every document dropped so far) and tokens
    kept, estimated with the source's tokens per byte as measured on its mixed documents."""
    steps = db.rows(f"select * from ({VIEWS['funnel']})", needs=("step_counts",))
    dropped_bytes = {(r["job"], r["step_index"], r["source"]): r["b"] for r in db.rows(
        """select dc.job, dc.step_index, dc.source, sum(d.bytes) as b from decisions dc
           join documents d using (doc_id) where dc.decision = 'dropped' group by all""",
        needs=("decisions", "documents"))}
    reasons: dict[tuple, list[str]] = defaultdict(list)
    for r in db.rows("""select job, step_index, source, reason, count(*) as n from decisions
                        where decision = 'dropped' group by all order by n desc""", needs=("decisions",)):
        reasons[(r["job"], r["step_index"], r["source"])].append(f"{r['reason']} {r['n']:,}")
    total_bytes = {r["source"]: r["b"] for r in db.rows(
        "select source, sum(bytes) as b from documents group by source", needs=("documents",))}
    per_byte = {r["source"]: r["ratio"] for r in db.rows(
        """select m.source, sum(m.tokens) / nullif(sum(d.bytes), 0) as ratio
           from (select distinct doc_id, source, tokens from mixture) m join documents d using (doc_id)
           group by m.source""", needs=("mixture", "documents"))}
    rank = {name: i for i, name in enumerate(job_order)}
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in sorted(steps, key=lambda r: (r["source"], rank.get(r["job"], len(rank)), r["step_index"])):
        out[r["source"]].append(r)
    for source, rows in out.items():
        kept_bytes = total_bytes.get(source)
        for r in rows:
            key = (r["job"], r["step_index"], r["source"])
            if kept_bytes is not None:
                kept_bytes -= dropped_bytes.get(key) or 0
            r["bytes_kept"] = kept_bytes
            ratio = per_byte.get(source)
            r["tokens_est"] = round(kept_bytes * ratio) if ratio and kept_bytes is not None else None
            r["reasons"] = ", ".join(reasons.get(key, [])[:3]) + (" ..." if len(reasons.get(key, [])) > 3 else "")
    return dict(out)


def mixed(db: Db) -> list[dict[str, Any]]:
    """Per stage and source: documents and tokens used (with repetitions) and the declared share."""
    return db.rows("""
        with used as (select stage, weight_key as source, count(*) as documents, sum(tokens) as unique_tokens,
                             sum(tokens * repetitions) as tokens, max(repetitions) as max_repetitions
                      from mixture group by stage, weight_key)
        select u.*, t.declared_share, u.tokens / sum(u.tokens) over (partition by u.stage) as realized_share,
               t.budget_tokens, t.shortfall_tokens
        from used u left join mixture_targets t on t.stage = u.stage and t.source = u.source
        order by u.stage, u.source""", needs=("mixture", "mixture_targets"))


def mixture_targets(db: Db) -> list[dict[str, Any]]:
    return db.rows("select * from mixture_targets order by stage, source", needs=("mixture_targets",))


def contamination(db: Db) -> list[dict[str, Any]]:
    return db.rows("""select benchmark, source, action, count(distinct item_id) as items,
                             count(distinct doc_id) as documents, min(ngram) as example_ngram
                      from contamination group by all order by benchmark, source, action""",
                   needs=("contamination",))


def flagged_shares(db: Db, stages: dict[str, list[str]]) -> dict[str, tuple[float, int] | None]:
    """The contamination gate's measure per pretraining stage (provenance/gate.py)."""
    if not db.has("mixture", "documents", "decisions", "contamination"):
        return {}
    from qwen3_recipe.provenance.gate import flagged_share
    return {stage: flagged_share(db.con, stage, sources) for stage, sources in stages.items() if sources}


def train_steps(db: Db) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """stage -> metric -> [(step, value)] from post-training's step table."""
    out: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for r in db.rows("""select stage, metric, step, value from train_steps where value is not null
                        order by stage, metric, step""", needs=("train_steps",)):
        out[r["stage"]][r["metric"]].append((r["step"], r["value"]))
    return {stage: dict(metrics) for stage, metrics in out.items()}


def eval_accuracy(db: Db) -> list[dict[str, Any]]:
    return db.rows(f"select * from ({VIEWS['eval_accuracy']})", needs=("eval_samples",))
