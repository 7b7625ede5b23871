"""Checks of each generation job's serving, on the validated recipe: settings that would change
nothing are refused, and the teacher must fit the declared GPUs (weights + the KV cache of one
sequence at the job's context, on `execution.hardware`). Located at the key that set the value:
the job's own `serving` or `execution.serving`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qwen3_recipe.errors import Problem
from qwen3_recipe.presets import Arch, resolve_arch
from qwen3_recipe.recipe.yaml_source import SourceMap
from qwen3_recipe.serving import PROMPT_ALLOWANCE, fit_problem, job_serving


def teacher_arch(ref: Any, student: Arch) -> Arch | None:
    """The teacher's architecture: a stage's is the recipe's model; else its preset/arch, else a
    local folder's config.json; None when only a hub id names it."""
    if ref.stage:
        return student
    if ref.preset or ref.arch:
        return resolve_arch(ref.preset, ref.arch.model_dump() if ref.arch else None)
    config = Path(ref.path) / "config.json" if ref.path else None
    if config is not None and config.is_file():
        try:
            return Arch.from_hf_config(json.loads(config.read_text()))
        except (ValueError, KeyError, TypeError):
            return None
    return None


def serving_problems(recipe: Any, smap: SourceMap, student: Arch) -> list[Problem]:
    problems: list[Problem] = []
    for name, job in recipe.synth.jobs.items():
        own = job.serving.model_fields_set if job.serving is not None else set()

        def err(key: str, message: str, hint: str | None = None) -> None:
            path = ("synth", "jobs", name, "serving", key) if key in own else ("execution", "serving", key)
            problems.append(Problem(message, ".".join(path), smap.find(path) or smap.find(path[:-1]), hint))

        s = job_serving(recipe.execution, job.serving)
        if s["type"] == "endpoint" and not s["endpoint_url"]:
            err("type", "type endpoint needs endpoint_url (the running server's http://host:port)")
        if s["type"] != "endpoint" and s["endpoint_url"]:
            err("endpoint_url", f"an endpoint_url with type {s['type']} is never called", "use type: endpoint")
        if s["type"] == "endpoint":
            for key in ("tp", "dp", "pp", "gpus_per_task", "max_model_len"):
                default = None if key in ("gpus_per_task", "max_model_len") else 1
                if key in own and getattr(job.serving, key) != default:
                    err(key, "describes a server this job does not start (type endpoint)")
        if s["type"] == "in_process":
            for key, why in (("tasks", "one task: the job's own process"), ("dp", "one model copy")):
                if s[key] > 1:
                    err(key, f"in-process serving is {why}", "use type: vllm for servers per task")
        if s["gpus_per_task"] < s["tp"] * s["dp"] * s["pp"]:
            err("gpus_per_task", f"{s['gpus_per_task']} GPUs cannot hold tp x dp x pp = "
                f"{s['tp'] * s['dp'] * s['pp']}")
        if s["type"] != "in_process" and job.engine != "vllm":
            path = ("synth", "jobs", name, "engine")
            problems.append(Problem(f"engine {job.engine} runs in process; serving type {s['type']} sends "
                                    "requests to vLLM servers", ".".join(path), smap.find(path),
                                    "use engine: vllm (the default)"))
        if s["type"] == "in_process" and job.engine != "vllm":
            for key in ("tp", "pp", "expert_parallel", "max_concurrent", "max_model_len", "extra_args"):
                if key in own or (job.serving is None and key in recipe.execution.serving.model_fields_set):
                    err(key, f"engine {job.engine} has no such setting: it applies to vLLM (engine: vllm)")
        arch = teacher_arch(job.teacher, student)
        if arch is None:
            continue
        if s["expert_parallel"] and not arch.is_moe:
            err("expert_parallel", "the teacher is dense: it has no experts to spread")
        context = s["max_model_len"] or job.max_tokens + PROMPT_ALLOWANCE
        problem = fit_problem(arch, s, recipe.execution.hardware, context)
        if problem:
            err("tp" if "tp" in own or job.serving is None else "type", f"synth.{name}'s teacher: {problem}")
    return problems
