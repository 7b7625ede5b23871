"""Benchmark results kept on disk, so the README's tables are printed from what the scripts measured
(benchmarks/table.py), never typed by hand.

A script run with `--record` writes results/<row>.json: its JSON result, the command that printed it, the
date, the commit of the code that measured it, and the machine's load average before and after (the
2-core machine is shared; a loaded run says so).
"""

from __future__ import annotations

import datetime
import json
import os
import shlex
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def spread(values, digits: int = 3) -> dict:
    """Median, min and max of repeated measurements (and how many)."""
    values = list(values)
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits), "n": len(values)}


def commit() -> str | None:
    """The commit the measuring code is at (`-dirty` when the benchmarks or the package differ from it)."""
    import subprocess
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "benchmarks/*.py", "qwen3_recipe"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("-dirty" if dirty else "")


def command() -> str:
    """This process's command line as a user would type it from the repository root."""
    env = " ".join(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "TOKENIZERS_PARALLELISM") if k in os.environ)
    args = [a for a in sys.argv[1:] if a != "--record"]
    script = Path(sys.argv[0]).resolve().relative_to(REPO).as_posix()
    return " ".join(filter(None, [env, ".venv/bin/python", script, shlex.join(args)]))


class Recorder:
    """Started before the work (load before), `save`d after it."""

    def __init__(self, row: str, enabled: bool):
        self.row, self.enabled = row, enabled
        self.load_before = os.getloadavg()[0]

    def save(self, result: dict) -> Path | None:
        if not self.enabled:
            return None
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{self.row}.json"
        path.write_text(json.dumps({
            "row": self.row, "command": command(), "date": datetime.date.today().isoformat(), "commit": commit(),
            "load_1min": {"before": round(self.load_before, 2), "after": round(os.getloadavg()[0], 2)},
            "cpus": os.cpu_count(), "result": result}, indent=1, ensure_ascii=False) + "\n")
        print(f"recorded {path}", file=sys.stderr)
        return path


def load(row: str) -> dict | None:
    path = RESULTS / f"{row}.json"
    return json.loads(path.read_text()) if path.is_file() else None
