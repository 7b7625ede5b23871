#!/usr/bin/env python3
"""Write the one-digit arithmetic the tiny recipe post-trains and evaluates on:

* datasets_spec/data/tiny_prompts_easy.jsonl: every one-digit sum and difference (155 prompts, gold
  answers) phrased "What is a + b?" / "What is a - b?", shuffled with a fixed seed. The shipped tiny
  teacher answers about half of them right, which is what RL needs: groups with right and wrong samples.
* evals/data/tiny_sums.jsonl: the same 155 facts, each asked in one of three phrasings ("Compute a + b.",
  "What is the sum of a and b?", "What is a plus b?", and the same for "-"), drawn per fact; the drills
  ask that fact in the other three phrasings, and other facts in this one. So every item is a trained
  fact whose question text no training prompt holds: the benchmark measures answering a trained fact
  asked another way, not a new problem (evals/tiny_compose does that; tests/test_eval_overlap.py checks
  both). The tiny models answer it from a worked step in thinking mode and mostly fail without one,
  which is what the thinking-budget sweep needs.

Usage: python scripts/make_tiny_easy_prompts.py
"""
import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT / "datasets_spec" / "data" / "tiny_prompts_easy.jsonl"
DRILLS = ROOT / "datasets_spec" / "data" / "tiny_drills.jsonl"
BENCHMARK = ROOT / "evals" / "data" / "tiny_sums.jsonl"
PHRASINGS = {"+": ["Compute {a} + {b}.", "What is the sum of {a} and {b}?", "What is {a} plus {b}?"],
             "-": ["Compute {a} - {b}.", "What is the difference of {a} and {b}?", "What is {a} minus {b}?"]}


def facts() -> list[tuple[int, str, int, int]]:
    sums = [(a, "+", b, a + b) for a in range(10) for b in range(10)]
    return sums + [(a, "-", b, a - b) for a in range(10) for b in range(a + 1)]


def write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} rows to {path}")


def main() -> None:
    items = [(f"What is {a} {op} {b}?", ans) for a, op, b, ans in facts()]
    random.Random(7).shuffle(items)
    write(PROMPTS, [{"id": f"easy-{i:04d}", "prompt": p, "answer": str(ans)} for i, (p, ans) in enumerate(items)])
    rng, bench, drills = random.Random(11), facts(), []
    rng.shuffle(bench)
    held_out = [rng.randrange(3) for _ in bench]
    write(BENCHMARK, [{"id": f"tiny_sums-{i:03d}", "question": PHRASINGS[op][k].format(a=a, b=b), "answer": str(ans)}
                      for i, ((a, op, b, ans), k) in enumerate(zip(bench, held_out))])
    for (a, op, b, ans), k in zip(bench, held_out):
        drills += [(f"What is {a} {op} {b}?", ans)] + [(q.format(a=a, b=b), ans) for j, q in enumerate(PHRASINGS[op]) if j != k]
    random.Random(13).shuffle(drills)
    write(DRILLS, [{"id": f"drill-{i:04d}", "prompt": p, "answer": str(ans)} for i, (p, ans) in enumerate(drills)])


if __name__ == "__main__":
    main()
