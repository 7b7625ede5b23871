"""`posttrain.<stage>` jobs of type reasoning_rl, general_rl, distill_offpolicy and distill_onpolicy.

Each warm-starts from its predecessor's HF export (or `posttrain.init`) and trains on TRL in one or more
processes (posttrain/trl_stage.py runs them; TRL checkpoints in `<job>/dump`). All sample rollouts through the
synth engines (vLLM by default; QWEN3_RECIPE_ROLLOUT_ENGINE=transformers; off-policy distillation trains on
its teacher pass's samples, posttrain/teacher_pass.py) and end by exporting HF weights to `<job>/hf` for the
next stage.
Prompts are decontaminated against the recipe's benchmarks; every rollout, reward, teacher score and
step metric lands in provenance."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from qwen3_recipe.compiler.plan import Plan, PlannedJob


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
    """What every post-training runner needs before its TRL processes start (posttrain/trl_stage.py): its
    compiled stage (posttrain/stage_plan.py), folders, the weights it starts from and its prompts."""

    def __init__(self, p: PlannedJob, plan: Plan) -> None:
        from qwen3_recipe.compiler.lowerers import load_lowered
        from qwen3_recipe.train.model import arch_from_hf
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
        # the tokenizer files travel with the weights (an init model may bring its own)
        self.export_job = {"tokenizer_dir": str(init), "arch": arch_from_hf(self.hf_config), **self.stage["export"]}
        self.prompts, self.heldout = stage_prompts(plan, self.stage, self.folder, p.job.name)
        self._bar = None
        self.steps = 0

    def train(self, fn):
        from qwen3_recipe.progress import training_progress
        with training_progress(self.p.job.name, self.steps) as update:
            self._bar = update
            return fn()

    def finish(self, rows: list[dict], summary: str) -> None:
        """Keep the metrics, rebuild the database (the stage's processes exported the weights)."""
        from qwen3_recipe.console import console
        from qwen3_recipe.provenance.database import build_database
        shutil.copy2(self.folder / "dump" / "metrics.jsonl", self.folder / "metrics.jsonl")
        build_database(self.plan.run_dir)
        console().print(f"{self.p.job.name}: {summary}; weights in {self.folder / 'hf'}")


def settings(ctx: StageContext):
    from qwen3_recipe.posttrain.stage_plan import GRPOSettings
    return GRPOSettings(**ctx.stage["grpo"])
