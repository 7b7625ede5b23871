"""The post-training RL and distillation jobs (issue 19), each on TRL: reasoning_rl on its GRPOTrainer, general_rl
on its DPOTrainer then our GRPO trainer, distill_offpolicy on its SFTTrainer, distill_onpolicy on its GKD trainer
(posttrain/trl_grpo.py, trl_general_rl.py, trl_offpolicy.py, trl_distill.py). This prepares what every process
needs (the stage's prompts, decontaminated and split, its settings, where to write) into `<job>/trl_spec.json` and runs
posttrain/trl_worker.py on it: in the `run` process for one process, else under `accelerate launch` as
posttrain/trl_launch.py says (output to `<job>/trl.log`); then it rebuilds the provenance database."""

from __future__ import annotations

import json
from pathlib import Path

from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.posttrain.runner import StageContext, settings


def run_on_trl(p: PlannedJob, plan: Plan, group: int, check=None) -> tuple[StageContext, list[dict], dict]:
    """Run the job's TRL worker (posttrain/trl_worker.py) in this process or in as many as `execution` and the
    machine give (posttrain/trl_launch.py: their output goes to `<job>/trl.log`); `group`: samples per prompt,
    which a process's share must hold whole; `check(ctx)` before anything runs, returning the stage's (steps,
    batch size) when they are not its `grpo` settings' (off-policy distillation: known once its teacher has
    answered). Returns the context, the step rows and the worker's summary."""
    import os
    from contextlib import nullcontext

    from qwen3_recipe.launch import rollout_servers
    from qwen3_recipe.posttrain.metric_rows import read_rows
    from qwen3_recipe.posttrain.trl_launch import alone, processes, worker_command
    from qwen3_recipe.posttrain.trl_lowering import rollout_max_tokens
    from qwen3_recipe.posttrain.trl_worker import RUNS, SPEC, SUMMARY, resumed_at
    from qwen3_recipe.synth.model_view import native_rope
    from qwen3_recipe.train.launch import has_accelerator, log_tail, run_logged
    ctx = StageContext(p, plan)
    sizes = check(ctx) if check is not None else None
    if sizes is None:
        s = settings(ctx)
        sizes = (s.steps, s.batch_size)
    steps, batch = sizes
    execution = plan.loaded.recipe.execution.model_dump(mode="json")
    env, server_gpus = trainer_env(execution["rollout"], plan)
    nnodes, nproc, _ = processes(env)
    on_cluster = execution["executor"] == "ray" and execution["ray"]["address"]  # its GPUs: trl_ray.py checks
    if execution["fsdp"] == "full" and nnodes * nproc > 1 and not has_accelerator() and not on_cluster:
        # accelerate shards with FSDP on GPUs only: on CPU it would quietly run DDP
        raise refusal(plan, ("execution", "fsdp"), "fsdp: full needs GPUs for a stage on TRL (accelerate runs FSDP "
                      "on GPUs only); set execution.fsdp: none to run it on CPU processes")
    if batch % (nnodes * nproc):
        raise refusal(plan, p.job.key_path + ("batch_size",), f"{batch} prompts per step cannot be shared out in "
                      f"whole groups of {group} over {nnodes * nproc} processes ({nnodes} node(s) x {nproc}): make "
                      "batch_size a multiple of the process count")
    servers, ray = execution["rollout"]["servers"], execution["executor"] == "ray"  # (both: recipe/checks.py)
    if ray and not importable("ray.train.torch"):
        raise refusal(plan, ("execution", "executor"), "the Ray executor runs RL and distillation stages on Ray "
                      "Train: pip install 'ray[default,train]'")
    if servers > nnodes * nproc:
        raise refusal(plan, ("execution", "rollout", "servers"), f"{servers} rollout servers for {nnodes * nproc} "
                      "trainer process(es): each server serves whole processes, so at most one per process")
    spec = {"kind": p.job.kind, "steps": steps, "init": str(ctx.init), "out": str(ctx.folder),
            "provenance": str(ctx.folder / "provenance"), "job": p.job.name, "stage": ctx.name,
            "engine": os.environ.get("QWEN3_RECIPE_ROLLOUT_ENGINE"), "lowered": ctx.stage, "execution": execution,
            "export": ctx.export_job, "model_type": ctx.hf_config.get("model_type", "qwen3"),
            "prompts": [vars(x) for x in ctx.prompts],
            "heldout": [vars(x) for x in ctx.heldout]}
    (ctx.folder / SUMMARY).unlink(missing_ok=True)
    metrics, log = ctx.folder / "dump" / "metrics.jsonl", ctx.folder / "trl.log"
    metrics.parent.mkdir(parents=True, exist_ok=True)
    ctx.steps = steps
    root = str(Path(__file__).resolve().parents[2])
    env |= {"OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1"), "TRL_EXPERIMENTAL_SILENCE": "1",
            "PYTHONPATH": os.pathsep.join(x for x in (root, env.get("PYTHONPATH")) if x)}
    started = rollout_servers.start(ctx.folder, native_rope(ctx.init), rollout_max_tokens(ctx.stage), spec["engine"],
                                    servers, execution["rollout"]["gpus_per_server"], env, server_gpus) \
        if servers else None
    with started or nullcontext() as running:
        spec["rollout_servers"] = running.urls if running else []
        if running:
            env[rollout_servers.TOKEN_ENV] = running.token
        (ctx.folder / SPEC).write_text(json.dumps(spec, indent=1, default=str) + "\n")
        # with servers, one process runs in a process of its own (it sees only its GPUs); on Ray, as Ray's worker
        if alone(env) and not servers and not ray:
            ctx.train(lambda: RUNS[p.job.kind](spec, on_row=ctx._bar))
        else:
            cmd = worker_command(ctx.folder / SPEC, execution, spec["model_type"], env)
            # the rows kept on resume: those up to the checkpoint (the worker rewrites the file from there)
            seen = len(read_rows(metrics, below=resumed_at(metrics.parent, ctx.stage)))
            code = ctx.train(lambda: run_logged(cmd, env, log, metrics, ctx._bar, seen=seen))
            if code != 0 or not (ctx.folder / SUMMARY).exists():
                servers_said = f"\n{running.stopped()}" if running else ""
                raise RuntimeError(f"{p.job.name}: the TRL trainer stopped (exit status {code}); "
                                   f"its log is {log}:\n{log_tail(log)}{servers_said}")
    return ctx, read_rows(metrics), json.loads((ctx.folder / SUMMARY).read_text())


def importable(module: str) -> bool:
    """Whether `module` imports (with what it needs, not only its files: ray's base wheel ships ray.train)."""
    import importlib
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def refusal(plan: Plan, path: tuple, message: str):
    """The located error for the recipe key at `path` (its file and line)."""
    from qwen3_recipe.errors import Problem, RecipeError
    return RecipeError([Problem(message, ".".join(path), plan.loaded.raw.smap.find(path))])


def trainer_env(rollout: dict, plan: Plan) -> tuple[dict, list[list[str]] | None]:
    """The trainer processes' environment, and the GPUs of each of this machine's rollout servers (None: none
    here). The servers take the last servers x gpus_per_server GPUs (launch/rollout_servers.local_gpu_split),
    the trainers keep the rest: split once, here."""

    from qwen3_recipe.launch.rollout_servers import local_gpu_split
    from qwen3_recipe.train.launch import has_accelerator, local_devices
    env = stage_env(plan)
    servers, tp = rollout["servers"], rollout["gpus_per_server"]
    ex, nproc = plan.loaded.recipe.execution, int(env.get("QWEN3_RECIPE_NPROC") or 1)  # (asked for; else per GPU)
    servers_at, tp_at = ("execution", "rollout", "servers"), ("execution", "rollout", "gpus_per_server")
    if ex.executor == "ray" and not ex.ray.address and has_accelerator() and nproc > local_devices():
        # a local instance would wait for them forever
        raise refusal(plan, ("execution", "ray", "workers"), f"{nproc} Ray Train workers of one GPU each on a local "
                      f"Ray instance of {local_devices()} GPU(s)")
    engine = env.get("QWEN3_RECIPE_ROLLOUT_ENGINE") or "vllm"
    if not servers and engine == "vllm" and has_accelerator() and not env.get("QWEN3_RECIPE_HEAD") and \
            nproc > local_devices():  # each keeps its own GPU (trl_worker.py)
        raise refusal(plan, servers_at, f"{nproc} trainer processes with a vLLM engine each on {local_devices()} "
                      "GPU(s): at most one process per GPU, or rollout servers (execution.rollout.servers)")
    if servers and tp > 1 and engine == "transformers":
        raise refusal(plan, tp_at, "a transformers rollout server runs on one GPU (QWEN3_RECIPE_ROLLOUT_ENGINE is "
                      "transformers); tensor-parallel servers are vLLM's")
    if not servers or env.get("QWEN3_RECIPE_HEAD"):  # in an allocation: the servers have nodes of their own
        return env, None
    if tp > 1 and not has_accelerator():
        raise refusal(plan, tp_at, "a rollout server on several GPUs needs GPUs (this machine has none)")
    trainers, server_gpus = local_gpu_split(env, servers, tp)
    if has_accelerator():
        if not trainers or len(trainers) < nproc:
            raise refusal(plan, servers_at, f"{servers} rollout servers of {tp} GPU(s) leave {len(trainers)} of the "
                          f"{len(trainers) + servers * tp} GPUs this machine shows for the {nproc} trainer process(es)")
        env["CUDA_VISIBLE_DEVICES"] = ",".join(trainers)
        env.setdefault("QWEN3_RECIPE_NPROC", str(len(trainers)))
    return env, server_gpus


def stage_env(plan: Plan) -> dict:
    """This environment, with the recipe's Ray Train worker count as the stage's process count on Ray."""
    import os
    env, ex = dict(os.environ), plan.loaded.recipe.execution
    if ex.executor == "ray" and ex.ray.workers:
        env["QWEN3_RECIPE_NPROC"] = str(ex.ray.workers)
    return env


def run_reasoning_rl(p: PlannedJob, plan: Plan) -> None:
    ctx, rows, held = run_on_trl(p, plan, group=p.job.config["stage"]["group_size"])
    steps = ctx.steps
    before, after = held.get("heldout_reward_0"), held.get(f"heldout_reward_{steps}")
    ctx.finish(rows, f"reward {rows[0]['reward_mean']:.3f} -> {rows[-1]['reward_mean']:.3f} over {len(rows)} steps"
               + (f", held-out {before:.3f} -> {after:.3f}" if before is not None else ""))


def run_general_rl(p: PlannedJob, plan: Plan) -> None:
    ctx, rows, held = run_on_trl(p, plan, group=p.job.config["stage"]["group_size"],
                                 check=lambda ctx: refuse_sharded_heldout(p, plan))
    before, after = held.get("heldout_margin_0"), held.get(f"heldout_margin_{ctx.steps}")
    ctx.finish(rows, f"reward {rows[0]['reward_mean']:.3f} -> {rows[-1]['reward_mean']:.3f} over {len(rows)} steps"
               + (f", held-out chosen-over-rejected margin {before:.2f} -> {after:.2f}" if before is not None else ""))


def refuse_sharded_heldout(p: PlannedJob, plan: Plan) -> None:
    """A stage whose held-out numbers each process scores on its own share (distillation's KL, general_rl's
    margin: shares of different sizes) cannot run its model sharded over several processes: FSDP's forwards
    would wait on each other and deadlock."""
    from qwen3_recipe.posttrain.trl_launch import processes
    ex = plan.loaded.recipe.execution
    nnodes, nproc, _ = processes(trainer_env(ex.rollout.model_dump(mode="json"), plan)[0])  # (less the servers' GPUs)
    if ex.fsdp == "full" and nnodes * nproc > 1:
        raise refusal(plan, ("execution", "fsdp"), f"{p.job.kind} on several processes does not run sharded yet "
                      "(its held-out scoring is per process); set execution.fsdp: none")


def distill_checks(p: PlannedJob, plan: Plan, ctx: StageContext) -> None:
    """What a distillation stage refuses before it runs: sharded processes, a teacher of another tokenizer."""
    refuse_sharded_heldout(p, plan)
    teacher = json.loads((Path(ctx.stage["teacher"]) / "config.json").read_text())["vocab_size"]
    if teacher != ctx.hf_config["vocab_size"]:
        raise RuntimeError(f"{p.job.name}: teacher {ctx.stage['teacher']} has vocabulary {teacher}, the student "
                           f"{ctx.hf_config['vocab_size']}; distillation needs one tokenizer")


def run_distill_onpolicy(p: PlannedJob, plan: Plan) -> None:
    ctx, rows, held = run_on_trl(p, plan, group=p.job.config["stage"]["samples_per_prompt"],
                                 check=lambda ctx: distill_checks(p, plan, ctx))
    kl, before, after = ctx.stage["kl"], held.get("heldout_kl_0"), held.get(f"heldout_kl_{ctx.steps}")
    (ctx.folder / "kl_direction.json").write_text(json.dumps({"kl": kl}) + "\n")
    ctx.finish(rows, f"{kl} KL {rows[0]['kl']:.3f} -> {rows[-1]['kl']:.3f}"
               + (f", held-out KL {before:.3f} -> {after:.3f}" if before is not None else ""))


def run_distill_offpolicy(p: PlannedJob, plan: Plan) -> None:
    """Trains on its teacher pass's samples (posttrain/teacher_pass.py), for the stage's epochs over them."""
    from qwen3_recipe.posttrain.distill import load_samples
    from qwen3_recipe.posttrain.trl_lowering import offpolicy_steps
    found: list[int] = []

    def check(ctx: StageContext) -> tuple[int, int]:
        distill_checks(p, plan, ctx)
        stage = ctx.stage
        samples = load_samples(Path(stage["teacher_samples"]))
        leaked = {r["prompt_id"] for r in samples} & {pr.prompt_id for pr in ctx.heldout}
        if leaked:  # the pass answered another prompt split than this stage's: its held-out numbers would lie
            raise RuntimeError(f"{p.job.name}: the teacher's samples include held-out prompts "
                               f"({', '.join(sorted(leaked)[:3])}...); rerun {p.job.name}.teacher")
        if len(samples) < stage["batch_size"]:
            raise refusal(plan, p.job.key_path + ("batch_size",), f"the teacher pass gave {len(samples)} samples, "
                          f"fewer than one batch of {stage['batch_size']}: lower batch_size or give the pass more "
                          "prompts")
        found.append(len(samples))
        return offpolicy_steps(len(samples), stage["batch_size"], stage["epochs"]), stage["batch_size"]
    ctx, rows, held = run_on_trl(p, plan, group=1, check=check)
    before, after = held.get("heldout_kl_0"), held.get(f"heldout_kl_{ctx.steps}")
    ctx.finish(rows, f"{found[0]} teacher samples; top-k KL {rows[0]['kl_topk']:.3f} -> {rows[-1]['kl_topk']:.3f}"
               + (f", held-out KL {before:.3f} -> {after:.3f}" if before is not None else ""))
