"""Serving a generation job's model: the settings in effect (`execution.serving` with the job's own
keys over them) and whether the model fits them on the declared hardware. Engine-free: `plan`,
`validate` and the synth lowering use it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from qwen3_recipe.presets import Arch

# Memory per device (GB, vendor datasheets); `execution.hardware.memory_gb` overrides.
ACCELERATOR_GB = {"H100": 80, "H800": 80, "H200": 141, "A100": 80, "B200": 180, "GB200": 186,
                  "MI300X": 192, "MI325X": 256, "L40S": 48}
USABLE = 0.9  # vLLM's default gpu_memory_utilization
PROMPT_ALLOWANCE = 4096  # tokens of prompt assumed beside max_tokens when max_model_len is unset
BYTES_PER_PARAM = 2  # bf16 weights and KV cache
# Job kinds that generate through a served model (synth/job.generate_missing): synth jobs, the quality
# annotator, evals, and off-policy distillation's teacher pass (`posttrain.<stage>.teacher`).
GENERATION_KINDS = ("synth", "quality_annotate", "eval", "distill_teacher")
TEACHER_SUFFIX = ".teacher"


def job_serving(execution: Any, job_serving: Any) -> dict[str, Any]:
    """`execution.serving` with the keys a job sets over it, as plain JSON."""
    merged = execution.serving.model_dump(mode="json")
    if job_serving is not None:
        merged |= job_serving.model_dump(mode="json", exclude_unset=True)
    merged["gpus_per_task"] = merged["gpus_per_task"] or merged["tp"] * merged["dp"] * merged["pp"]
    return merged


# vLLM flags that size or schedule the engine, not what it computes: changing one (to get past an
# out-of-memory, say) keeps a job's fingerprint and its cached answers
NEUTRAL_ARGS = {"max-num-batched-tokens", "max-num-seqs", "gpu-memory-utilization", "kv-cache-memory-bytes",
                "swap-space", "cpu-offload-gb", "disable-log-requests", "disable-log-stats", "max-log-len",
                "uvicorn-log-level", "api-server-count", "distributed-executor-backend", "enable-chunked-prefill"}


def engine_args(s: dict[str, Any]) -> dict[str, Any]:
    """The serving settings that may change what the model generates: `extra_args` go to vLLM verbatim
    (a dtype, a quantisation), so they are part of the job's fingerprint and of its requests' keys
    (all but NEUTRAL_ARGS). The rest (where and on how many GPUs) changes where requests go."""
    return {k: v for k, v in s["extra_args"].items() if k.replace("_", "-") not in NEUTRAL_ARGS}


def keyed_model(model_id: str, s: dict[str, Any]) -> str:
    """The model id requests are keyed by: the model, and the engine arguments it is served with."""
    args = engine_args(s)
    if not args:
        return model_id
    import hashlib
    import json
    return f"{model_id}+args:{hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:12]}"


def in_process() -> dict[str, Any]:
    """The default serving, for generation that declares none (a judge's, a baseline's)."""
    from qwen3_recipe.recipe.schema.serving import Serving
    return Serving().model_dump(mode="json") | {"gpus_per_task": 1}


def serving_of(recipe: Any, job_name: str) -> dict[str, Any]:
    """The serving in effect for a generation job (synth.*, quality.annotate, eval.*, posttrain.*.teacher)."""
    if job_name.startswith("synth."):
        own = recipe.synth.jobs[job_name.split(".", 1)[1]].serving
    elif job_name == "quality.annotate":
        own = recipe.data.quality.serving
    elif job_name.startswith("eval."):
        own = recipe.evals.serving
    elif job_name.startswith("posttrain.") and job_name.endswith(TEACHER_SUFFIX):
        own = recipe.posttrain.stages[job_name[len("posttrain."):-len(TEACHER_SUFFIX)]].serving
    else:
        raise ValueError(f"{job_name} does not generate")
    return job_serving(recipe.execution, own)


def in_process_kwargs(s: dict[str, Any]) -> dict[str, Any]:
    """The serving settings as `vllm.LLM` arguments (in-process: one task, one model copy)."""
    out: dict[str, Any] = {}
    if s["tp"] > 1:
        out["tensor_parallel_size"] = s["tp"]
    if s["pp"] > 1:
        out["pipeline_parallel_size"] = s["pp"]
    if s["expert_parallel"]:
        out["enable_expert_parallel"] = True
    if s["max_concurrent"]:
        out["max_num_seqs"] = s["max_concurrent"]
    if s["max_model_len"]:
        out["max_model_len"] = s["max_model_len"]
    return out | {k.replace("-", "_"): v for k, v in s["extra_args"].items()}


def describe(s: dict[str, Any]) -> str:
    """One line for `plan`: "vllm, 64 tasks x 8 GPUs, tp=8 + EP"."""
    if s["type"] == "in_process":
        head = "in-process vLLM"
    else:
        head = f"{s['type']} server, {s['tasks']} task{'s' if s['tasks'] > 1 else ''} x {s['gpus_per_task']} GPUs"
    degrees = [f"{k}={s[k]}" for k in ("tp", "dp", "pp") if s[k] > 1]
    if s["expert_parallel"]:
        degrees.append("EP")
    return head + (", " + " + ".join(degrees) if degrees else "")


@dataclass(frozen=True)
class Fit:
    weights_gb: float
    kv_gb: float  # one sequence of `context` tokens
    usable_gb: float
    context: int

    @property
    def ok(self) -> bool:
        return self.weights_gb + self.kv_gb <= self.usable_gb


def fit(arch: Arch, s: dict[str, Any], memory_gb: float, context: int) -> Fit:
    """Per-GPU weights and the KV cache of one `context`-token sequence. Tensor and pipeline
    parallelism split every weight; expert parallelism spreads the experts over tp x dp GPUs."""
    tp, dp, pp = s["tp"], s["dp"], s["pp"]
    experts = arch.num_layers * arch.num_experts * 3 * arch.hidden_size * arch.moe_intermediate_size
    dense = arch.total_params - experts
    per_expert_gpu = tp * pp * (dp if s["expert_parallel"] else 1)
    weights = (dense / (tp * pp) + experts / per_expert_gpu) * BYTES_PER_PARAM
    kv_heads = math.ceil(arch.num_kv_heads / tp)  # fewer KV heads than tp: each GPU keeps one
    kv = 2 * math.ceil(arch.num_layers / pp) * kv_heads * arch.head_dim * BYTES_PER_PARAM * context
    return Fit(weights / 1e9, kv / 1e9, memory_gb * USABLE, context)


def memory_per_device(hardware: Any) -> float | None:
    return hardware.memory_gb or ACCELERATOR_GB.get(hardware.accelerator)


def fit_problem(arch: Arch, s: dict[str, Any], hardware: Any, context: int) -> str | None:
    """Why the model cannot be served so (None when it fits, or when nothing is served here)."""
    if hardware.accelerator == "cpu":
        return None
    memory = memory_per_device(hardware)
    if memory is None:
        return (f"no memory size known for accelerator {hardware.accelerator!r}: set "
                "execution.hardware.memory_gb so serving can be checked")
    f = fit(arch, s, memory, context)
    if f.ok:
        return None
    need = next((tp for tp in (2, 4, 8, 16, 32, 64) if tp > s["tp"] and fit(arch, s | {"tp": tp}, memory, context).ok),
                None)
    hint = f"tp={need}" if need else "more pipeline stages (pp) or a larger accelerator"
    if arch.is_moe and not s["expert_parallel"]:
        hint += " (MoE: expert_parallel: true spreads the experts)"
    return (f"the model ({arch.total_params / 1e9:.3g}B params) needs {f.weights_gb:.1f} GB of weights and "
            f"{f.kv_gb:.1f} GB of KV cache for one {context:,}-token sequence per GPU at tp={s['tp']}, "
            f"pp={s['pp']}; a {hardware.accelerator} holds {f.usable_gb:.0f} GB usable: use {hint}")
