"""Issue 5 benchmark: our generation path (synth request records -> engine Requests -> chat
template -> per-sample seeds -> thinking analysis -> sample dicts) vs raw `vllm.LLM.generate` on the
same rendered prompts, same LLM instance, same sampling. Target: >= 0.95x the raw tokens/s.

Prints each round's ratio of its two back-to-back runs (median and spread; on a machine shared with
other jobs one round's ratio moves by +-10% or more), the ratio of the best rounds, and the median
share of each side's wall time spent outside `vllm.LLM.generate` (its own work: rendering, request
building, decoding, analysis), which that noise barely touches.

Run: .venv/bin/python benchmarks/generation_vs_vllm.py [--prompts 128 --n 4 --max-tokens 128] [--record]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]
from record import Recorder, spread  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(REPO / "tests/assets/tiny-teacher"))
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--record", action="store_true", help="write results/5a.json (benchmarks/table.py)")
    args = parser.parse_args()
    recorder = Recorder("5a", args.record)

    import vllm

    from qwen3_recipe.catalog.rows import file_rows
    from qwen3_recipe.synth.generate import build_engine, derived_seed, run_requests
    from qwen3_recipe.synth.sampling import MODE_DEFAULTS, Request, render

    rows = list(file_rows(REPO / "datasets_spec/data/tiny_prompts.jsonl"))[:args.prompts]
    engine = build_engine("vllm", args.model, max_tokens=args.max_tokens)
    records = [{"key": f"k{i}", "messages": [{"role": "user", "content": r["prompt"]}], "mode": "think",
                "n": args.n, "max_tokens": args.max_tokens, "thinking_budget": None, "sampling": {},
                "seed": [0, str(i), "think"]} for i, r in enumerate(rows)]
    # the raw side: what a user of vLLM writes - render with the chat template, the same per-sample
    # seeds and sampling, one vLLM call
    d = MODE_DEFAULTS["think"]

    def raw() -> int:
        prompts, params = [], []
        for rec in records:
            ids = render(engine.tokenizer, Request(id=rec["key"], messages=rec["messages"], mode="think"), "think")
            base = derived_seed([None, rec["seed"]])
            for i in range(args.n):
                prompts.append({"prompt_token_ids": ids})
                # token ids only, as our engine asks (vLLM's incremental detokenizer is work neither side needs)
                params.append(vllm.SamplingParams(temperature=d["temperature"], top_p=d["top_p"], top_k=d["top_k"],
                                                  seed=base + i, max_tokens=args.max_tokens,
                                                  stop_token_ids=[engine.markers.eos], detokenize=False))
        outs = engine.llm.generate(prompts, params, use_tqdm=False)
        return [list(o.outputs[0].token_ids) for o in outs]

    def ours() -> list[list[int]]:
        return [list(s["token_ids"]) for res in run_requests(engine, records) for s in res]

    # time inside vllm.LLM.generate, to tell each side's own work (outside it) from vLLM's
    inner = {"s": 0.0}
    llm_generate = engine.llm.generate

    def timed_generate(*a, **kw):
        t = time.perf_counter()
        try:
            return llm_generate(*a, **kw)
        finally:
            inner["s"] += time.perf_counter() - t
    engine.llm.generate = timed_generate

    raw(), ours()  # warm-up
    best = {"raw": 0.0, "ours": 0.0}
    outside = {"raw": [], "ours": []}
    tokens, paired, rates = {}, [], {"raw": [], "ours": []}
    for r in range(args.rounds):  # alternate, the order switching: background load hits both alike
        rate = {}
        sides = [("raw", raw), ("ours", ours)]
        for name, fn in sides if r % 2 == 0 else sides[::-1]:
            inner["s"], start = 0.0, time.perf_counter()
            tokens[name] = fn()
            wall = time.perf_counter() - start
            rate[name] = sum(map(len, tokens[name])) / wall
            rates[name].append(rate[name])
            best[name] = max(best[name], rate[name])
            outside[name].append((wall - inner["s"]) / wall)
        paired.append(rate["ours"] / rate["raw"])  # the two sides of one round ran back to back
    result = {"prompts": len(records), "samples_per_prompt": args.n, "max_tokens": args.max_tokens,
              "rounds": args.rounds, "target": 0.95,
              "same_tokens": tokens["raw"] == tokens["ours"],  # the same ids, sample by sample
              "tokens": sum(map(len, tokens["ours"])), "tokens_per_s": {k: spread(v, 0) for k, v in rates.items()},
              "ratio": spread(paired),  # per round: the two sides ran back to back
              "best_ratio": round(best["ours"] / best["raw"], 3),
              "outside_vllm_share": {k: spread(v, 4) for k, v in outside.items()}}
    print(json.dumps(result))
    recorder.save(result)
    engine.close()


if __name__ == "__main__":
    main()
