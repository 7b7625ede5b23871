"""`evals`, `execution` and `outputs` sections."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from qwen3_recipe.recipe.schema.common import Float, Fraction, Mode, PositiveTokens, Section
from qwen3_recipe.recipe.schema.model import ModelRef
from qwen3_recipe.recipe.schema.serving import Serving
from qwen3_recipe.recipe.schema.synth import Sampling


class ServedModel(ModelRef):
    """A stage, a local model or hub id (`path`), or an OpenAI-compatible server (`server_url`,
    with `path` naming the served model)."""

    server_url: str | None = None
    max_tokens: PositiveTokens = 4096


class Judge(ServedModel):
    """The judge of LLM-judged benchmarks (Arena-Hard). It writes its own answer and reasoning
    before the verdict label, greedy."""

    baseline: ServedModel | None = None
    """The model whose answers ours are judged against, when the benchmark's rows carry none
    (`baseline_field`); Arena-Hard v0.1's is gpt-4-0314. Its answers are generated once, cached."""


class Evals(Section):
    benchmarks: list[str] = []
    """evals/ entries."""
    after: list[str] | None = None
    """Stages to evaluate (default: the last pretrain and the last posttrain stage)."""
    modes: list[Mode] = ["think", "no_think"]
    thinking_budgets: list[PositiveTokens] = []
    """Sweep of thinking budgets (think mode); empty: unlimited only."""
    samples: int = Field(1, gt=0)
    """k samples per item; reports pass@1 averaged over k."""
    max_tokens: PositiveTokens = 32768
    limit: int | None = Field(None, gt=0)
    """Items per benchmark (default: all)."""
    sampling: Sampling = Field(default_factory=Sampling)
    judge: Judge | None = None
    """Needed when a benchmark's verifier is `judge`: each answer is judged against the
    benchmark's baseline answer in both orders (Arena-Hard), greedy."""
    serving: Serving | None = None
    """How the evaluated stages are served: its keys override `execution.serving`'s."""


class Hardware(Section):
    """What the estimates assume."""

    accelerator: str = "H100"
    """H100, H200, A100, B200, MI300X, cpu - or set peak_tflops."""
    count: int = Field(8, gt=0)
    peak_tflops: Float | None = Field(None, gt=0)
    """Dense bf16 peak per device; default from the accelerator."""
    mfu: Fraction = 0.4
    memory_gb: Float | None = Field(None, gt=0)
    """Memory per device, for the check that served models fit; default from the accelerator."""


class Parallelism(Section):
    """torchtitan parallel degrees; -1 means whatever is left of the world size."""

    dp_shard: int = -1
    dp_replicate: int = Field(1, gt=0)
    tp: int = Field(1, gt=0)
    cp: int = Field(1, gt=0)
    ep: int = Field(1, gt=0)
    pp: int = Field(1, gt=0)


class Slurm(Section):
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str = "48:00:00"
    nodes: int = Field(1, gt=0)
    gpus_per_node: int = Field(8, gt=0)
    cpus_per_task: int = Field(32, gt=0)
    mem_per_cpu_gb: Float = Field(2.0, gt=0)
    sbatch_args: list[str] = []


class Ray(Section):
    address: str | None = None
    """Ray cluster address (default: start a local instance)."""
    workers: int | None = Field(None, gt=0)
    """Ray Train workers of an RL or distillation stage on TRL, one GPU each where the cluster has GPUs
    (default: QWEN3_RECIPE_NPROC, else the GPUs of the machine `run` runs on)."""


class Rollout(Section):
    """Where RL and on-policy distillation stages sample their rollouts (issue 19)."""
    servers: int = Field(0, ge=0)
    """Rollout servers on GPUs of their own (0: each trainer process samples with its own engine on its
    own GPU). Locally, processes on this machine (the last GPUs); on Slurm, nodes of the stage's
    allocation beside its `slurm.nodes` trainer nodes. Each serves trainer processes rank % servers;
    weights reach them through the run directory after each sync. At most one per trainer process."""
    gpus_per_server: int = Field(1, gt=0)
    """Each server's vLLM tensor-parallel size (GPUs only)."""


class Execution(Section):
    executor: Literal["local", "slurm", "ray"] = "local"
    tasks: int = Field(4, gt=0)
    """Data-pipeline tasks (files are split across them)."""
    workers: int = -1
    """Data tasks run at once (-1: all)."""
    hardware: Hardware = Field(default_factory=Hardware)
    parallelism: Parallelism = Field(default_factory=Parallelism)
    mixed_precision: Literal["bf16", "fp32"] = "bf16"
    fsdp: Literal["full", "none"] = "full"
    activation_checkpointing: Literal["none", "selective", "full"] = "selective"
    compile: bool = False
    sandbox: Literal["strict", "allow_weak"] = "strict"
    """Model-written code runs in a bubblewrap sandbox (own user, namespaces, a filesystem of
    the interpreter and a scratch dir). `allow_weak`: where bubblewrap cannot start, run it with
    rlimits and a socket guard only, the host filesystem visible (one warning). Strict refuses."""
    slurm: Slurm = Field(default_factory=Slurm)
    ray: Ray = Field(default_factory=Ray)
    serving: Serving = Field(default_factory=Serving)
    """How generation jobs' models are served (a synth job's own `serving` keys override these)."""
    rollout: Rollout = Field(default_factory=Rollout)


class Provenance(Section):
    kept_sample_rate: Fraction = 1.0
    """Share of kept-document rows recorded (drops and contamination hits: always all)."""


class Outputs(Section):
    run_dir: str | None = None
    """Default: runs/<recipe name>."""
    provenance: Provenance = Field(default_factory=Provenance)
