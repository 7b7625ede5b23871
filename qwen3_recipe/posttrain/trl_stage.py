"""The `reasoning_rl` job (issue 19): GRPO on TRL's GRPOTrainer. This prepares what every process needs (the
stage's prompts, decontaminated and split, its settings, where to write) into `<job>/trl_spec.json` and runs
posttrain/trl_worker.py on it: in the `run` process for one process, else under `accelerate launch` as
posttrain/trl_launch.py says (output to `<job>/trl.log`); then it rebuilds the provenance database."""

from __future__ import annotations

import json
from pathlib import Path

from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.posttrain.runner import StageContext, settings


def run_reasoning_rl(p: PlannedJob, plan: Plan) -> None:
    """GRPO on TRL (posttrain/trl_worker.py), in this process or in as many as `execution` and the machine
    give (posttrain/trl_launch.py: their output goes to `<job>/trl.log`)."""
    import os

    from qwen3_recipe.errors import Problem, RecipeError
    from qwen3_recipe.posttrain.metric_rows import read_rows
    from qwen3_recipe.posttrain.trl_launch import alone, processes, worker_command
    from qwen3_recipe.posttrain.trl_worker import SPEC, SUMMARY
    from qwen3_recipe.posttrain.trl_worker import run_reasoning_rl as run_here
    from qwen3_recipe.train.launch import has_accelerator, run_logged
    ctx = StageContext(p, plan, policy=False)
    s = settings(ctx)
    execution = plan.loaded.recipe.execution.model_dump(mode="json")
    nnodes, nproc, _ = processes()
    if execution["fsdp"] == "full" and nnodes * nproc > 1 and not has_accelerator():
        key = ("execution", "fsdp")  # accelerate shards with FSDP on GPUs only: on CPU it would quietly run DDP
        raise RecipeError([Problem("fsdp: full needs GPUs for a stage on TRL (accelerate runs FSDP on GPUs "
                                   "only); set execution.fsdp: none to run it on CPU processes",
                                   ".".join(key), plan.loaded.raw.smap.find(key))])
    if (s.batch_size * s.group_size) % (nnodes * nproc * s.group_size):
        raise RecipeError([Problem(f"{s.batch_size} prompts per step cannot be shared out in whole groups over "
                                   f"{nnodes * nproc} processes ({nnodes} node(s) x {nproc}): make batch_size a "
                                   "multiple of the process count", ".".join(p.job.key_path + ("batch_size",)),
                                   plan.loaded.raw.smap.find(p.job.key_path + ("batch_size",)))])
    spec = {"init": str(ctx.init), "out": str(ctx.folder), "provenance": str(ctx.folder / "provenance"),
            "job": p.job.name, "stage": ctx.name, "engine": os.environ.get("QWEN3_RECIPE_ROLLOUT_ENGINE"),
            "lowered": ctx.stage, "execution": execution, "export": ctx.export_job,
            "prompts": [vars(x) for x in ctx.prompts], "heldout": [vars(x) for x in ctx.heldout]}
    (ctx.folder / SPEC).write_text(json.dumps(spec, indent=1, default=str) + "\n")
    (ctx.folder / SUMMARY).unlink(missing_ok=True)
    metrics, log = ctx.folder / "dump" / "metrics.jsonl", ctx.folder / "trl.log"
    metrics.parent.mkdir(parents=True, exist_ok=True)
    ctx.steps = s.steps
    if alone():
        ctx.train(lambda: run_here(spec, on_row=ctx._bar))
    else:
        cmd = worker_command(ctx.folder / SPEC, execution, ctx.hf_config.get("model_type", "qwen3"))
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
               "TRL_EXPERIMENTAL_SILENCE": "1",
               "PYTHONPATH": os.pathsep.join(x for x in (root, os.environ.get("PYTHONPATH")) if x)}
        # the rows kept on resume: those up to the checkpoint (the worker rewrites the file from there)
        from qwen3_recipe.posttrain.trl_grpo import last_checkpoint
        last = last_checkpoint(metrics.parent)
        seen = len(read_rows(metrics, below=int(last.name.split("-")[1]) if last else 0))
        code = ctx.train(lambda: run_logged(cmd, env, log, metrics, ctx._bar, seen=seen))
        if code != 0 or not (ctx.folder / SUMMARY).exists():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise RuntimeError(f"{p.job.name}: the TRL trainer stopped (exit status {code}); its log is {log}:\n{tail}")
    rows, held = read_rows(metrics), json.loads((ctx.folder / SUMMARY).read_text())
    before, after = held.get("heldout_reward_0"), held.get(f"heldout_reward_{s.steps}")
    ctx.finish(rows, f"reward {rows[0]['reward_mean']:.3f} -> {rows[-1]['reward_mean']:.3f} over {len(rows)} steps"
               + (f", held-out {before:.3f} -> {after:.3f}" if before is not None else ""), exported=True)
