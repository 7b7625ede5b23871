#!/usr/bin/env python3
"""Build tests/assets/tiny-teacher/: a ~1M-parameter Qwen3 that answers arithmetic in Qwen3's chat format.

  think:    <think>\\n...worked steps...\\n</think>\\n\\nThe answer is \\boxed{N}.<|im_end|>
  no_think: <think>\\n\\n</think>\\n\\nThe answer is \\boxed{N}.<|im_end|>

Deterministic (fixed seeds, one thread).  Steps: a byte-level BPE with Qwen3's added tokens and chat
template (qwen3_recipe.tokenizer.qwen3) trained on the shipped arithmetic data; problems from
scripts/make_tiny_data.py's generator (its templates are those of tiny_prompts.jsonl; no triple of the
held-out evals/data/tiny_arith.jsonl); each rendered with the official chat template in both modes
(enable_thinking true/false, /think and /no_think flags, last flag wins, some two-turn chats) plus
think samples cut short by the Qwen3 report's early-stop sentence (what a thinking budget produces);
a transformers Qwen3ForCausalLM trained on the assistant tokens, saved with save_pretrained; accuracy
on the held-out items printed per mode.  Right answers are frequent, not certain: that is the point.

Usage: OMP_NUM_THREADS=1 python scripts/make_tiny_teacher.py [--out DIR] [--steps 1500] [--eval N]
       OMP_NUM_THREADS=1 python scripts/make_tiny_teacher.py --evaluate-only [--out DIR]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import random
import re
import shutil
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from qwen3_recipe.tokenizer.qwen3 import save_tokenizer, train_bpe

EARLY_STOP = ("Considering the limited time by the user, I have to give the solution based on the "
              "thinking directly now.\n</think>.\n\n")  # Qwen3 report, section 4.3
VOCAB, MAX_LEN, SEQ_CAP = 1024, 1024, 400
ARCH = dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, head_dim=32, rope_theta=10_000.0, rms_norm_eps=1e-6,
            max_position_embeddings=MAX_LEN, tie_word_embeddings=True)
EASY = 0.85  # share of single-turn samples from Samples.easy (the rest: the shipped data's mix)
ANSWER = "The answer is \\boxed{%d}."
BOXED = re.compile(r"\\boxed\{(-?\d+)\}")


def data_module():
    spec = importlib.util.spec_from_file_location("make_tiny_data", ROOT / "scripts" / "make_tiny_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def make_tokenizer(out: Path):
    data = ROOT / "datasets_spec" / "data"
    texts = [d["text"] for d in read_jsonl(data / "tiny_math.jsonl")]
    texts += [d["prompt"] for d in read_jsonl(data / "tiny_prompts.jsonl")]
    for chat in read_jsonl(data / "tiny_chat.jsonl"):
        texts += [m["content"] for m in chat["messages"]] + [m.get("reasoning_content", "") for m in chat["messages"]]
    texts += [EARLY_STOP] * 50  # so the early-stop sentence is a handful of tokens
    save_tokenizer(train_bpe(texts, VOCAB), out, MAX_LEN)
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(out))


class Samples:
    """(input_ids, number of prompt tokens) pairs, generated on demand from a seeded stream."""

    def __init__(self, tok, mod, seed: int):
        self.tok, self.mod, self.rng = tok, mod, random.Random(seed)
        _, self.banned = mod.make_eval(random.Random(1234))
        self.problems = mod.sampler(random.Random(seed + 1), self.banned, set())  # 30% hard
        self.chats = read_jsonl(ROOT / "datasets_spec" / "data" / "tiny_chat.jsonl")
        self.im_end = tok.convert_tokens_to_ids("<|im_end|>")

    def ids(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False)

    def render(self, messages, enable_thinking: bool) -> list[int]:
        return self.tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
                                            enable_thinking=enable_thinking, return_dict=False)

    def turn(self, history, q, lines, ans, flag):
        """Prompt and completion ids for user turn q (with flag) after history, mode from the last flag."""
        user = {"role": "user", "content": q + (f" /{flag}" if flag else "")}
        flags = [m for u in history + [user] if u["role"] == "user"
                 for m in re.findall(r"/(no_think|think)\b", u["content"])]
        think = (flags[-1] if flags else "think") == "think"
        messages, rng = history + [user], self.rng
        if think:
            prompt = self.render(messages, True)
            if rng.random() < 0.05:  # cut by a thinking budget: the early-stop sentence, then the answer
                body = self.ids("<think>\n" + "\n".join(lines))
                body = body[:1 + rng.randint(0, len(body) - 1)]
                return prompt, body + self.ids(EARLY_STOP) + self.ids(ANSWER % ans) + [self.im_end]
            completion = "<think>\n" + "\n".join(lines) + "\n</think>\n\n" + ANSWER % ans
        elif rng.random() < 0.5:
            prompt, completion = self.render(messages, False), ANSWER % ans
        else:
            prompt, completion = self.render(messages, True), "<think>\n\n</think>\n\n" + ANSWER % ans
        return prompt, self.ids(completion) + [self.im_end]

    def easy(self):
        """One operation on one- or two-digit numbers (× by one digit), single digits the most often:
        most of what the teacher sees, so that it gets small problems right fairly often."""
        mod, rng = self.mod, self.rng
        while True:
            op = rng.choice("+-×")
            digits = rng.choices([(1, 1), (2, 1), (1, 2), (2, 2)], [10, 4, 2, 4] if op != "×" else [1, 1, 0, 0])[0]
            a, b = (mod.number(rng, d) for d in digits)
            a, b = (max(a, b), min(a, b)) if op == "-" else (a, b)
            if mod.key(a, op, b) not in self.banned:
                lines, ans, _ = mod.solve(a, [(op, b)])
                return rng.choice(mod.Q1[op]).format(a=a, b=b), lines, ans

    def follow_up(self, ans):
        op, c = self.rng.choice([("+", self.rng.randint(10, 99)), ("×", self.rng.randint(2, 9)),
                                 ("-", self.rng.randint(10, 99))])
        if {"+": True, "-": c <= ans, "×": ans < 1000}[op] and self.mod.key(ans, op, c) not in self.banned:
            lines, new, _ = self.mod.solve(ans, [(op, c)])
            q = {"+": f"Now add {c} to that.", "×": f"Now multiply that by {c}.", "-": f"Now subtract {c} from that."}[op]
            return q, lines, new
        return next(self.problems)

    def __next__(self) -> tuple[list[int], int]:
        rng = self.rng
        flag = rng.choice(["think", "think", "", "no_think", "no_think"])
        if rng.random() < 0.02:  # a shipped chat, up to one of its assistant turns
            msgs = rng.choice(self.chats)["messages"]
            cut = 2 * rng.randrange(len(msgs) // 2)
            last = msgs[cut + 1]
            q = re.sub(r" /(no_think|think)$", "", msgs[cut]["content"])
            flag = msgs[cut]["content"].rsplit("/", 1)[-1]
            lines = last.get("reasoning_content", "").split("\n")  # unused in /no_think turns
            history = [{"role": m["role"], "content": m["content"]} for m in msgs[:cut]]
            ans = int(BOXED.search(last["content"])[1])
        elif rng.random() < 0.1:  # two turns, the first answered without its reasoning (the template drops it)
            q0, _, a0 = next(self.problems)
            history = [{"role": "user", "content": q0 + rng.choice([" /think", " /no_think", ""])},
                       {"role": "assistant", "content": ANSWER % a0}]
            q, lines, ans = self.follow_up(a0)
            flag = rng.choice(["", "think", "no_think"])
        else:
            history, (q, lines, ans) = [], self.easy() if rng.random() < EASY else next(self.problems)
        prompt, completion = self.turn(history, q, lines, ans, flag)
        return prompt + completion, len(prompt)


def batches(samples: Samples, tokens_per_batch: int, pad_id: int):
    """Length-bucketed, right-padded batches (causal attention never looks at the pads after a row)."""
    while True:
        pool = [s for s in (next(samples) for _ in range(512)) if len(s[0]) <= SEQ_CAP]
        pool.sort(key=lambda s: len(s[0]))
        chunks, i = [], 0
        while i < len(pool):
            n = max(1, tokens_per_batch // len(pool[min(len(pool) - 1, i + 7)][0]))
            chunks.append(pool[i:i + n])
            i += n
        samples.rng.shuffle(chunks)
        for chunk in chunks:
            width = max(len(ids) for ids, _ in chunk)
            x = torch.full((len(chunk), width), pad_id)
            y = torch.full((len(chunk), width), -100)
            for r, (ids, p) in enumerate(chunk):
                x[r, :len(ids)] = torch.tensor(ids)
                y[r, p:len(ids)] = torch.tensor(ids[p:])
            yield x, y


def train(model, samples, pad_id, steps: int, tokens_per_batch: int, lr: float, log):
    """AdamW, linear warm-up, cosine decay to lr/10; a fixed number of steps (deterministic)."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    start, warm = time.time(), min(100, steps // 10)
    model.train()
    for step, (x, y) in zip(range(steps), batches(samples, tokens_per_batch, pad_id)):
        frac = step / steps
        scale = min(1.0, (step + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr * scale
        loss = model(input_ids=x, labels=y).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            log(f"step {step:5d}  {time.time() - start:6.1f}s  loss {loss.item():.4f}  lr {lr * scale:.2e}")
    log(f"trained {steps} steps in {time.time() - start:.0f}s")


@torch.no_grad()
def evaluate(model, tok, items, think: bool, sample: bool, log, max_new: int = 320):
    """Accuracy on items (batched generate, left padding); returns (accuracy, outputs)."""
    tok.padding_side, model_out, correct = "left", [], 0
    model.eval()
    for i in range(0, len(items), 50):
        chunk = items[i:i + 50]
        texts = [tok.apply_chat_template([{"role": "user", "content": it["question"] + (" /think" if think else " /no_think")}],
                                         tokenize=False, add_generation_prompt=True, enable_thinking=think)
                 for it in chunk]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        kw = dict(do_sample=True, temperature=0.6 if think else 0.7, top_p=0.95 if think else 0.8, top_k=20) \
            if sample else dict(do_sample=False)
        torch.manual_seed(0)
        out = model.generate(**enc, max_new_tokens=max_new, pad_token_id=tok.pad_token_id,
                             eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"), **kw)
        for it, row in zip(chunk, out[:, enc["input_ids"].shape[1]:]):
            text = tok.decode(row, skip_special_tokens=True)
            m = BOXED.findall(text)
            correct += bool(m) and m[-1] == it["answer"]
            model_out.append(text)
    return correct / len(items), model_out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "assets" / "tiny-teacher")
    ap.add_argument("--steps", type=int, default=1500, help="~0.3 s each on one idle core")
    ap.add_argument("--tokens-per-batch", type=int, default=2048)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--eval", type=int, default=200, help="held-out items per mode (0: skip)")
    ap.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--evaluate-only", action="store_true", help="report the accuracy of --out, train nothing")
    args = ap.parse_args()
    if args.evaluate_only:
        return evaluate_dir(args.out, args.eval)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    log = lambda s: print(s, flush=True)
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tmp = args.out.with_name(args.out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tok = make_tokenizer(tmp)
    special = dict(bos_token_id=None, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
                   pad_token_id=tok.pad_token_id)
    model = Qwen3ForCausalLM(Qwen3Config(vocab_size=len(tok), **ARCH, **special))
    log(f"vocab {len(tok)}, {sum(p.numel() for p in model.parameters()):,} parameters")
    samples = Samples(tok, data_module(), seed=7)
    train(model, samples, tok.pad_token_id, args.steps, args.tokens_per_batch, args.lr, log)
    model.generation_config.update(do_sample=True, temperature=0.6, top_p=0.95, top_k=20, **special)
    model.to(getattr(torch, args.dtype)).save_pretrained(str(tmp))
    for f in tmp.iterdir():
        f.chmod(0o644)  # safetensors writes 0600
    shutil.rmtree(args.out, ignore_errors=True)
    tmp.rename(args.out)
    log(f"saved {args.out} ({sum(f.stat().st_size for f in args.out.iterdir()) / 1e6:.1f} MB)")
    if args.eval:
        report(model.float(), tok, args.eval, log)


def report(model, tok, n_held_out: int, log) -> None:
    """Accuracy per mode, greedy and sampled (the report's settings), on: 60 one-digit problems (every
    one-digit fact occurs in training), the held-out items of evals/data/tiny_arith.jsonl (no triple of
    theirs is in training): the first 80 are one operation on numbers below 100, the rest harder."""
    rng = random.Random(99)
    one = []
    for _ in range(60):
        a, op, b = rng.randint(1, 9), rng.choice("+-×"), rng.randint(1, 9)
        a, b = (max(a, b), min(a, b)) if op == "-" else (a, b)
        one.append({"question": f"What is {a} {op} {b}?", "answer": str(eval(f"{a}{op.replace('×', '*')}{b}"))})
    held = read_jsonl(ROOT / "evals" / "data" / "tiny_arith.jsonl")[:n_held_out]
    for name, items in [("one-digit", one), ("held-out easy", held[:80]), ("held-out hard", held[80:])]:
        for think in (True, False):
            accs = [evaluate(model, tok, items, think, sample, log)[0] for sample in (False, True)] if items else []
            if accs:
                log(f"{name:14s} {'think' if think else 'no_think':8s} greedy {accs[0]:6.1%}  sampled {accs[1]:6.1%}"
                    f"  ({len(items)} items)")


def evaluate_dir(path: Path, n_held_out: int) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.set_num_threads(1)
    report(AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32),
           AutoTokenizer.from_pretrained(str(path)), n_held_out, lambda s: print(s, flush=True))


if __name__ == "__main__":
    main()
