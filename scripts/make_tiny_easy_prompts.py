#!/usr/bin/env python3
"""Write datasets_spec/data/tiny_prompts_easy.jsonl: every one-digit sum and difference (155 prompts,
gold answers), shuffled with a fixed seed. The shipped tiny teacher answers about half of them right,
which is what RL needs: groups with both right and wrong samples.

Usage: python scripts/make_tiny_easy_prompts.py
"""
import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "datasets_spec" / "data" / "tiny_prompts_easy.jsonl"


def main() -> None:
    items = [(f"What is {a} + {b}?", a + b) for a in range(10) for b in range(10)]
    items += [(f"What is {a} - {b}?", a - b) for a in range(10) for b in range(a + 1)]
    random.Random(7).shuffle(items)
    OUT.write_text("".join(json.dumps({"id": f"easy-{i:04d}", "prompt": p, "answer": str(ans)}) + "\n"
                           for i, (p, ans) in enumerate(items)))
    print(f"wrote {len(items)} prompts to {OUT}")


if __name__ == "__main__":
    main()
