"""Compute estimates: 6·N·D for training, 2·N·T for generation and scoring, GPU-hours at the
declared hardware and MFU. N is `Arch.compute_params` (MoE: activated parameters).

Prompt tokens are left out of generation costs; expected generated tokens default to half of
the token cap. These are planning numbers, not promises.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qwen3_recipe.compiler.jobs import Job, stage_steps
from qwen3_recipe.presets import resolve_arch
from qwen3_recipe.recipe.schema.model import ModelRef
from qwen3_recipe.recipe.validate import LoadedRecipe

# Dense bf16 peak TFLOP/s per device (vendor datasheets, without sparsity).
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "H800": 989.0, "A100": 312.0, "B200": 2250.0,
               "GB200": 2500.0, "MI300X": 1307.0, "MI325X": 1307.0, "L40S": 362.0, "cpu": 1.0}
GENERATION_MFU = 0.1  # decoding is memory-bound: far below training MFU
SFT_TOKENS_PER_SAMPLE = 2048  # chat datasets without a token count
UNKNOWN_ITEMS = 1000  # prompt datasets whose catalog entry gives no `items`


@dataclass
class Estimate:
    tokens: int = 0
    """Tokens trained on (training) or generated/scored (generation)."""
    train_flops: float = 0.0
    gen_flops: float = 0.0
    steps: int | None = None
    gpu_hours: float = 0.0
    details: dict[str, float] = field(default_factory=dict)

    @property
    def flops(self) -> float:
        return self.train_flops + self.gen_flops


class Estimator:
    def __init__(self, loaded: LoadedRecipe, jobs: dict[str, Job]) -> None:
        self.loaded, self.r, self.jobs = loaded, loaded.recipe, jobs
        hw = self.r.execution.hardware
        peak = hw.peak_tflops or PEAK_TFLOPS.get(hw.accelerator, PEAK_TFLOPS["H100"])
        self.train_rate = peak * 1e12 * hw.mfu  # FLOP/s per device
        self.gen_rate = peak * 1e12 * min(hw.mfu, GENERATION_MFU)
        self.n = loaded.arch.compute_params

    def model_n(self, ref: ModelRef) -> int:
        if ref.stage:
            return self.n
        if ref.preset or ref.arch:
            return resolve_arch(ref.preset, ref.arch.model_dump() if ref.arch else None).compute_params
        return self.n  # weights only: assume the trained model's size

    def items(self, dataset: str, limit: int | None = None) -> int:
        if dataset in self.r.synth.jobs:
            job = self.r.synth.jobs[dataset]
            kept = self.items(job.prompts, job.limit) * job.keep_per_prompt * (2 if job.mode == "both" else 1)
            share = job.multi_turn_share  # + mode-switch rows (synth/fusion.py: at most one per sample)
            return kept + (min(round(kept * share / (1 - share)), kept // 2) if share else 0)
        count = self.loaded.catalogs.datasets[dataset].spec.items
        if count is None:
            return limit or UNKNOWN_ITEMS
        return min(count, limit) if limit else count

    def finish(self, est: Estimate) -> Estimate:
        est.gpu_hours = est.train_flops / self.train_rate / 3600 + est.gen_flops / self.gen_rate / 3600
        return est

    def estimate(self, job: Job) -> Estimate:
        handler = getattr(self, f"_{job.kind}", None)
        return self.finish(handler(job) if handler else Estimate())

    def _pretrain(self, job: Job) -> Estimate:
        stage = job.config["stage"]  # what the trainer runs: whole sequences, enough steps for the budget
        batch, steps = stage_steps(stage["tokens"], stage["seq_len"], stage["batch_tokens"])
        return Estimate(tokens=steps * batch, train_flops=6 * self.n * steps * batch, steps=steps)

    def _sft(self, job: Job) -> Estimate:
        stage = self.r.posttrain.stages[job.name.split(".", 1)[1]]
        tokens = stage.tokens
        if tokens is None:
            per_sample = {ref: (self.r.synth.jobs[ref].expected_tokens or self.r.synth.jobs[ref].max_tokens // 2)
                          if ref in self.r.synth.jobs else SFT_TOKENS_PER_SAMPLE for ref in stage.data}
            tokens = int(sum(self.items(ref) * per_sample[ref] for ref in stage.data) * stage.epochs)
        return Estimate(tokens=tokens, train_flops=6 * self.n * tokens)

    _fusion = _sft

    def _rl(self, job: Job, kl: bool) -> Estimate:
        stage = self.r.posttrain.stages[job.name.split(".", 1)[1]]
        per = stage.expected_tokens or stage.max_response_tokens // 2
        rollout = stage.steps * stage.batch_size * stage.group_size * per
        # rollouts (generation) + old-policy log-probs (forward) + policy update (6N) [+ reference]
        forwards = 2 * self.n * rollout * (2 if kl else 1)
        return Estimate(tokens=rollout, gen_flops=2 * self.n * rollout,
                        train_flops=6 * self.n * rollout + forwards, steps=stage.steps,
                        details={"rollout_tokens": rollout})

    def _reasoning_rl(self, job: Job) -> Estimate:
        return self._rl(job, self.r.posttrain.stages[job.name.split(".", 1)[1]].kl_coef > 0)

    def _general_rl(self, job: Job) -> Estimate:
        return self._rl(job, True)  # DPO and the hybrid schedule use a reference model

    def _teacher_tokens(self, stage) -> int:
        per = stage.expected_tokens or stage.max_tokens // 2
        return self.items(stage.prompts, stage.limit) * len(stage.modes) * stage.samples_per_prompt * per

    def _distill_teacher(self, job: Job) -> Estimate:
        stage = self.r.posttrain.stages[job.name.split(".")[1]]
        tokens = self._teacher_tokens(stage)
        return Estimate(tokens=tokens, gen_flops=2 * self.model_n(stage.teacher) * tokens)

    def _distill_offpolicy(self, job: Job) -> Estimate:
        stage = self.r.posttrain.stages[job.name.split(".", 1)[1]]
        tokens = self._teacher_tokens(stage)  # the teacher's samples: generated by its own job
        return Estimate(tokens=tokens, train_flops=6 * self.n * tokens * stage.epochs)

    def _distill_onpolicy(self, job: Job) -> Estimate:
        stage = self.r.posttrain.stages[job.name.split(".", 1)[1]]
        per = stage.expected_tokens or stage.max_tokens // 2
        tokens = stage.steps * stage.batch_size * stage.samples_per_prompt * per
        teacher = self.model_n(stage.teacher)
        return Estimate(tokens=tokens, gen_flops=2 * self.n * tokens,
                        train_flops=6 * self.n * tokens + 2 * teacher * tokens, steps=stage.steps,
                        details={"teacher_score_flops": 2 * teacher * tokens})

    def _synth(self, job: Job) -> Estimate:
        sj = self.r.synth.jobs[job.name.split(".", 1)[1]]
        per = sj.expected_tokens or sj.max_tokens // 2
        modes = 2 if sj.mode == "both" else 1
        tokens = self.items(sj.prompts, sj.limit) * sj.samples_per_prompt * per * modes
        return Estimate(tokens=tokens, gen_flops=2 * self.model_n(sj.teacher) * tokens)

    def _eval(self, job: Job) -> Estimate:
        ev = self.r.evals
        settings = len(ev.modes) + (len(ev.thinking_budgets) if "think" in ev.modes else 0)
        items = 0
        for name in ev.benchmarks:
            count = self.loaded.catalogs.evals[name].spec.items or 500
            items += min(count, ev.limit) if ev.limit else count
        tokens = items * ev.samples * settings * (ev.max_tokens // 2)
        return Estimate(tokens=tokens, gen_flops=2 * self.n * tokens)
