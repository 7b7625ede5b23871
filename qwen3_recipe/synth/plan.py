"""The generation plan of a `synth.<job>`: what `compile` writes as its lowered.json and the only
thing `run_synth` reads. Engine and model, per mode the requests' count, length, thinking budget,
soft-switch suffix and sampling (the Qwen3 report's per-mode defaults filled in, so the file says
what vLLM is asked for), the prompts, and how samples are judged."""

from __future__ import annotations

from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.launch.settings import executor_settings
from qwen3_recipe.synth.sampling import FLAGS, SamplingParams


def mode_sampling(sampling: dict, mode: str) -> dict:
    """A job's sampling with the mode's defaults filled in (max_tokens is per request, not here)."""
    given = {k: v for k, v in sampling.items() if k != "seed"}
    resolved = SamplingParams(**given).resolved(mode)
    return {"temperature": resolved.temperature, "top_p": resolved.top_p, "top_k": resolved.top_k,
            "min_p": resolved.min_p, "seed": sampling.get("seed")}


def generation_plan(p: PlannedJob, plan: Plan) -> dict:
    from qwen3_recipe.serving import keyed_model, serving_of
    from qwen3_recipe.synth.job import teacher_dir, teacher_id
    cfg = p.job.config["job"]
    modes = ["think", "no_think"] if cfg["mode"] == "both" else [cfg["mode"]]
    switch = cfg["mode"] == "both" and cfg.get("soft_switch", True)  # the flag trains the /think, /no_think switch
    serving = serving_of(plan.loaded.recipe, p.job.name)
    return {
        "engine": {"kind": cfg["engine"], "model": str(teacher_dir(plan, cfg["teacher"])),
                   "model_id": keyed_model(teacher_id(plan, cfg["teacher"]), serving),
                   "server_url": cfg.get("server_url"),
                   # where requests go (qwen3_recipe/serving.py): not fingerprinted, the dataset is the same
                   "serving": serving,
                   "executor": executor_settings(plan, p.job.name)},  # where served tasks run (local, Ray)
        "prompts": {"dataset": cfg["prompts"], "limit": cfg["limit"]},
        "modes": {mode: {"n": cfg["samples_per_prompt"], "max_tokens": cfg["max_tokens"],
                         "thinking_budget": cfg["thinking_budget"] if mode == "think" else None,
                         "suffix": FLAGS[mode] if switch else "", "sampling": mode_sampling(cfg["sampling"], mode)}
                  for mode in modes},
        "judge": {"filters": cfg["filters"], "verifier": cfg.get("verifier"), "keep_per_prompt": cfg["keep_per_prompt"],
                  "majority_vote": cfg["majority_vote"], "decontaminate": bool(p.job.config.get("decontamination")),
                  # the n-gram settings the prompts and samples are checked with (the run's index: data/decont_index.py)
                  "decontamination": p.job.config.get("decontamination"),
                  # how model-written code is isolated (verify/isolation.py): policy, not outcome, so unfingerprinted
                  "sandbox": plan.loaded.recipe.execution.sandbox},
        "multi_turn_share": cfg.get("multi_turn_share", 0.0),
        "seed": p.job.config["seed"],
    }


def eval_plan(p: PlannedJob, plan: Plan) -> dict:
    """An `eval.<stage>`'s lowered.json: the stage's export answering each benchmark in each
    (mode, thinking budget) setting, k samples, per-mode sampling resolved; the judge if any."""
    from qwen3_recipe.serving import keyed_model, serving_of
    from qwen3_recipe.synth.job import teacher_dir, teacher_id
    ev, stage = p.job.config["evals"], p.job.config["stage"]
    serving = serving_of(plan.loaded.recipe, p.job.name)
    model = {"stage": stage}
    settings = []  # no-think once; think at each budget of the sweep (or unlimited)
    for mode in ev["modes"]:
        budgets = (ev["thinking_budgets"] or [None]) if mode == "think" else [None]
        settings += [{"mode": mode, "thinking_budget": b} for b in budgets]
    return {
        "engine": {"kind": "vllm", "model": str(teacher_dir(plan, model)),
                   "model_id": keyed_model(teacher_id(plan, model), serving),
                   "serving": serving,  # where requests go: not fingerprinted (but its engine arguments)
                   "executor": executor_settings(plan, p.job.name)},
        "benchmarks": {b: {"verifier": plan.loaded.catalogs.evals[b].spec.verifier, "limit": ev["limit"]}
                       for b in ev["benchmarks"]},
        "settings": [s | {"sampling": mode_sampling(ev["sampling"], s["mode"])} for s in settings],
        "samples": ev["samples"], "max_tokens": ev["max_tokens"],
        "judge": ev.get("judge"), "stage": stage, "seed": p.job.config["seed"],
        "sandbox": plan.loaded.recipe.execution.sandbox,  # code benchmarks' isolation (verify/isolation.py)
    }
