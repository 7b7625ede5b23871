"""Cold-process `plan` of the full qwen3 recipe vs `python -c "import pydantic, yaml"`.

Target (issue 2): median ratio <= 2x. Two cases: re-planning an unchanged recipe (the plan cache
answers: the common case of `plan` after `plan`, or after a `run`), and the first plan after an
edit (QWEN3_RECIPE_NO_CACHE=1: full validation with pydantic).
Run: .venv/bin/python benchmarks/plan_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASELINE = [sys.executable, "-c", "import pydantic, yaml"]
PLAN = [sys.executable, "-m", "qwen3_recipe.cli", "plan", "recipes/qwen3.yaml"]


def median_seconds(cmd: list[str], runs: int, **env: str) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL, env={**os.environ, **env})
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    median_seconds(PLAN, 2)  # warm the OS file cache and __pycache__
    base = median_seconds(BASELINE, args.runs)
    cached = median_seconds(PLAN, args.runs)
    uncached = median_seconds(PLAN, args.runs, QWEN3_RECIPE_NO_CACHE="1")
    result = {"baseline_s": round(base, 4), "plan_cached_s": round(cached, 4),
              "plan_uncached_s": round(uncached, 4), "ratio_cached": round(cached / base, 2),
              "ratio_uncached": round(uncached / base, 2), "target_ratio": 2.0, "runs": args.runs}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
