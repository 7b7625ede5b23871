"""Checks of each generation job's serving, on the validated recipe: settings that would change
nothing are refused, and the teacher must fit the declared GPUs (weights + the KV cache of one
sequence at the job's context, on `execution.hardware`). Located at the key that set the value:
the job's own `serving` or `execution.serving`."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from qwen3_recipe.errors import Problem
from qwen3_recipe.presets import Arch, resolve_arch
from qwen3_recipe.recipe.yaml_source import SourceMap
from qwen3_recipe.serving import PROMPT_ALLOWANCE, TEACHER_SUFFIX, fit_problem, job_serving


def teacher_arch(ref: Any, student: Arch) -> Arch | None:
    """The teacher's architecture: a stage's is the recipe's model; else its preset/arch, else a
    local folder's config.json; None when only a hub id names it."""
    if ref.stage:
        return student
    if ref.preset or ref.arch:
        try:
            return resolve_arch(ref.preset, ref.arch.model_dump() if ref.arch else None)
        except ValueError:  # an unknown preset: the recipe checks name it where it is written
            return None
    config = Path(ref.path) / "config.json" if ref.path else None
    if config is not None and config.is_file():
        try:
            return Arch.from_hf_config(json.loads(config.read_text()))
        except (ValueError, KeyError, TypeError):
            return None
    return None


def generation_jobs(recipe: Any) -> list[tuple[str, tuple[str, ...], Any, Any, str, int]]:
    """(job name, recipe path of its serving's owner, its own serving, its model, engine, max_tokens)
    of every job that generates: synth jobs, the annotator of `data.quality`, the evaluated stages,
    off-policy distillation's teacher."""
    out = [(f"synth.{name}", ("synth", "jobs", name), job.serving, job.teacher, job.engine, job.max_tokens)
           for name, job in recipe.synth.jobs.items()]
    q = recipe.data.quality
    if q is not None:
        out.append(("quality.annotate", ("data", "quality"), q.serving, q.annotator, q.engine, q.max_tokens))
    out += [(f"posttrain.{name}{TEACHER_SUFFIX}", ("posttrain", "stages", name), stage.serving, stage.teacher, "vllm",
             stage.max_tokens) for name, stage in recipe.posttrain.stages.items() if stage.type == "distill_offpolicy"]
    ev = recipe.evals
    if ev.benchmarks:
        # every evaluated stage is the recipe's own model; an eval job uses in-process-capable vLLM
        out.append(("eval", ("evals",), ev.serving, SimpleNamespace(stage="(evaluated)"), "vllm", ev.max_tokens))
    return out


def serving_problems(recipe: Any, smap: SourceMap, student: Arch) -> list[Problem]:
    problems: list[Problem] = []
    for name, owner, job_serving_, model, engine, max_tokens in generation_jobs(recipe):
        own = job_serving_.model_fields_set if job_serving_ is not None else set()

        def err(key: str, message: str, hint: str | None = None) -> None:
            path = (*owner, "serving", key) if key in own else ("execution", "serving", key)
            problems.append(Problem(message, ".".join(path), smap.find(path) or smap.find(path[:-1]), hint))

        s = job_serving(recipe.execution, job_serving_)
        if s["type"] == "in_process":
            for key, why in (("tasks", "one task: the job's own process"), ("dp", "one model copy")):
                if s[key] > 1:
                    err(key, f"in-process serving is {why}", "use type: vllm for servers per task")
        copies = s["tp"] * s["dp"] * s["pp"]
        if s["gpus_per_task"] != copies:
            err("gpus_per_task", f"{s['gpus_per_task']} GPUs per task for tp x dp x pp = {copies}: "
                + ("they cannot hold it" if s["gpus_per_task"] < copies else "the rest would stay idle"),
                "leave gpus_per_task unset (tp x dp x pp)")
        nodes = recipe.execution.slurm.gpus_per_node
        if recipe.execution.executor == "slurm" and s["type"] != "in_process" and s["gpus_per_task"] > nodes:
            err("tp", f"a task of {s['gpus_per_task']} GPUs spans nodes (execution.slurm.gpus_per_node: {nodes}): "
                "multi-node servers are not built yet", "fit tp x dp x pp in one node")
        if s["max_model_len"] and s["max_model_len"] <= max_tokens:
            err("max_model_len", f"{s['max_model_len']:,} tokens cannot hold {name}'s max_tokens ({max_tokens:,}) "
                "and a prompt")
        if s["type"] != "in_process" and engine != "vllm":
            path = (*owner, "engine")
            problems.append(Problem(f"engine {engine} runs in process; serving type {s['type']} sends "
                                    "requests to vLLM servers", ".".join(path), smap.find(path),
                                    "use engine: vllm (the default)"))
        if s["type"] == "in_process" and engine != "vllm":
            for key in ("tp", "pp", "expert_parallel", "max_concurrent", "max_model_len", "extra_args"):
                if key in own or (job_serving_ is None and key in recipe.execution.serving.model_fields_set):
                    err(key, f"engine {engine} has no such setting: it applies to vLLM (engine: vllm)")
        arch = teacher_arch(model, student)
        if arch is None:
            continue
        if s["expert_parallel"] and not arch.is_moe:
            err("expert_parallel", f"{name}'s model is dense: it has no experts to spread")
        context = s["max_model_len"] or max_tokens + PROMPT_ALLOWANCE
        problem = fit_problem(arch, s, recipe.execution.hardware, context)
        if problem:
            err("tp" if "tp" in own or job_serving_ is None else "type", f"{name}'s model: {problem}")
    return problems


def in_process_teacher_warnings(recipe: Any, student: Arch) -> list[str]:
    """Distillation stages load their teacher on the trainer's device (held-out KL; on-policy scoring):
    one line per stage whose teacher's bf16 weights alone exceed one accelerator. Its teacher pass is
    served (above); the stage itself does not spread the teacher yet."""
    from qwen3_recipe.serving import BYTES_PER_PARAM, memory_per_device
    hw = recipe.execution.hardware
    memory = memory_per_device(hw)
    if hw.accelerator == "cpu" or not memory:
        return []
    out = []
    for name, stage in recipe.posttrain.stages.items():
        arch = teacher_arch(stage.teacher, student) if stage.type.startswith("distill") else None
        if arch is not None and arch.total_params * BYTES_PER_PARAM / 1e9 > memory:
            out.append(f"posttrain.{name} loads its teacher ({arch.total_params / 1e9:.3g}B params, "
                       f"{arch.total_params * BYTES_PER_PARAM / 1e9:.0f} GB in bf16) on one {hw.accelerator} "
                       f"({memory:.0f} GB) to score the student: it cannot run there until distillation "
                       "spreads its teacher (multi-device RL and distillation are not built)")
    return out
