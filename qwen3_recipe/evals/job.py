"""`eval.<stage>` jobs: the recipe's `evals` benchmarks (the same `evals/` entries decontamination
uses) answered by a stage's exported model in thinking and non-thinking modes, over the sweep of
thinking budgets, k samples per item with the report's sampling settings per mode, scored by the
registered verifiers.

Generation goes through the synth job's request cache (content-addressed), so a killed eval resumes
where it stopped. Every sample lands in provenance (`eval_samples`; view `eval_accuracy`) and the
per-setting accuracy (pass@1 averaged over k) in `<job>/results.jsonl` and a table.
"""

from __future__ import annotations

import json
from pathlib import Path

from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.evals import metrics
from qwen3_recipe.synth.cache import RequestCache, request_key


def benchmark_items(plan: Plan, name: str, limit: int | None) -> list[dict]:
    """The benchmark's items (catalog/items.py): dated ones inside the entry's window, the first
    `limit` of them."""
    from qwen3_recipe.catalog.items import benchmark_item, in_window
    from qwen3_recipe.catalog.rows import entry_rows
    entry = plan.loaded.catalogs.evals[name]
    items: list[dict] = []
    for i, row in enumerate(entry_rows(name, entry.spec, entry.local_path())):
        if limit is not None and len(items) >= limit:
            break
        if in_window(entry.spec, row):
            try:
                items.append(benchmark_item(name, entry.spec, row, i))
            except (KeyError, ValueError, TypeError) as e:
                raise RuntimeError(f"benchmark {name!r} ({entry.loc}): row {i + 1} cannot be scored: {e}") from None
    if not items:
        raise RuntimeError(f"benchmark {name!r} ({entry.loc}): no items to evaluate")
    return items


def requests_for(bench: str, items: list[dict], ev: dict, seed: int, model_id: str) -> list[dict]:
    """Per item, a request in each setting of the eval plan (synth/plan.py eval_plan)."""
    out = []
    for item in items:
        for s in ev["settings"]:
            req = {"benchmark": bench, "item_id": item["id"],
                   "messages": [{"role": "user", "content": item["rendered_prompt"]}],
                   "mode": s["mode"], "n": ev["samples"], "max_tokens": ev["max_tokens"],
                   "thinking_budget": s["thinking_budget"], "sampling": s["sampling"],
                   "seed": (seed, bench, item["id"], s["mode"]), "model": model_id}
            req["key"] = request_key(req)
            out.append(req)
    return out


def scorer(kind: str, bench: str, judge=None):
    """The benchmark's verifier (`kind`: its catalog entry's); a benchmark nothing can score fails
    the job (never a skip)."""
    import qwen3_recipe.verify  # noqa: F401 (registers every verifier)
    from qwen3_recipe.verify.verifiers import REGISTRY, build_verifier
    if kind not in REGISTRY:
        raise RuntimeError(f"benchmark {bench!r} cannot be scored: no '{kind}' verifier is registered")
    if kind == "judge":
        return build_verifier({"type": "judge", "judge": judge})
    return build_verifier({"type": kind})


def run_eval(p: PlannedJob, plan: Plan) -> None:
    from qwen3_recipe.compiler.lowerers import load_lowered
    from qwen3_recipe.progress import synth_progress
    from qwen3_recipe.provenance.database import build_database
    from qwen3_recipe.provenance.recorder import ShardRecorder
    from qwen3_recipe.synth.job import counting, generate_missing
    from qwen3_recipe.verify.isolation import set_policy

    ev = load_lowered(p, plan)  # the eval plan compile wrote (synth/plan.py eval_plan)
    set_policy(ev["sandbox"])
    stage, seed = ev["stage"], ev["seed"]
    folder, model = plan.run_dir / p.job.dir, Path(ev["engine"]["model"])  # the stage's export
    if not (model / "config.json").exists():
        raise RuntimeError(f"{p.job.name}: no exported model at {model}")
    cache = RequestCache(folder / "cache")
    judge = None
    if any(b["verifier"] == "judge" for b in ev["benchmarks"].values()):
        from qwen3_recipe.evals.judging import Judge
        judge = Judge(plan, ev["judge"], cache)
    requests, items_by_bench, verifiers = [], {}, {}
    for bench in ev["benchmarks"]:
        verifiers[bench] = scorer(ev["benchmarks"][bench]["verifier"], bench, judge)
        items = benchmark_items(plan, bench, ev["benchmarks"][bench]["limit"])
        items_by_bench[bench] = {it["id"]: it for it in items}
        requests += requests_for(bench, items, ev, seed, ev["engine"]["model_id"])
    total = sum(r["n"] for r in requests)
    done = sum(r["n"] for r in requests if r["key"] in cache)
    engine_cfg = {"engine": ev["engine"]["kind"], "server_url": None, "max_tokens": ev["max_tokens"],
                  "serving": ev["engine"]["serving"], "executor": ev["engine"]["executor"]}
    with synth_progress(p.job.name, total, done=done) as progress:
        generate_missing(requests, cache, engine_cfg, model, counting(progress, cache), folder)
    if judge is not None:
        from qwen3_recipe.evals.judging import fill_baselines
        fill_baselines(plan, ev["judge"], cache, [it for b, its in items_by_bench.items()
                                                  if verifiers[b].type == "judge" for it in its.values()])
        judge.prepare([(items_by_bench[r["benchmark"]][r["item_id"]], s["text"])
                       for r in requests if verifiers[r["benchmark"]].type == "judge" for s in cache.get(r["key"])])

    rec = ShardRecorder(folder / "provenance", p.job.name, "eval", 0)
    verdicts: dict[tuple, list] = {}
    for r in requests:
        item, verifier = items_by_bench[r["benchmark"]][r["item_id"]], verifiers[r["benchmark"]]
        for k, s in enumerate(cache.get(r["key"])):
            v = verifier.verify(s["text"], item["gold"], item)
            metric, score = metrics.sample_score(verifier.type, v)
            rec.add("eval_samples", stage=stage, benchmark=r["benchmark"], item_id=r["item_id"], mode=r["mode"],
                    thinking_budget=r["thinking_budget"], sample=k, correct=v.ok, verdict=v.reason,
                    tokens=len(s["token_ids"]), thinking_tokens=s.get("thinking_tokens"),
                    budget_cut=s.get("budget_cut"), text=s["text"], prompt=item["rendered_prompt"],
                    extracted=None if v.extracted is None else str(v.extracted)[:4000], metric=metric,
                    score=score, details=json.dumps(v.details, default=str)[:20000])
            verdicts.setdefault((r["benchmark"], r["mode"], r["thinking_budget"]), []).append(v)
    rec.close()
    build_database(plan.run_dir)  # the samples stay auditable even when the job fails below
    bad = {b: metrics.unscorable([v for (bb, _, _), vs in verdicts.items() if bb == b for v in vs])
           for b in ev["benchmarks"]}
    bad = {b: c for b, c in bad.items() if c}
    if bad:
        raise RuntimeError("could not score " + "; ".join(
            f"{b} ({plan.loaded.catalogs.evals[b].loc}): " + ", ".join(f"{n} samples {r}" for r, n in c.items())
            for b, c in bad.items()))
    results = []
    for (bench, mode, budget), vs in verdicts.items():
        values = metrics.aggregate(verifiers[bench].type, vs)
        results.append({"stage": stage, "benchmark": bench, "mode": mode, "thinking_budget": budget,
                        "samples": len(vs), "metric": values["metric"], "accuracy": values[values["metric"]],
                        "metrics": values, "verdicts": metrics.reasons(vs)})
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results))
    print_results(p.job.name, results)


def print_results(title: str, results: list[dict]) -> None:
    from rich.table import Table

    from qwen3_recipe.console import console
    table = Table(title=f"{title}: each benchmark's metric (mean over samples)", title_justify="left")
    for col in ("benchmark", "mode", "thinking budget", "samples", "metric", "value"):
        table.add_column(col, justify="right" if col in ("samples", "value") else "left")
    for r in sorted(results, key=lambda r: (r["benchmark"], r["mode"], r["thinking_budget"] or 1 << 40)):
        table.add_row(r["benchmark"], r["mode"], "-" if r["thinking_budget"] is None else str(r["thinking_budget"]),
                      str(r["samples"]), r.get("metric", "pass@1"),
                      "-" if r["accuracy"] is None else f"{r['accuracy']:.3f}")
    console().print(table)


def print_summary(plan: Plan, jobs: list) -> None:
    """One table across the evaluated stages (rows, in plan order) and settings (columns): how
    post-training moved each mode and budget."""
    from rich.table import Table

    from qwen3_recipe.console import console
    rows = []
    for job in jobs:
        path = plan.run_dir / job.dir / "results.jsonl"
        if path.exists():
            rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        return
    settings = sorted({(r["benchmark"], r["mode"], r["thinking_budget"]) for r in rows},
                      key=lambda s: (s[0], s[1], s[2] or 1 << 40))
    table = Table(title="evals per stage (pass@1; IFEval prompt-level strict; judged: win rate)",
                  title_justify="left")
    table.add_column("after stage")
    for bench, mode, budget in settings:
        table.add_column(f"{bench}\n{mode}" + ("" if budget is None else f" @{budget}"), justify="right")
    for job in jobs:
        got = {(r["benchmark"], r["mode"], r["thinking_budget"]): r["accuracy"]
               for r in rows if r["stage"] == job.config["stage"]}
        table.add_row(job.config["stage"], *(f"{got[s]:.2f}" if got.get(s) is not None else "-" for s in settings))
    console().print(table)
