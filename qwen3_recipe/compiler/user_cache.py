"""Where the per-user caches live: <XDG_CACHE_HOME or ~/.cache>/qwen3-recipe/<name>/.

QWEN3_RECIPE_NO_CACHE=1 turns every one of them off. QWEN3_RECIPE_CACHE moves them: the plan cache's
entries go straight into that folder (as they always have), the other caches into subfolders of it.
"""

from __future__ import annotations

import os
from pathlib import Path

PLANS = "plans"


def enabled() -> bool:
    return os.environ.get("QWEN3_RECIPE_NO_CACHE", "") in ("", "0")


def folder(name: str) -> Path:
    moved = os.environ.get("QWEN3_RECIPE_CACHE")
    if moved:
        return Path(moved) if name == PLANS else Path(moved) / name
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "qwen3-recipe" / name
