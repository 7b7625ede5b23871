"""`--only`: pick jobs by group, job name or stage name; upstream jobs not yet done come along."""

from __future__ import annotations

from qwen3_recipe.compiler.graph import ancestors
from qwen3_recipe.compiler.jobs import GROUPS
from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.errors import Loc, Problem, RecipeError, did_you_mean


def select(plan: Plan, only: str | None) -> list[PlannedJob]:
    """Jobs to run, in dependency order: the selection plus its not-cached ancestors."""
    if not only:
        return list(plan.jobs)
    names = {p.job.name for p in plan.jobs}
    short = {p.job.name.split(".", 1)[-1]: p.job.name for p in plan.jobs}
    chosen: set[str] = set()
    problems = []
    for word in (w.strip() for w in only.split(",") if w.strip()):
        if word in GROUPS:
            chosen |= {p.job.name for p in plan.jobs if word in p.job.groups}
        elif word in names:
            chosen.add(word)
        elif word in short:
            chosen.add(short[word])
        else:
            problems.append(Problem(f"unknown job, stage or group '{word}'", "--only", Loc("--only"),
                                    did_you_mean(word, [*GROUPS, *names, *short])))
    if problems:
        raise RecipeError(problems)
    upstream = ancestors(plan.deps, chosen)
    return [p for p in plan.jobs
            if p.job.name in chosen or (p.job.name in upstream and p.status != "cached")]
