"""Slurm lowering of the generation jobs (synth, quality.annotate, eval, a distillation teacher's
pass). Served by vLLM servers, a job is three Slurm jobs chained `afterok`: `requests` (one task:
the requests not yet answered, written once, in a folder of this submission's own), `serve` (an
array of `serving.tasks` tasks, each with `gpus_per_task` GPUs of one node, running datatrove's
InferenceRunner on its shard: a vLLM server with the declared tp/dp/pp/EP), and the job itself (the
outputs read into the request cache, the dataset assembled, the done marker written). Each runs this
package's `run --only <job> --in-allocation` with the part it does exported (synth/phases.py,
synth/served.py). In-process serving is one job with the GPUs of its one model copy."""

from __future__ import annotations

from typing import Any

from qwen3_recipe.compiler.lowerers import load_lowered
from qwen3_recipe.compiler.plan import Plan, PlannedJob
from qwen3_recipe.launch.sbatch import SCRIPT, sbatch, sbatch_script
from qwen3_recipe.synth.phases import ATTEMPT_ENV


def lowered_serving(plan: Plan, p: PlannedJob) -> dict[str, Any]:
    """The serving a generation job was compiled with."""
    lowered = load_lowered(p, plan)
    return lowered["serving"] if p.job.kind == "quality_annotate" else lowered["engine"]["serving"]


def server_note(s: dict[str, Any]) -> str:
    """What each array task's server is started with, beside the engine's own settings."""
    flags = [f"--{name}-parallel-size={s[key]}" for key, name in (("tp", "tensor"), ("dp", "data"),
                                                                  ("pp", "pipeline")) if s[key] > 1]
    flags += ["--enable-expert-parallel"] * s["expert_parallel"]
    flags += [f"--max-num-seqs={s['max_concurrent']}"] * bool(s["max_concurrent"])
    flags += [f"--{k}" if v is True else f"--{k}={v}" for k, v in s["extra_args"].items()]
    return f"serving: {s['type']} server per task, {s['gpus_per_task']} GPUs: {' '.join(flags) or '(defaults)'}"


def submit_generation_job(plan: Plan, p: PlannedJob, after: list[str]) -> list[tuple[str, str]]:
    """(part, Slurm job id) of each Slurm job submitted for `p`, the first after `after`."""
    s = lowered_serving(plan, p)
    folder = plan.run_dir / p.job.dir
    if s["type"] == "in_process":
        return [("job", sbatch(folder / SCRIPT, sbatch_script(plan, p, gpus=s["gpus_per_task"]), after))]
    gpus = s["gpus_per_task"]
    requests = sbatch(folder / "launch.requests.slurm", sbatch_script(plan, p, phase="requests"), after)
    # this submission's folder (served/slurm-<requests job id>): an earlier one still queued keeps its own
    attempt = {ATTEMPT_ENV: requests}
    serve = sbatch(folder / "launch.serve.slurm", sbatch_script(plan, p, phase="serve", array=s["tasks"], gpus=gpus,
                                                              note=server_note(s), env=attempt), [requests])
    job = sbatch(folder / SCRIPT, sbatch_script(plan, p, phase="assemble", env=attempt), [serve])
    return [("requests", requests), ("serve", serve), ("job", job)]
