"""`posttrain.<stage>` jobs of type reasoning_rl, general_rl, distill_offpolicy and distill_onpolicy.

Each warm-starts from its predecessor's HF export (or `posttrain.init`). reasoning_rl and
distill_onpolicy train on TRL (GRPO, GKD) in one or more processes (posttrain/trl_stage.py); the others
in one process (posttrain/trainer.py: torchtitan's Qwen3, optimizer
and LR schedule, DCP checkpoints in `dump/`). All sample rollouts through the synth engines (vLLM by
default; QWEN3_RECIPE_ROLLOUT_ENGINE=transformers; off-policy distillation trains on its teacher pass's
samples, posttrain/teacher_pass.py) and ends by exporting HF weights to `<job>/hf` for the next stage.
Prompts are decontaminated against the recipe's benchmarks; every rollout, reward, teacher score and
step metric lands in provenance."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from qwen3_recipe.compiler.plan import Plan, PlannedJob


def device() -> str:
    from qwen3_recipe.train.launch import has_accelerator
    return "cuda" if has_accelerator() else "cpu"


def split_heldout(prompts: list, seed: int, share: float, most: int) -> tuple[list, list]:
    """(train, held-out): a stable hash split; held-out prompts are never trained on."""
    def h(p) -> float:
        return int(hashlib.sha256(f"{seed}:{p.prompt_id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    held = [p for p in prompts if h(p) < share][:most]
    ids = {p.prompt_id for p in held}
    return [p for p in prompts if p.prompt_id not in ids], held


def stage_prompts(plan: Plan, lowered: dict, folder: Path, job_name: str) -> tuple[list, list]:
    """(train, held-out) prompts of a compiled stage (or its teacher pass): loaded, decontaminated
    (each decision in the job's provenance), split."""
    from qwen3_recipe.provenance.recorder import ShardRecorder
    from qwen3_recipe.synth.prompts import decontaminate, load_prompts
    decont = lowered["decontamination"]
    rec = ShardRecorder(folder / "provenance", job_name, "prompts", 0)
    prompts = load_prompts(plan, lowered["prompts"]["dataset"], lowered["prompts"]["limit"])
    prompts = decontaminate(plan, prompts, decont["benchmarks"] if decont else [], rec, decont)
    rec.close()
    held = lowered["heldout"]
    return split_heldout(prompts, held["seed"], held["share"], held["max"])


class StageContext:
    """What every post-training runner needs: its compiled stage (posttrain/stage_plan.py), folders,
    prompts, the policy and its trainer."""

    def __init__(self, p: PlannedJob, plan: Plan, policy: bool = True) -> None:
        """policy=False: a stage whose processes load the policy themselves (TRL's, posttrain/trl_worker.py)."""
        from qwen3_recipe.compiler.lowerers import load_lowered
        from qwen3_recipe.verify.isolation import set_policy
        self.p, self.plan = p, plan
        self.stage = load_lowered(p, plan)  # the compiled stage, not the recipe's
        set_policy(self.stage.get("sandbox", "strict"))  # (distillation runs no model-written code)
        self.seed = self.stage["seed"]
        self.name = p.job.name.split(".", 1)[1]
        self.folder = plan.run_dir / p.job.dir
        init = Path(self.stage["init"]) if self.stage["init"] else None
        if init is None or not (init / "config.json").exists():
            raise RuntimeError(f"{p.job.name}: no weights to start from ({init}); "
                               "set posttrain.init or add a stage before it")
        self.init = init
        self.hf_config = json.loads((init / "config.json").read_text())
        if policy:
            from qwen3_recipe.posttrain.policy import Policy
            self.policy = Policy(init, device())
            arch = self.policy.arch
        else:
            from qwen3_recipe.train.model import arch_from_hf
            arch = arch_from_hf(self.hf_config)
        # the tokenizer files travel with the weights (an init model may bring its own)
        self.export_job = {"tokenizer_dir": str(init), "arch": arch, **self.stage["export"]}
        self.prompts, self.heldout = stage_prompts(plan, self.stage, self.folder, p.job.name)
        self._bar = self._teacher = None
        if policy and "grpo" in self.stage:  # on-policy: steps known (off-policy's: once the teacher answered)
            self.make_trainer(self.stage["grpo"]["steps"])

    def make_trainer(self, steps: int) -> None:
        """The stage's trainer (off-policy distillation knows its steps only once the teacher has answered)."""
        from qwen3_recipe.posttrain.trainer import StageTrainer
        self.steps = steps
        self.trainer = StageTrainer(
            self.policy, self.folder / "dump", lr=self.stage["lr"], steps=steps,
            optimizer=self.stage["optimizer"], interval=max(1, steps // self.stage["checkpoints"]),
            warmup_steps=self.stage["warmup_steps"], on_step=lambda step, row: self._bar and self._bar([row]))

    def rec_for(self, step: int, kind: str = "step"):
        from qwen3_recipe.provenance.recorder import ShardRecorder
        return ShardRecorder(self.folder / "provenance", self.p.job.name, f"{kind}-{step:06d}", 0)

    def record(self, metrics: dict, step: int, kind: str) -> None:
        """Stage-level numbers (held-out evaluations) as train_steps rows of their own shard."""
        from qwen3_recipe.posttrain.rollouts import step_rows
        rec = self.rec_for(step, "eval")
        step_rows(rec, self.name, kind, step, metrics)
        rec.close()

    def teacher(self):
        """(path, the teacher as a Policy that scores tokens), loaded once."""
        if self._teacher is None:
            from qwen3_recipe.posttrain.policy import Policy
            path = Path(self.stage["teacher"])
            teacher = Policy(path, device())
            if teacher.arch["vocab_size"] != self.policy.arch["vocab_size"]:
                raise RuntimeError(f"{self.p.job.name}: teacher {path} has vocabulary "
                                   f"{teacher.arch['vocab_size']}, the student {self.policy.arch['vocab_size']}; "
                                   "distillation needs one tokenizer")
            self._teacher = (path, teacher)
        return self._teacher

    def train(self, fn):
        from qwen3_recipe.progress import training_progress
        with training_progress(self.p.job.name, self.steps) as update:
            self._bar = update
            return fn()

    def finish(self, rows: list[dict], summary: str, exported: bool = False) -> None:
        """Export the weights (unless the stage's processes did), keep the metrics, rebuild the database."""
        from qwen3_recipe.console import console
        from qwen3_recipe.provenance.database import build_database
        if not exported:
            self.policy.save_hf(self.folder / "hf", self.export_job)
        shutil.copy2(self.folder / "dump" / "metrics.jsonl", self.folder / "metrics.jsonl")
        build_database(self.plan.run_dir)
        console().print(f"{self.p.job.name}: {summary}; weights in {self.folder / 'hf'}")


def settings(ctx: StageContext):
    from qwen3_recipe.posttrain.stage_plan import GRPOSettings
    return GRPOSettings(**ctx.stage["grpo"])


def run_general_rl(p: PlannedJob, plan: Plan) -> None:
    from qwen3_recipe.posttrain import general_rl as G
    from qwen3_recipe.posttrain.policy import Policy
    from qwen3_recipe.posttrain.rewards import combined_reward
    from qwen3_recipe.posttrain.rollout_engine import rollout_engine
    ctx = StageContext(p, plan)
    s = settings(ctx)
    # the prompt set's domain picks the reference verifier by default, its languages back the language rule
    data = ctx.stage["prompts"]
    reward = combined_reward(ctx.stage["rewards"], s.max_response_tokens, domain=data["domain"],
                             languages=data["languages"], device=device())
    (ctx.folder / "rewards.json").write_text(json.dumps(reward.specs, indent=1) + "\n")
    ref = Policy(ctx.policy.hf_dir, device())
    with rollout_engine(ctx.policy.hf_dir, s.max_response_tokens) as engine:
        pairs = G.heldout_pairs(engine, ctx.heldout, reward, s)
        before = G.pair_margin(ctx.policy, pairs) if pairs else None
        rows = ctx.train(lambda: G.run_general_rl(ctx.trainer, engine, ref, ctx.prompts, reward, s, ctx.rec_for,
                                                  ctx.name, pairs, ctx.stage["method"], ctx.stage["dpo_fraction"],
                                                  ctx.stage["beta"]))
    after = G.pair_margin(ctx.policy, pairs) if pairs else None
    if pairs:
        ctx.record({"heldout_margin": before, "heldout_pairs": float(len(pairs))}, 0, "general_rl")
        ctx.record({"heldout_margin": after}, s.steps, "general_rl")
    ctx.finish(rows, f"reward {rows[0]['reward_mean']:.3f} -> {rows[-1]['reward_mean']:.3f}"
               + (f", held-out chosen-over-rejected margin {before:.2f} -> {after:.2f}" if pairs else ""))


def _heldout(ctx: StageContext, engine, teacher, step: int, kind: str) -> dict:
    from qwen3_recipe.posttrain.distill import heldout_kl
    if not ctx.heldout:
        return {}
    max_tokens = ctx.stage["grpo"]["max_response_tokens"] if "grpo" in ctx.stage else ctx.stage["max_tokens"]
    kl = heldout_kl(ctx.policy, engine, teacher, ctx.heldout, ctx.stage["modes"], max_tokens, ctx.seed)
    ctx.record(kl, step, kind)
    return kl


def run_distill_offpolicy(p: PlannedJob, plan: Plan) -> None:
    import math

    from qwen3_recipe.posttrain import distill as D
    from qwen3_recipe.posttrain.rollout_engine import rollout_engine
    ctx = StageContext(p, plan)
    stage = ctx.stage
    _, teacher = ctx.teacher()
    samples = D.load_samples(Path(stage["teacher_samples"]))  # the teacher pass's (posttrain/teacher_pass.py)
    leaked = {r["prompt_id"] for r in samples} & {pr.prompt_id for pr in ctx.heldout}
    if leaked:  # the pass answered another prompt split than this stage's: its held-out numbers would lie
        raise RuntimeError(f"{p.job.name}: the teacher's samples include held-out prompts "
                           f"({', '.join(sorted(leaked)[:3])}...); rerun {p.job.name}.teacher")
    steps = max(1, math.ceil(stage["epochs"] * len(samples) / stage["batch_size"]))
    ctx.make_trainer(steps)
    with rollout_engine(ctx.policy.hf_dir, stage["max_tokens"]) as engine:
        before = _heldout(ctx, engine, teacher, 0, "distill_offpolicy")
        rows = ctx.train(lambda: D.run_offpolicy(ctx.trainer, samples, batch_size=stage["batch_size"],
                                                 kl_weight=stage["kl_weight"], ce_weight=stage["ce_weight"],
                                                 seed=ctx.seed, rec_for=ctx.rec_for, stage=ctx.name))
        after = _heldout(ctx, engine, teacher, steps, "distill_offpolicy")
    ctx.finish(rows, f"{len(samples)} teacher samples; top-k KL {rows[0]['kl_topk']:.3f} -> {rows[-1]['kl_topk']:.3f}"
               + (f", held-out KL {before['heldout_kl']:.3f} -> {after['heldout_kl']:.3f}" if before else ""))
