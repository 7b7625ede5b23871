"""Which recipe line set each value `compile --diff` reports. The two runs' resolved recipes
(recipe.lock.yaml) give the fields that differ; each is put back, alone, to the other run's value
and the plan lowered again: the values that change with it are its doing. A value no single field
explains came from several together, from an input file, or from another version of the code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from qwen3_recipe.compiler.diff import changes
from qwen3_recipe.compiler.lowerers import lowerer_for
from qwen3_recipe.compiler.plan import Plan, make_plan

KeyPath = tuple[str | int, ...]


def resolved(run: Path) -> dict[str, Any] | None:
    try:
        return yaml.safe_load((run / "recipe.lock.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None


MISSING = object()  # a key one side does not have (unlike a null value)


def leaf_changes(old: Any, new: Any, path: KeyPath = ()) -> list[tuple[KeyPath, Any, Any]]:
    """As diff.changes, with key tuples (list items of mappings by index); MISSING for a key one
    side lacks."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [c for k in sorted(set(old) | set(new), key=str)
                for c in leaf_changes(old.get(k, MISSING), new.get(k, MISSING), path + (k,))]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new) \
            and all(isinstance(v, dict) for v in old + new):
        return [c for i, (a, b) in enumerate(zip(old, new)) for c in leaf_changes(a, b, path + (i,))]
    return [] if old == new else [(path, old, new)]


def where(plan: Plan, path: KeyPath) -> str:
    """The recipe line of `path` (file:line:col, or `--set`); 'default' when no file sets it."""
    smap = plan.loaded.raw.smap
    loc = smap.values.get(path) or smap.keys.get(path)
    return str(loc) if loc else "default"


def lowered_all(plan: Plan) -> dict[str, Any]:
    out = {}
    for p in plan.jobs:
        lower = lowerer_for(p.job.kind)
        out[p.job.name] = lower(p, plan) if lower else None
    return out


def _override(path: KeyPath, value: Any) -> str:
    return ".".join(map(str, path)) + "=" + json.dumps(value)


def _with(data: dict, path: KeyPath, value: Any) -> dict:
    """The mapping holding `path`, as resolved, with `value` at its leaf."""
    parent: Any = data
    for key in path[:-1]:
        parent = parent[key]
    return {**parent, path[-1]: value}


def reverted(plan: Plan, new_data: dict, path: KeyPath, old_value: Any) -> dict[str, Any] | None:
    """Every job's lowered artifact with the one field back at its old value (MISSING: removed, as
    `key=null` does); None: not plannable alone."""
    base = list(plan.loaded.raw.overrides)
    value = None if old_value is MISSING else old_value
    tries = [[_override(path, value)]]
    if len(path) > 1 and old_value is not MISSING:  # a shorthand in the file (a scalar where the schema
        tries.append([_override(path[:-1], _with(new_data, path, value))])  # has a mapping): set the parent
    for sets in tries:
        try:
            return lowered_all(make_plan(_load(plan, base + sets), plan.run_dir))
        except Exception:  # noqa: BLE001 - a field that cannot be put back alone explains nothing by itself
            continue
    return None


def _load(plan: Plan, overrides: list[str]):
    from qwen3_recipe.recipe.validate import load_recipe
    return load_recipe(plan.loaded.path, overrides)


def _shown(value: Any) -> str:
    return "(absent)" if value is MISSING else json.dumps(value)


def explain(plan: Plan, old_run: Path) -> tuple[list[str], dict[tuple[str, str], list[str]]]:
    """(lines: each recipe field that differs from old_run, with its line; {(job, value path):
    [recipe fields that set it]})."""
    old_data = resolved(old_run)
    new_data = plan.loaded.recipe.model_dump(mode="json", exclude={"extends"})
    if old_data is None:
        return [f"{old_run}: no recipe.lock.yaml to compare recipes with"], {}
    lines, setters = [], {}
    base = None
    for path, old, new in leaf_changes(old_data, new_data):
        field = ".".join(map(str, path))
        lines.append(f"recipe {field}: {_shown(old)} -> {_shown(new)}  ({where(plan, path)})")
        base = base if base is not None else lowered_all(plan)
        other = reverted(plan, new_data, path, old)
        if other is None:
            continue
        for job, artifact in base.items():
            if artifact is not None and job in other and other[job] is not None:
                for value_path, _, _ in changes(other[job], artifact):
                    setters.setdefault((job, value_path), []).append(f"{field} at {where(plan, path)}")
    return lines, setters
