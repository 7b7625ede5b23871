#!/usr/bin/env python3
"""Write evals/data/tiny_compose.jsonl: two-digit sums and differences without carry or borrow
("What is 23 + 14?"), none of whose problems the tiny recipe trains on (issue 18.3).

evals/tiny_sums asks one-digit facts the demo trains on in other phrasings: it measures whether the
model answers a trained fact asked differently. This benchmark measures composition: each item's
worked steps (3 + 4 = 7, 2 + 1 = 3, so 23 + 14 = 37) are one-digit facts the post-training drills,
but no training text holds the problem. An item is kept only if no training unit mentions both of
its operands, where a unit is a prompt or a `Question:` block of a document with all its worked
steps (a document without questions is one unit), in every catalog file recipes/tiny.yaml trains on
(pretraining sources, synth and RL prompts; the synth traces answer those prompts).
tests/test_eval_overlap.py checks the same independently.

Usage: python scripts/make_tiny_compose.py
"""
from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "evals" / "data" / "tiny_compose.jsonl"
NUMBER = re.compile(r"\d+")  # every digit run: 0.74 holds 74, conservatively
PER_OP = 50


def training_files(recipe: Path = ROOT / "recipes" / "tiny.yaml") -> list[Path]:
    """The catalog files the recipe trains on: data sources, synth jobs' and RL stages' prompts."""
    from qwen3_recipe.recipe.validate import load_recipe
    loaded = load_recipe(recipe)
    r = loaded.recipe
    names = [s.dataset for s in r.data.sources.values() if s.dataset]  # a synth source: its prompts, below
    names += [job.prompts for job in r.synth.jobs.values() if isinstance(job.prompts, str)]
    names += [getattr(st, "prompts", None) for st in r.posttrain.stages.values()]
    files = []
    for name in dict.fromkeys(n for n in names if n):
        files.append(loaded.catalogs.datasets[name].local_path())
    return files


def units(files: list[Path]):
    """Every string field of every row, a document cut into its `Question:` blocks (a question with
    all its worked steps; a document without one is one unit)."""
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            for key, value in json.loads(line).items():
                if key != "id" and isinstance(value, str):
                    yield from re.split(r"(?=Question:)", value)


def candidates() -> list[tuple[int, str, int]]:
    sums = [(a, "+", b) for a in range(10, 100) for b in range(10, 100)
            if a % 10 + b % 10 <= 9 and a // 10 + b // 10 <= 9]
    return sums + [(a, "-", b) for a in range(10, 100) for b in range(10, a) if a % 10 >= b % 10]


def main() -> None:
    files = training_files()
    seen = [set(map(int, NUMBER.findall(u))) for u in units(files)]
    kept = [c for c in candidates() if not any(c[0] in s and c[2] in s for s in seen)]
    rng = random.Random(17)
    items = []
    for op in "+-":
        pool = [c for c in kept if c[1] == op]
        items += rng.sample(pool, min(PER_OP, len(pool)))
    rng.shuffle(items)
    OUT.write_text("".join(json.dumps({"id": f"tiny_compose-{i:03d}", "question": f"What is {a} {op} {b}?",
                                       "answer": str(a + b if op == "+" else a - b)}) + "\n"
                           for i, (a, op, b) in enumerate(items)))
    print(f"scanned {len(files)} training files ({', '.join(f.name for f in files)}); "
          f"{len(kept)} of {len(candidates())} problems share no unit with them; wrote {len(items)} to {OUT}")


if __name__ == "__main__":
    main()
