"""A per-user cache of plan views, so re-planning an unchanged recipe skips validation.

Like dbt's partial parsing: an entry records every file the plan read (recipe chain, catalog
files and folders, local data files, the package's own code) by size and mtime, and is used only
while all of them are unchanged. Job statuses are always recomputed from the run directory.
Set QWEN3_RECIPE_NO_CACHE=1 to bypass it; QWEN3_RECIPE_CACHE to move it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from qwen3_recipe.compiler import user_cache
from qwen3_recipe.compiler.plan_view import refresh_status

PACKAGE_DIR = Path(__file__).resolve().parents[1]
FORMAT = 1


enabled = user_cache.enabled


def cache_dir() -> Path:
    return user_cache.folder(user_cache.PLANS)


def _stamp(path: Path) -> list[Any]:
    try:
        st = path.stat()
        return [str(path), st.st_size, st.st_mtime_ns]
    except OSError:
        return [str(path), None, None]


def _code_stamps() -> list[list[Any]]:
    return [_stamp(p) for p in sorted(PACKAGE_DIR.rglob("*.py"))]


def _entry_path(recipe: Path, overrides: list[str], run_dir: str | None) -> Path:
    key = json.dumps([FORMAT, str(Path(recipe).resolve()), overrides, run_dir, os.getcwd()])
    return cache_dir() / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")


def lookup(recipe: Path, overrides: list[str], run_dir: str | None) -> dict[str, Any] | None:
    if not enabled():
        return None
    try:
        entry = json.loads(_entry_path(recipe, overrides, run_dir).read_text())
    except (OSError, ValueError):
        return None
    if entry.get("code") != _code_stamps():
        return None
    if any(_stamp(Path(p)) != [p, size, mtime] for p, size, mtime in entry["inputs"]):
        return None
    if any(sorted(str(f) for f in Path(d).glob("*.yaml")) != files for d, files in entry["folders"].items()):
        return None  # a catalog file was added or removed
    return refresh_status(entry["view"])


def store(plan, view: dict[str, Any], run_dir: str | None) -> None:
    if not enabled():
        return
    loaded = plan.loaded
    cat = loaded.catalogs
    folders = {str(d): sorted(str(f) for f in d.glob("*.yaml")) for d in (cat.datasets_dir, cat.evals_dir) if d}
    inputs = [str(p) for p in loaded.raw.files]
    inputs += [f for files in folders.values() for f in files]
    for entry in [*cat.datasets.values(), *cat.evals.values()]:
        local = entry.local_path()
        if local is not None:
            inputs.append(str(local))
    record = {"code": _code_stamps(), "inputs": [_stamp(Path(p)) for p in inputs], "folders": folders,
              "view": view}
    path = _entry_path(loaded.raw.path, loaded.raw.overrides, run_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(path)
    except OSError:
        pass  # a read-only home is no reason to fail a plan
