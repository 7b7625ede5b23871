"""Running compiled jobs. Engines register a runner per job kind; `run_jobs` walks the plan in
order, skips cached jobs (same fingerprint as the last success) and marks each success."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qwen3_recipe.compiler.plan import Plan, PlannedJob

Runner = Callable[["PlannedJob", "Plan"], None]
RUNNERS: dict[str, Runner] = {}
# Engines import lazily: running a data job must not import torch, and planning imports none.
RUNNER_MODULES = {
    "data_prepare": "qwen3_recipe.data.runner:run_prepare",
    "data_dedup": "qwen3_recipe.data.dedup:run_dedup",
    "data_mix": "qwen3_recipe.data.mix:run_mix",
    "tokenizer": "qwen3_recipe.tokenizer.job:run_tokenizer",
    "pretrain": "qwen3_recipe.train.pretrain:run_pretrain",
    "sft": "qwen3_recipe.train.sft:run_sft",
    "fusion": "qwen3_recipe.train.sft:run_sft",
    "synth": "qwen3_recipe.synth.job:run_synth",
    "eval": "qwen3_recipe.evals.job:run_eval",
    "reasoning_rl": "qwen3_recipe.posttrain.trl_stage:run_reasoning_rl",
    "general_rl": "qwen3_recipe.posttrain.trl_stage:run_general_rl",
    "distill_teacher": "qwen3_recipe.posttrain.teacher_pass:run_teacher_pass",
    "distill_offpolicy": "qwen3_recipe.posttrain.trl_stage:run_distill_offpolicy",
    "distill_onpolicy": "qwen3_recipe.posttrain.trl_stage:run_distill_onpolicy",
    "quality_annotate": "qwen3_recipe.quality.annotate:run_annotate",
    "quality_label": "qwen3_recipe.quality.label:run_quality_label",
}


def runner_for(kind: str) -> Runner | None:
    if kind not in RUNNERS and kind in RUNNER_MODULES:
        import importlib
        module, _, name = RUNNER_MODULES[kind].partition(":")
        RUNNERS[kind] = getattr(importlib.import_module(module), name)
    return RUNNERS.get(kind)


def register(kind: str) -> Callable[[Runner], Runner]:
    def wrap(fn: Runner) -> Runner:
        RUNNERS[kind] = fn
        return fn
    return wrap


STARTED_FILE = "started.json"
KEEP_ON_CHANGE = {"job.json", "lowered.json", STARTED_FILE, "cache", "launch.slurm", "launch.requests.slurm",
                  "launch.serve.slurm", "submitted.json"}


def start_clean(plan: "Plan", p: "PlannedJob") -> None:
    """A job rerun under a new fingerprint starts clean: what an older version left (datatrove's
    completion markers, which would skip tasks; provenance shards; checkpoints) goes. The same
    fingerprint resumes. Kept: the job description and content-addressed caches."""
    import shutil

    from qwen3_recipe.safe_paths import inside_run_dir, job_folder
    folder = job_folder(plan.run_dir, p.job.dir)
    marker = folder / STARTED_FILE
    try:
        if json.loads(marker.read_text()).get("fingerprint") == p.job.fingerprint:
            return
    except (OSError, ValueError, AttributeError):
        pass
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.name not in KEEP_ON_CHANGE:
                if entry.is_symlink():  # the link goes, never what it points to
                    entry.unlink()
                    continue
                inside_run_dir(plan.run_dir, entry)
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"fingerprint": p.job.fingerprint}) + "\n")


def mark_done(plan: "Plan", p: "PlannedJob") -> None:
    from qwen3_recipe.compiler.plan import DONE_FILE
    from qwen3_recipe.safe_paths import job_folder
    folder = job_folder(plan.run_dir, p.job.dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DONE_FILE).write_text(json.dumps({"fingerprint": p.job.fingerprint,
                                                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")
    from qwen3_recipe.provenance.database import refresh_jobs
    refresh_jobs(plan.run_dir)  # the database was built before this marker


def failed_log(folder: Path) -> Path:
    """The task log holding the failure's traceback (the newest: a datatrove task's own is nearer the
    cause), else the job's log (job_log.py), which has the traceback of what failed in this process."""
    logs = folder / "logs"
    failed = [f for f in logs.rglob("*.log") if "Traceback" in f.read_text(errors="replace")] \
        if logs.is_dir() else []
    from qwen3_recipe.job_log import LOG_FILE
    return max(failed, key=lambda f: f.stat().st_mtime) if failed else folder / LOG_FILE


def run_in_log(runner: Runner, plan: "Plan", p: "PlannedJob", verbose: bool) -> None:
    """The runner with the engines' output in the job's log, and the traceback of a failure there too
    (the terminal gets one line)."""
    from qwen3_recipe.errors import PhaseDone
    from qwen3_recipe.job_log import LOG_FILE, job_output
    from qwen3_recipe.safe_paths import job_folder
    with job_output(job_folder(plan.run_dir, p.job.dir) / LOG_FILE, verbose):
        try:
            runner(p, plan)
        except PhaseDone:
            raise
        except BaseException:
            import traceback
            traceback.print_exc(file=sys.__stderr__)  # fd 2: the log
            raise


def run_jobs(plan: "Plan", jobs: list["PlannedJob"], debug: bool = False, verbose: bool = False) -> int:
    """Run `jobs` in order; stop at the first failure with a one-line cause and where the logs are
    (finished jobs keep their outputs and done markers, so a rerun resumes after them). Each job's
    engine output goes to its `job.log` (and, verbose, to the terminal too)."""
    from qwen3_recipe.console import console
    from qwen3_recipe.errors import PhaseDone
    con = console()
    todo = [p for p in jobs if p.status != "cached"]
    if not todo:
        from qwen3_recipe.provenance.database import ensure_database
        ensure_database(plan.run_dir)  # a deleted or damaged database comes back from the shards
        con.print(f"[green]nothing to do[/]: all {len(jobs)} selected jobs are up to date in {plan.run_dir}/")
        return 0
    for p in jobs:
        if p.status == "cached":
            con.print(f"[dim]skip {p.job.name} (cached)[/]")
            continue
        runner = runner_for(p.job.kind)
        if runner is None:  # not a success: nothing after it can run either
            con.print(f"[red]cannot run[/] {p.job.name}: no engine runs '{p.job.kind}' jobs in this version; "
                      f"compiled jobs are in {plan.run_dir}/jobs/")
            return 1
        con.rule(f"{p.job.name} ({p.job.kind})")
        started = time.time()
        try:
            start_clean(plan, p)  # before the log opens: a new fingerprint starts a new log
            run_in_log(runner, plan, p, verbose)
        except PhaseDone as part:  # a Slurm job's part of it: a later Slurm job finishes it
            con.print(f"[green]done[/] {p.job.name}'s part: {part}")
            continue
        except Exception as exc:
            from qwen3_recipe.errors import RecipeError
            if debug or isinstance(exc, RecipeError):
                raise
            con.print(f"[red]failed[/] {p.job.name}: {type(exc).__name__}: {exc}\n"
                      f"  log: {failed_log(plan.run_dir / p.job.dir)}  (rerun with --debug for a traceback)",
                      soft_wrap=True)  # a line a log search or a terminal can copy whole
            return 1
        mark_done(plan, p)
        con.print(f"[green]done[/] {p.job.name} in {time.time() - started:.1f}s")
    evals = [p.job for p in jobs if p.job.kind == "eval"]
    if len(evals) > 1:
        from qwen3_recipe.evals.job import print_summary
        print_summary(plan, evals)
    return 0
