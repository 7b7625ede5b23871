"""Synthetic reasoning data end to end with real vLLM (CPU) and the shipped tiny teacher: prompts
-> samples (think, no-think, thinking budget) -> math-verify -> rejection sampling -> a chat
dataset the SFT stage reads, every sample's fate in provenance; a killed job resumes to the same
dataset, exactly once."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, query, run_cli
from test_slurm import cluster  # noqa: F401  (the fake Slurm commands)

pytest.importorskip("vllm")
pytestmark = pytest.mark.slow

TEACHER = REPO / "tests" / "assets" / "tiny-teacher"
SETS = [f"synth.jobs.cot_coldstart.teacher={{path: {TEACHER}}}", "synth.jobs.cot_coldstart.prompts=tiny_prompts",
        "synth.jobs.cot_coldstart.limit=24",
        "synth.jobs.cot_coldstart.samples_per_prompt=4", "synth.jobs.cot_coldstart.keep_per_prompt=2",
        "synth.jobs.cot_coldstart.mode=both", "synth.jobs.cot_coldstart.thinking_budget=24",
        "synth.jobs.cot_coldstart.max_tokens=160"]


def synth_args(run: Path) -> list[str]:
    args = ["synth", "recipes/tiny.yaml", "-o", str(run), "--job", "cot_coldstart"]
    for s in SETS:
        args += ["--set", s]
    return args


def dataset(run: Path):
    import pyarrow.parquet as pq
    return pq.read_table(run / "jobs" / "synth.cot_coldstart" / "dataset" / "train.parquet").to_pylist()


@pytest.fixture(scope="module")
def synth_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("synth") / "run"
    proc = run_cli(*synth_args(run), timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run.parent / "terminal.txt").write_text(proc.stdout + proc.stderr)
    return run


def test_dataset_holds_verified_samples_of_both_modes(synth_run):
    rows = dataset(synth_run)
    assert rows, "the teacher gets some prompts right"
    assert {r["mode"] for r in rows} == {"think", "no_think"}
    for r in rows:
        user, assistant = r["messages"]
        assert user["role"] == "user" and assistant["role"] == "assistant"
        assert r["verified"] and "\\boxed{" in assistant["content"]
        assert user["content"].endswith("/think" if r["mode"] == "think" else "/no_think")
        assert (assistant["reasoning_content"] != "") == (r["mode"] == "think")
    # up to keep_per_prompt per prompt and mode
    per = {}
    for r in rows:
        per[(r["prompt_id"], r["mode"])] = per.get((r["prompt_id"], r["mode"]), 0) + 1
    assert max(per.values()) <= 2


# what vLLM, torch and transformers print when an engine starts on CPU (ENGINES.md), and tqdm bars
ENGINE_LINE = re.compile(r"WARNING|Warning|already registered|NUMA|tcmalloc|libiomp|Loading safetensors|Triton|"
                         r"it/s\]|\(MainProcess pid=|INFO \d\d-\d\d")


def test_the_terminal_shows_our_lines_and_the_job_log_holds_the_engines(synth_run):
    terminal = (synth_run.parent / "terminal.txt").read_text()
    noisy = [line for line in terminal.splitlines() if ENGINE_LINE.search(line)]
    assert noisy == [], noisy[:10]
    assert "done synth.cot_coldstart" in terminal
    log = (synth_run / "jobs" / "synth.cot_coldstart" / "job.log").read_text()
    engine_lines = [line for line in log.splitlines() if ENGINE_LINE.search(line)]
    assert len(engine_lines) > 5, log[-2000:]   # vLLM's start-up, every line of it, is kept


def test_provenance_answers_acceptance_and_budget_questions(synth_run):
    kept_prompts = query(synth_run, "select count(*) from prompts where decision = 'kept'")[0][0]
    dropped = query(synth_run, "select reason, details from prompts where decision = 'dropped'")
    # tiny_prompts holds an item of evals/tiny_arith: decontamination drops it, with its evidence
    assert all(r == "contaminated" and "tiny_arith" in d for r, d in dropped) and kept_prompts + len(dropped) == 24
    total = query(synth_run, "select count(*) from samples")[0][0]
    assert total == kept_prompts * 2 * 4   # every sample recorded, kept or not
    rates = query(synth_run, "select source, mode, acceptance_rate from acceptance order by mode")
    assert {r[1] for r in rates} == {"think", "no_think"} and all(0 < r[2] < 1 for r in rates)
    reasons = dict(query(synth_run, "select reason, count(*) from samples where decision = 'dropped' group by all"))
    assert reasons and set(reasons) <= {"wrong_answer", "no_answer", "unclosed_think", "truncated", "repetition",
                                        "language_mix", "duplicate", "over_keep", "contaminated", "not_verified"}
    cut = query(synth_run, "select mode, thinking_tokens, cut_at from samples where budget_cut")
    assert all(m == "think" and t <= 24 for m, t, _ in cut)
    assert query(synth_run, "select count(*) from samples where mode = 'no_think' and budget_cut")[0][0] == 0


def test_killed_generation_resumes_exactly_once(synth_run, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "qwen3_recipe.cli", *synth_args(run)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    cache = run / "jobs" / "synth.cot_coldstart" / "cache"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and not list(cache.glob("*.jsonl")):
        time.sleep(0.2)
    assert proc.poll() is None, "generation finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    shards = len(list(cache.glob("*.jsonl")))
    assert 0 < shards < 2   # 48 requests in batches of 32: killed inside the second batch
    again = run_cli(*synth_args(run), timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert dataset(run) == dataset(synth_run)
    assert query(run, "select count(*), count(distinct sample_id) from samples") == \
        query(synth_run, "select count(*), count(distinct sample_id) from samples")


@pytest.mark.extended  # in `make test-all`, not CI: CI keeps the served kill-and-rerun case below (a task killed
# alone: the job fails naming it, the rerun gives the same dataset once) and the in-process resume above
def test_served_on_two_vllm_servers_killed_and_resumed_gives_the_same_dataset(synth_run, tmp_path):
    """serving {type: vllm, tasks: 2}: datatrove's InferenceRunner starts a real vLLM server per task
    (each its shard of the requests); killed with SIGKILL (job, tasks and servers) once some
    requests have landed, the rerun generates only the rest, and the dataset and provenance equal
    the in-process run's (same seeds, same samples), each sample once."""
    run = tmp_path / "run"
    args = [*synth_args(run), "--set", "synth.jobs.cot_coldstart.serving={type: vllm, tasks: 2}"]
    proc = subprocess.Popen([sys.executable, "-m", "qwen3_recipe.cli", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    served = run / "jobs" / "synth.cot_coldstart" / "served"

    def landed() -> int:
        return sum(f.read_bytes().count(b"\n") for f in served.glob("*/output/*.jsonl"))

    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and not landed():
        time.sleep(0.2)
    assert proc.poll() is None, "generation finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = landed()
    assert 0 < first < 48  # 24 prompts x 2 modes
    again = run_cli(*args, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    requests = [line for f in served.glob("*/requests.jsonl") for line in f.read_text().splitlines()]
    assert 0 < len(requests) <= 48 - first  # only what the killed attempt had not answered
    assert dataset(run) == dataset(synth_run)
    every = "select sample_id, mode, decision, reason, budget_cut, tokens, text from samples order by sample_id"
    assert query(run, every) == query(synth_run, every)
    assert query(run, "select count(*), count(distinct sample_id) from samples") == \
        query(synth_run, "select count(*), count(distinct sample_id) from samples")
    assert query(run, "select prompt_id, decision from prompts order by 1") == \
        query(synth_run, "select prompt_id, decision from prompts order by 1")


def test_served_on_a_fake_slurm_cluster_gives_the_same_dataset(synth_run, tmp_path, cluster):
    """`run --executor slurm` of the served synth job on the fake cluster (every Slurm job run at
    submission, each array task in turn: a vLLM server each): requests, a 2-task array, the job;
    the dataset equals the in-process run's."""
    env, log = cluster
    (tmp_path / "job-output").mkdir()
    env = env | {"SBATCH_RUN": str(tmp_path / "job-output")}
    run = tmp_path / "run"
    args = ["run", "recipes/tiny.yaml", "-o", str(run), "--only", "synth.cot_coldstart", "--executor", "slurm",
            "--set", "synth.jobs.cot_coldstart.serving={type: vllm, tasks: 2}"]
    for s in SETS:
        args += ["--set", s]
    proc = run_cli(*args, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(list(log.iterdir())) == 3 and (run / "jobs/synth.cot_coldstart/done.json").exists()
    outputs = sorted(f.name for f in (run / "jobs/synth.cot_coldstart/served").glob("slurm-*/output/*.jsonl"))
    assert outputs == ["00000.jsonl", "00001.jsonl"]  # each array task answered its shard
    assert dataset(run) == dataset(synth_run)
    every = "select sample_id, decision, reason, text from samples order by sample_id"
    assert query(run, every) == query(synth_run, every)


def test_a_server_that_cannot_start_fails_the_job_naming_the_task_and_its_server_log(tmp_path):
    """A task's vLLM server that exits at start-up is retried (datatrove's policy: once); then the job
    fails in one line naming the task, its server log and the server's own error."""
    run = tmp_path / "run"
    args = [*synth_args(run), "--set", "synth.jobs.cot_coldstart.limit=2",
            "--set", "synth.jobs.cot_coldstart.serving={type: vllm, extra_args: {no-such-flag: 1}}"]
    proc = run_cli(*args, timeout=600)
    assert proc.returncode != 0
    line = next(x for x in proc.stdout.splitlines() if x.startswith("failed synth.cot_coldstart"))
    assert "task 0: server log " in line and "server_rank_00000_node_" in line, line
    assert "unrecognized arguments: --no-such-flag=1" in line, line
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (run / "jobs" / "synth.cot_coldstart" / "done.json").exists()


def test_the_served_clients_budget_check_reads_vllms_source_and_agrees_with_importing_it():
    """A served job's own process does not import vLLM (its servers do; ~7 s before they could start)."""
    code = ("import sys; from qwen3_recipe.synth.budget import native_budget_declared as d; "
            "print(d(), 'vllm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    from qwen3_recipe.synth.budget import native_budget_supported
    assert out.stdout.split() == [str(native_budget_supported()), "False"]


def command_line(proc) -> str:
    """A process's command line; "" for one that has just exited (a zombie, or gone)."""
    import psutil
    try:
        return " ".join(proc.cmdline())
    except (psutil.ZombieProcess, psutil.NoSuchProcess):
        return ""


def test_a_task_killed_alone_fails_the_job_naming_it_and_its_server_goes_too(synth_run, tmp_path):
    """One of 2 local tasks killed with SIGKILL (an OOM kill, say) while the other runs: the job fails
    naming that task instead of waiting forever (datatrove's process pool would), its orphaned vLLM
    server is killed, and a rerun completes the dataset of the in-process run, each sample once."""
    import psutil
    run = tmp_path / "run"
    args = [*synth_args(run), "--set", "synth.jobs.cot_coldstart.serving={type: vllm, tasks: 2}"]
    proc = subprocess.Popen([sys.executable, "-m", "qwen3_recipe.cli", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    served = run / "jobs" / "synth.cot_coldstart" / "served"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and not any(
            f.stat().st_size for f in served.glob("*/output/*.jsonl")):
        time.sleep(0.2)
    job = psutil.Process(proc.pid)
    tasks = [p for p in job.children() if "spawn_main" in command_line(p)]
    assert len(tasks) == 2, [p.cmdline() for p in job.children()]
    servers = [c for t in tasks for c in t.children(recursive=True) if "api_server" in command_line(c)]
    tasks[0].kill()
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode != 0
    line = " ".join(out.split())
    assert "exited with code -9" in line and "server log" in line, out[-2000:]
    time.sleep(2)
    assert not [s for s in servers if s.is_running() and s.status() != psutil.STATUS_ZOMBIE]  # none left behind
    again = run_cli(*args, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert dataset(run) == dataset(synth_run)
    assert query(run, "select count(*), count(distinct sample_id) from samples") == \
        query(synth_run, "select count(*), count(distinct sample_id) from samples")
