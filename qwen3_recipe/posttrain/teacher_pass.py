"""`posttrain.<stage>.teacher`: off-policy distillation's teacher answering the stage's training
prompts in each mode, with the top-k log-probabilities of every token it generates (Qwen3 report,
section 4.5). A generation job like a synth job: the same requests, request cache (a killed pass
resumes, each sample once) and serving (in process, or vLLM servers per task with tp/dp/EP on the
local, Ray or Slurm executor: synth/served.py). Its samples file is what the stage trains on for
all its epochs; every sample is in provenance (`samples`, decision kept)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from qwen3_recipe.compiler.plan import Plan, PlannedJob

SAMPLES_FILE = "samples.jsonl"


def teacher_job(stage_job: str) -> str:
    """The teacher pass of an off-policy stage's job (`posttrain.<stage>` -> `posttrain.<stage>.teacher`)."""
    from qwen3_recipe.serving import TEACHER_SUFFIX
    return stage_job + TEACHER_SUFFIX


def samples_path(plan, stage_job: str) -> Path:
    return (plan.run_dir / "jobs" / teacher_job(stage_job) / SAMPLES_FILE).resolve()


def training_rows(requests: list[dict], cache, rec, sources: dict[str, str], teacher: str) -> list[dict]:
    """The stage's training set, one row per sample: the rendered prompt's and the response's token
    ids and the teacher's top-k per response token. Each sample is recorded in `rec` too."""
    rows = []
    for req in requests:
        for k, s in enumerate(cache.get(req["key"])):
            sample_id = f"{req['prompt_id']}/{req['mode']}/{k}"
            rows.append({"id": sample_id, "prompt_id": req["prompt_id"], "mode": req["mode"],
                         "prompt_ids": s["prompt_ids"], "response_ids": s["token_ids"],
                         "top_ids": s["top_ids"], "top_logps": s["top_logps"], "text": s["text"]})
            rec.add("samples", source=sources[req["prompt_id"]], prompt_id=req["prompt_id"], sample_id=sample_id,
                    teacher=teacher, mode=req["mode"], thinking_tokens=s.get("thinking_tokens"),
                    tokens=len(s["token_ids"]), finish_reason=s.get("finish_reason"), decision="kept",
                    text=s["text"])
    return rows


def write_rows(rows: list[dict], path: Path) -> None:
    """All or nothing: a killed write leaves the previous file (or none)."""
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with open(tmp, "w") as fh:
        for r in rows:
            fh.write(json.dumps(r, separators=(",", ":")) + "\n")
    tmp.replace(path)


def run_teacher_pass(p: PlannedJob, plan: Plan) -> None:
    from qwen3_recipe.compiler.lowerers import load_lowered
    from qwen3_recipe.console import console
    from qwen3_recipe.posttrain.runner import stage_prompts
    from qwen3_recipe.progress import synth_progress
    from qwen3_recipe.provenance.database import build_database
    from qwen3_recipe.provenance.recorder import ShardRecorder
    from qwen3_recipe.synth.cache import RequestCache
    from qwen3_recipe.synth.job import counting, generate_missing, requests_for
    gen = load_lowered(p, plan)
    folder, engine = plan.run_dir / p.job.dir, gen["engine"]
    model = engine["model"]
    if (Path(model) / "config.json").is_file():
        # the targets are of the model the student is measured against (the held-out and on-policy
        # teacher scores without YaRN, as torchtitan trains), whatever the length of the requests
        from qwen3_recipe.synth.model_view import native_rope
        model = str(native_rope(Path(model)))
    prompts, _ = stage_prompts(plan, gen, folder, p.job.name)  # held-out prompts: never the teacher's targets
    requests = requests_for(prompts, gen["modes"], gen["seed"], engine["model_id"], logprobs=gen["top_k"])
    cache = RequestCache(folder / "cache")
    total = sum(r["n"] for r in requests)
    done = sum(r["n"] for r in requests if r["key"] in cache)
    with synth_progress(p.job.name, total, done=done) as progress:
        cfg = {"engine": engine["kind"], "serving": engine["serving"], "executor": engine["executor"],
               "max_tokens": max(m["max_tokens"] for m in gen["modes"].values())}
        generate_missing(requests, cache, cfg, model, counting(progress, cache), folder)
    rec = ShardRecorder(folder / "provenance", p.job.name, "samples", 0)
    rows = training_rows(requests, cache, rec, {pr.prompt_id: pr.source for pr in prompts}, engine["model"])
    rec.close()
    write_rows(rows, folder / SAMPLES_FILE)
    build_database(plan.run_dir)
    tokens = sum(len(r["response_ids"]) for r in rows)
    console().print(f"{p.job.name}: {len(rows):,} teacher samples ({tokens:,} tokens, top-{gen['top_k']} "
                    f"log-probabilities each) from {len(prompts):,} prompts -> {folder / SAMPLES_FILE}")
