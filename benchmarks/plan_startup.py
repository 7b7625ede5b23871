"""Cold-process `plan` of the full qwen3 recipe vs `python -c "import pydantic, yaml"`.

Target (issue 2): median ratio <= 2x. Two cases: re-planning an unchanged recipe (the plan cache
answers: the common case of `plan` after `plan`, or after a `run`), and the first plan after an
edit (QWEN3_RECIPE_NO_CACHE=1: full validation with pydantic).
Run: .venv/bin/python benchmarks/plan_startup.py [--runs N] [--record]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from record import Recorder, spread  # noqa: E402

BASELINE = [sys.executable, "-c", "import pydantic, yaml"]
PLAN = [sys.executable, "-m", "qwen3_recipe.cli", "plan", "recipes/qwen3.yaml"]


def seconds(cmd: list[str], **env: str) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL, env={**os.environ, **env})
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--record", action="store_true", help="write results/plan.json (benchmarks/table.py)")
    args = parser.parse_args()
    recorder = Recorder("plan", args.record)
    for _ in range(2):
        seconds(PLAN)  # warm the OS file cache and __pycache__
    times = {"baseline": [], "cached": [], "uncached": []}
    sides = [("baseline", lambda: seconds(BASELINE)), ("cached", lambda: seconds(PLAN)),
             ("uncached", lambda: seconds(PLAN, QWEN3_RECIPE_NO_CACHE="1"))]
    for r in range(args.runs):  # the three alternate, the order rotating: a busy moment hits all of them
        for name, side in sides[r % 3:] + sides[:r % 3]:
            times[name].append(side())
    result = {"runs": args.runs, "target_ratio": 2.0, **{f"{k}_s": spread(v, 4) for k, v in times.items()},
              "ratio_cached": spread((c / b for b, c in zip(times["baseline"], times["cached"])), 2),
              "ratio_uncached": spread((u / b for b, u in zip(times["baseline"], times["uncached"])), 2)}
    print(json.dumps(result))
    recorder.save(result)


if __name__ == "__main__":
    main()
