"""`qwen3-recipe report html RUN_DIR`: one self-contained HTML page for a run.

Gathering (rundata: manifest, job configs, status, metrics.jsonl; queries: provenance.duckdb) is
kept apart from drawing (dag: the plan as SVG; charts_*: matplotlib figures as inline SVG) and
from the page (page + templates/report.html.jinja). The page has no script and references no
URL, so it opens anywhere, offline, with nothing to load. Every section is always there: on a
partial run it says which command fills it.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

SECTIONS = ("plan", "funnel", "labels", "mixture", "curriculum", "loss", "rl", "evals", "contamination")


def build_html(run_dir: Path) -> str:
    from qwen3_recipe.report import sections_data as data
    from qwen3_recipe.report import sections_labels as labels
    from qwen3_recipe.report import sections_train as train
    from qwen3_recipe.report.page import render
    from qwen3_recipe.report.queries import Db
    from qwen3_recipe.report.rundata import load_run

    run_dir = Path(run_dir)
    run = load_run(run_dir)
    with Db(run_dir) as db:
        builders = {"plan": lambda: data.plan_section(run), "funnel": lambda: data.funnel_section(run, db),
                    "labels": lambda: labels.labels_section(run, db),
                    "mixture": lambda: data.mixture_section(run, db),
                    "curriculum": lambda: data.curriculum_section(run),
                    "loss": lambda: train.loss_section(run), "rl": lambda: train.rl_section(run, db),
                    "evals": lambda: train.eval_section(run, db),
                    "contamination": lambda: data.contamination_section(run, db)}
        sections = [_built(sid, builders[sid]) for sid in SECTIONS]
        note = db.note
    return render({"run": run, "sections": sections, "db_note": note,
                   "generated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")})


def _built(sid: str, build):
    """A section, or - should something in a half-written run trip it - the section saying so:
    one bad file never costs the rest of the page."""
    from qwen3_recipe.report.page import Section
    try:
        return build()
    except Exception as exc:  # noqa: BLE001 - reported on the page and on stderr
        print(f"warning: report section '{sid}' failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        section = Section(sid)
        section.empty = f"this section could not be built: {type(exc).__name__}: {exc}"
        return section


def write_report(run_dir: Path, output: Path | None = None) -> Path:
    """Write the page (default RUN_DIR/report.html) atomically; returns its path."""
    run_dir = Path(run_dir)
    target = Path(output) if output else run_dir / "report.html"
    html = build_html(run_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(target)
    return target
