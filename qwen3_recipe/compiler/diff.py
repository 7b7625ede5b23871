"""`compile --diff OTHER_RUN_DIR`: what the engines will be told differently from another compiled
run, value by value (each job's lowered.json), the way `dbt compile` output is diffed. Jobs whose
kind has no lowered artifact yet are compared by their config (job.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _artifact(folder: Path) -> tuple[str, Any] | None:
    for name, key in (("lowered.json", "lowered"), ("job.json", "config")):
        try:
            return name, json.loads((folder / name).read_text())[key]
        except (OSError, ValueError, KeyError):
            continue
    return None


def changes(old: Any, new: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted path, old, new) of every leaf that differs."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [c for k in sorted(set(old) | set(new), key=str)
                for c in changes(old.get(k), new.get(k), f"{path}.{k}" if path else str(k))]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [c for i, (a, b) in enumerate(zip(old, new)) for c in changes(a, b, f"{path}[{i}]")]
    return [] if old == new else [(path, old, new)]


def _within(inner: str, outer: str) -> bool:
    return inner == outer or inner.startswith((outer + ".", outer + "["))


def setters_of(setters: dict[tuple[str, str], list[str]], job: str, path: str) -> list[str]:
    """The recipe fields that set `path` of `job`'s artifact, matched by prefix either way (a value
    one diff reports whole, the other leaf by leaf)."""
    if (job, path) in setters:
        return setters[(job, path)]
    found = [by for (j, p), fields in setters.items() if j == job and (_within(p, path) or _within(path, p))
             for by in fields]
    return list(dict.fromkeys(found))


def diff_run_dirs(new_run: Path, old_run: Path, setters: dict[tuple[str, str], list[str]] | None = None) -> list[str]:
    """Lines: per job, each changed value (paths inside either run directory are written relative),
    with the recipe fields that set it when `setters` (compiler/explain.py) knows them."""
    def norm(value: Any, run: Path) -> Any:
        text = json.dumps(value)
        return json.loads(text.replace(json.dumps(str(run.resolve()))[1:-1], "<run>"))

    lines = []
    jobs = sorted({p.name for run in (new_run, old_run) for p in (run / "jobs").glob("*") if p.is_dir()})
    for job in jobs:
        a, b = _artifact(old_run / "jobs" / job), _artifact(new_run / "jobs" / job)
        if a is None or b is None:
            lines.append(f"{job}: {'added' if a is None else 'removed'}")
            continue
        found = changes(norm(a[1], old_run), norm(b[1], new_run))
        for path, x, y in found:
            by = setters_of(setters or {}, job, path)
            lines.append(f"{job} ({b[0]}) {path}: {json.dumps(x)} -> {json.dumps(y)}"
                         + (f"  [set by {'; '.join(by)}]" if by else ""))
    return lines
