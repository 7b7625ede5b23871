#!/usr/bin/env python3
"""Build the demo's planted-quality corpus and an annotator that can judge it (issue 17.5).

  datasets_spec/data/tiny_worked.jsonl  documents of two or three arithmetic problems, each document at
      one planted level (its `quality` field, the truth the demo measures the labels against):
        2  worked: every step shown and right, the right answer
        1  answers only: the question and its right answer, no steps
        0  garbled: the steps' words shuffled, a wrong answer
  tests/assets/tiny-annotator/  the tiny teacher fine-tuned as a judge of recipes/tiny.yaml's `worked`
      rubric: given the rubric rendered with a document (the Qwen3 chat template, no_think, exactly as
      `quality.annotate` renders it), it answers "Score: \\boxed{N}.".

The annotator never sees a corpus document: its training documents come from another seed, and any
whose question is in the corpus is skipped. Its accuracy on fresh held-out documents is printed per
level; the demo measures the corpus itself (its labels against the planted `quality` field, in SQL).
Problems share no triple with evals/data/tiny_arith.jsonl (make_tiny_data.py's sampler).

Usage: OMP_NUM_THREADS=1 python scripts/make_tiny_annotator.py [--steps 300] [--docs 600]
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))
import make_tiny_teacher  # noqa: E402
from make_tiny_teacher import BOXED, data_module, train  # noqa: E402

TEACHER = ROOT / "tests" / "assets" / "tiny-teacher"
ANSWER = "The answer is \\boxed{%d}."
LEVELS = (0, 1, 2)


def problem_text(q: str, lines: list[str], ans: int, level: int, rng: random.Random) -> str:
    if level == 2:
        return f"Question: {q}\n<think>\n" + "\n".join(lines) + f"\n</think>\n{ANSWER % ans}"
    if level == 1:
        return f"Question: {q}\n{ANSWER % ans}"
    garbled = []
    for line in lines:
        words = line.split()
        rng.shuffle(words)
        garbled.append(" ".join(words))
    return f"Question: {q}\n<think>\n" + "\n".join(garbled) + f"\n</think>\n{ANSWER % (ans + rng.randint(1, 9))}"


def balanced(rng: random.Random, n: int) -> list[int]:
    levels = [LEVELS[i % 3] for i in range(n)]
    rng.shuffle(levels)
    return levels


def documents(rng: random.Random, problems, levels: list[int], skip: set[str] = frozenset()) -> list[dict]:
    """A document per level; questions in skip are not used."""
    docs = []
    for level in levels:
        parts, questions, size = [], [], rng.randint(2, 3)
        while len(parts) < size:
            q, lines, ans = next(problems)
            if q not in skip:
                parts.append(problem_text(q, lines, ans, level, rng))
                questions.append(q)
        docs.append({"text": "\n\n".join(parts), "quality": level, "questions": questions})
    return docs


def rubric_settings() -> tuple[str, dict, int]:
    quality = yaml.safe_load((ROOT / "recipes" / "tiny.yaml").read_text())["data"]["quality"]
    dim = quality["dimensions"]["worked"]
    return dim["rubric"], dim, quality.get("max_chars", 4000)


def prompt_ids(tok, compiled, dim: dict, text: str, max_chars: int) -> list[int]:
    from qwen3_recipe.quality.rubric import render
    content = render(compiled, text, "worked", "worked", dim, max_chars)
    chat = tok.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                   add_generation_prompt=True, enable_thinking=False)
    return tok.encode(chat, add_special_tokens=False)


class Judgements:
    """(input_ids, prompt length) of rubric prompts and their scores, from a seeded document stream."""

    def __init__(self, tok, compiled, dim, max_chars, problems, skip, seed):
        self.tok, self.compiled, self.dim, self.max_chars = tok, compiled, dim, max_chars
        self.problems, self.skip, self.rng = problems, skip, random.Random(seed)
        self.im_end = tok.convert_tokens_to_ids("<|im_end|>")

    def __next__(self):
        doc = documents(self.rng, self.problems, [self.rng.choice(LEVELS)], self.skip)[0]
        prompt = prompt_ids(self.tok, self.compiled, self.dim, doc["text"], self.max_chars)
        completion = self.tok.encode("Score: \\boxed{%d}." % doc["quality"], add_special_tokens=False)
        return prompt + completion + [self.im_end], len(prompt)


@torch.no_grad()
def accuracy(model, tok, compiled, dim, max_chars, docs) -> dict[int, float]:
    tok.padding_side, hits = "left", {lv: [] for lv in LEVELS}
    model.eval()
    for i in range(0, len(docs), 32):
        chunk = docs[i:i + 32]
        rows = [prompt_ids(tok, compiled, dim, d["text"], max_chars) for d in chunk]
        width = max(map(len, rows))
        x = torch.tensor([[tok.pad_token_id] * (width - len(r)) + r for r in rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        out = model.generate(input_ids=x, attention_mask=mask, max_new_tokens=12, do_sample=False,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"))
        for d, row in zip(chunk, out[:, width:]):
            found = BOXED.findall(tok.decode(row, skip_special_tokens=True))
            hits[d["quality"]].append(bool(found) and int(found[-1]) == d["quality"])
    return {lv: sum(h) / len(h) for lv, h in hits.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "assets" / "tiny-annotator")
    ap.add_argument("--corpus", type=Path, default=ROOT / "datasets_spec" / "data" / "tiny_worked.jsonl")
    ap.add_argument("--docs", type=int, default=600, help="corpus documents")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--tokens-per-batch", type=int, default=4096)
    ap.add_argument("--lr", type=float, default=1e-3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    def log(s: str) -> None:
        print(s, flush=True)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qwen3_recipe.quality.rubric import compile_rubric
    mod = data_module()
    _, banned = mod.make_eval(random.Random(1234))
    rng = random.Random(21)
    corpus = documents(rng, mod.sampler(random.Random(210), banned, set()), balanced(rng, args.docs))
    rows = [{"id": f"worked-{i + 1:06d}", "text": d["text"], "quality": d["quality"]} for i, d in enumerate(corpus)]
    args.corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    log(f"wrote {args.corpus.relative_to(ROOT)}: {len(rows)} documents, levels "
        + ", ".join(f"{lv}: {sum(r['quality'] == lv for r in rows)}" for lv in LEVELS))

    skip = {q for d in corpus for q in d["questions"]}
    rubric, dim, max_chars = rubric_settings()
    compiled = compile_rubric(rubric)
    tok = AutoTokenizer.from_pretrained(str(TEACHER))
    model = AutoModelForCausalLM.from_pretrained(str(TEACHER), dtype=torch.float32)
    judgements = Judgements(tok, compiled, dim, max_chars, mod.sampler(random.Random(220), banned, set()), skip, 5)
    make_tiny_teacher.SEQ_CAP = 800  # a rubric prompt with a document cut at max_chars: all of them
    train(model, judgements, tok.pad_token_id, args.steps, args.tokens_per_batch, args.lr, log)
    rng = random.Random(23)
    held = documents(rng, mod.sampler(random.Random(230), banned, set()), balanced(rng, 150), skip)
    acc = accuracy(model, tok, compiled, dim, max_chars, held)
    log("held-out accuracy (greedy): " + ", ".join(f"level {lv} {a:.1%}" for lv, a in acc.items()))

    tmp = args.out.with_name(args.out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.to(torch.bfloat16).save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    for f in tmp.iterdir():
        f.chmod(0o644)  # safetensors writes 0600
    shutil.rmtree(args.out, ignore_errors=True)
    tmp.rename(args.out)
    log(f"saved {args.out}")


if __name__ == "__main__":
    main()
