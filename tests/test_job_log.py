"""A job's engine output goes to its `job.log`, ours to the terminal (qwen3_recipe/job_log.py): every
way an engine writes (Python stdout/stderr, raw fd writes like C++ TORCH_WARN, warnings, logging,
child processes, datatrove's worker processes) is checked in a fresh process, as the CLI runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import REPO

SCRIPT = textwrap.dedent("""
    import logging, os, subprocess, sys, warnings
    from pathlib import Path
    from qwen3_recipe.console import console
    from qwen3_recipe.job_log import job_output
    log, verbose = Path(sys.argv[1]), sys.argv[2] == "1"
    logging.basicConfig()
    console().print("ours before")
    with job_output(log, verbose):
        print("engine py stdout")
        print("engine py stderr", file=sys.stderr)
        os.write(2, b"engine raw fd2\\n")
        warnings.warn("engine warning")
        logging.getLogger("engine").warning("engine logging")
        subprocess.run(["sh", "-c", "echo engine child; echo engine child err >&2"])
        console().print("ours during")
        console(stderr=True).print("ours on stderr")
    console().print("ours after")
""")
ENGINE = ["engine py stdout", "engine py stderr", "engine raw fd2", "engine warning", "engine logging",
          "engine child", "engine child err"]


def run_script(tmp_path: Path, verbose: bool) -> tuple[subprocess.CompletedProcess, str]:
    script, log = tmp_path / "s.py", tmp_path / "job.log"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(log), "1" if verbose else "0"], capture_output=True,
                          text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc, log.read_text()


def test_engine_output_goes_to_the_log_and_ours_to_the_terminal(tmp_path):
    proc, log = run_script(tmp_path, verbose=False)
    assert proc.stdout.split() == "ours before ours during ours after".split()
    assert proc.stderr.strip() == "ours on stderr"
    for line in ENGINE:
        assert line in log, line
    assert "ours" not in log


def test_verbose_shows_engine_output_too_and_still_logs_it(tmp_path):
    proc, log = run_script(tmp_path, verbose=True)
    for line in ENGINE:
        assert line in log and line in proc.stdout + proc.stderr, line
    assert "ours during" in proc.stdout and "ours" not in log


DATATROVE_SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from datatrove.pipeline.base import PipelineStep
    from qwen3_recipe.job_log import job_output
    from qwen3_recipe.launch.executors import LocalExecutor

    class Say(PipelineStep):
        def __init__(self, word):
            super().__init__()
            self.word = word
        def run(self, data, rank=0, world_size=1):
            print(f"{self.word} from task {rank}", flush=True)
            yield from data or []

    if __name__ == "__main__":  # the workers import this module
        root = Path(sys.argv[1])
        for job in ("first", "second"):
            with job_output(root / f"{job}.log"):
                LocalExecutor(pipeline=[Say(job)], tasks=2, workers=2, logging_dir=str(root / job)).run()
""")


def test_datatrove_workers_write_to_the_running_jobs_log(tmp_path):
    """datatrove's worker processes fork from a server the first job started, with its output: each
    job's workers must still write to that job's log."""
    script = tmp_path / "d.py"
    script.write_text(DATATROVE_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    first, second = (tmp_path / "first.log").read_text(), (tmp_path / "second.log").read_text()
    assert "first from task 0" in first and "first from task 1" in first and "second" not in first
    assert "second from task 0" in second and "second from task 1" in second and "first" not in second
    assert "from task" not in proc.stdout + proc.stderr


def test_a_failing_job_names_its_log_which_holds_the_traceback(tmp_path):
    from types import SimpleNamespace

    from qwen3_recipe.runners import failed_log, run_in_log

    def runner(p, plan):
        print("engine chatter before the failure")
        raise ValueError("the cause")

    job = SimpleNamespace(name="synth.x", dir="jobs/synth.x")
    (tmp_path / "jobs" / "synth.x").mkdir(parents=True)
    try:
        run_in_log(runner, SimpleNamespace(run_dir=tmp_path), SimpleNamespace(job=job), verbose=False)
    except ValueError:
        pass
    log = failed_log(tmp_path / "jobs" / "synth.x")
    assert log == tmp_path / "jobs" / "synth.x" / "job.log"
    text = log.read_text()
    assert "Traceback" in text and "ValueError: the cause" in text
