"""Issue 19: rollouts from servers of their own (`execution.rollout.servers`, posttrain/rollout_server.py).

- a vLLM rollout server samples from the weights trainer process 0 pushes through the stage's folder (its
  log-probabilities equal the pushed policy's, scored by torchtitan's model), reports vLLM's native thinking
  budget, processed log-probabilities and its dtype; another process's request waits for the weights version it
  counts, times out on a push never made, and is refused when the server is past it; a request without the
  stage's token, a weights path outside the folder and an engine error are answered with their reason; SIGTERM
  closes the server;
- a reasoning_rl stage in two trainer processes sharing one server (the transformers engine, as the other
  multi-process tests: fast and deterministic) gives exactly the rollouts, rewards and step metrics that the
  same stage gives with each process's own colocated engine, also when killed with SIGKILL mid-stage (its
  server goes with it) and resumed with a fresh server; no server outlives its stage;
- more servers than trainer processes is refused at execution.rollout.servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import pytest
from conftest import REPO, kill_when, metric, processes_of, query, rows_in, run_cli

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

TEACHER = REPO / "tests" / "assets" / "tiny-teacher"
RECIPE = "tests/assets/recipes/posttrain-rl.yaml"
STEPS, PROMPTS, GROUP = 4, 4, 4
ENV = {"QWEN3_RECIPE_ROLLOUT_ENGINE": "transformers", "OMP_NUM_THREADS": "1", "QWEN3_RECIPE_NPROC": "2",
       "CUDA_VISIBLE_DEVICES": ""}


@pytest.mark.slow
def test_a_vllm_rollout_server_samples_the_weights_pushed_to_it(tmp_path: Path) -> None:
    pytest.importorskip("vllm")
    from qwen3_recipe.launch.rollout_servers import start
    from qwen3_recipe.posttrain.policy import Policy
    from qwen3_recipe.posttrain.rollout_client import ServedRollouts
    from qwen3_recipe.posttrain.rollout_engine import logprobs_at_sampling_temperature, push_weights
    from qwen3_recipe.posttrain.rollouts import logprobs_of, sample_groups
    from qwen3_recipe.synth.budget import Job
    from qwen3_recipe.synth.prompts import Prompt
    from qwen3_recipe.synth.sampling import SamplingParams
    policy = Policy(TEACHER)
    with torch.no_grad():
        for p in policy.model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    prompt, folder = [Prompt("x", "t", "What is 3 + 4?", "7")], tmp_path / "rollout"
    sample = lambda engine: sample_groups(engine, prompt, step=0, seed=1, n=2, max_tokens=16,  # noqa: E731
                                          temperature=1.0)[0]
    with start(tmp_path, TEACHER, 64, "vllm", 1, 1, dict(os.environ)) as running:
        def client(rank: int, timeout: float = 3600, token: str = running.token) -> ServedRollouts:
            return ServedRollouts(running.urls, TEACHER, rank=rank, world=2, folder=folder, token=token,
                                  timeout=timeout)
        writer, other, impatient = client(0), client(1, timeout=120), client(1, timeout=2)
        assert writer.budget == "native" and logprobs_at_sampling_temperature(writer) and writer.dtype == "float32"
        before = sample(writer)  # weights version 0: the model the server started with
        push_weights(other, {})  # process 1 counts version 1 and waits for it when it samples ...
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(sample, other)
            time.sleep(1)
            assert not waiting.done()
            push_weights(writer, policy.hf_state_dict())  # ... which process 0 writes and the server loads
            after = waiting.result(timeout=60)
        assert not list(folder.glob("weights-*")), "a push left its file behind"
        for _ in range(2):
            push_weights(impatient, {})
        with pytest.raises(TimeoutError, match="weights version 2 was not pushed"):
            sample(impatient)  # a push process 0 never makes
        push_weights(other, {})
        push_weights(writer, policy.hf_state_dict())
        push_weights(writer, policy.hf_state_dict())
        with pytest.raises(RuntimeError, match="holds 3: the trainer processes are out of step"):
            sample(other)  # behind the server: refused, not served other weights
        for guess in ("guess", "gu\xe9ss"):  # (a header of any latin-1 text: a 403, not a dropped connection)
            with pytest.raises(RuntimeError, match="X-Rollout-Token"):
                client(1, token=guess)
        for name in ("../../model.safetensors", "weights-x/../../model.safetensors"):
            with pytest.raises(RuntimeError, match="weights come as a file in"):
                writer._call(running.urls[0], "/weights", {"name": name, "version": 4})
        with pytest.raises(RuntimeError, match="versions only go up"):
            writer._call(running.urls[0], "/weights", {"name": "weights-3.safetensors", "version": 3})
        beyond = asdict(Job([10 ** 9], SamplingParams(temperature=1.0, top_p=1.0, top_k=0, min_p=0.0), 4, [0]))
        with pytest.raises(RuntimeError, match=r"/complete: \w+Error"):  # the engine's error reaches the trainer
            writer._call(running.urls[0], "/complete", {"jobs": [beyond], "version": 3})
        assert len(sample(writer)) == 2  # and the server serves on
    [(server, log)] = running.procs
    assert server.returncode == 0, log.read_text()[-2000:]  # SIGTERM: it closed its engine and left
    assert "took weights version 3" in log.read_text()
    assert not list(folder.glob("server-*.url"))
    assert [r.response_ids for r in before] != [r.response_ids for r in after]
    for r in after:  # the server's log-probabilities are the pushed policy's
        assert torch.allclose(r.old_logps, logprobs_of(policy, [r.seq])[0], atol=1e-3)


def _stage(run: Path, *extra: str, background: bool = False, env: dict | None = None):
    stage = "posttrain.stages.reasoning_rl"
    sets = ["posttrain.stages.fusion=null", "posttrain.stages.general_rl=null", f"{stage}.steps={STEPS}",
            f"{stage}.batch_size={PROMPTS}", f"{stage}.group_size={GROUP}", f"{stage}.max_response_tokens=48", *extra]
    args = ["run", RECIPE, "-o", str(run), "--only", "posttrain", *(arg for x in sets for arg in ("--set", x))]
    if background:
        return subprocess.Popen([sys.executable, "-m", "qwen3_recipe.cli", *args], cwd=REPO,
                                env={**os.environ, **ENV, **(env or {})}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    return run_cli(*args, env=ENV | (env or {}), timeout=900)


@pytest.mark.slow
def test_a_stage_sampling_from_a_rollout_server_gives_the_colocated_rollouts(tmp_path: Path) -> None:
    """The served run is killed with SIGKILL mid-stage (its server and trainers die with it) and run again: it
    resumes from its checkpoint with a fresh server that takes the checkpoint's weights at its first push."""
    colocated, served = tmp_path / "colocated", tmp_path / "served"
    proc = _stage(colocated)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    folder = served / "jobs" / "posttrain.reasoning_rl"
    metrics = folder / "dump" / "metrics.jsonl"
    killed = _stage(served, "execution.rollout.servers=1", background=True)
    kill_when(killed, lambda: rows_in(metrics) >= 2, folder / "rollout", folder / "trl_spec.json")
    assert (folder / "rollout" / "server-0.url").exists()
    assert 2 <= len(metrics.read_text().splitlines()) < STEPS
    assert list((folder / "dump").glob("checkpoint-*")), "no TRL checkpoint to resume from"
    again = _stage(served, "execution.rollout.servers=1")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "Qwen3GRPOTrainer: resuming from checkpoint-" in (folder / "trl.log").read_text()
    steps = query(served, "select step, metric, count(*) from train_steps where stage = 'reasoning_rl' group by all")
    assert all(n == 1 for *_, n in steps) and {s for s, m, _ in steps if m == "heldout_reward"} == {0, STEPS}
    assert [json.loads(x)["step"] for x in metrics.read_text().splitlines()] == list(range(1, STEPS + 1))

    # process 0 writes each push once; the server takes it and the file goes
    assert "rollout server: took weights version 1" in (folder / "rollout" / "server-0.log").read_text()
    assert not list((folder / "rollout").glob("weights-*")) and not list((folder / "rollout").glob("*.url"))
    assert not (colocated / "jobs" / "posttrain.reasoning_rl" / "rollout").exists()
    assert not processes_of(folder / "rollout"), "a rollout server outlived its stage"

    sql = ("select step, prompt_id, sample_id, mode, tokens, reward, verdict, advantage, policy_version, text "
           "from rollouts where stage = 'reasoning_rl' order by sample_id")
    a, b = query(colocated, sql), query(served, sql)
    assert len(b) == STEPS * PROMPTS * GROUP and {r[0] for r in b} == set(range(1, STEPS + 1))  # each once
    assert {r[8] for r in b if r[0] > 1} == {r[0] - 1 for r in b if r[0] > 1}  # pushed every step
    assert [r[:7] + r[8:] for r in b] == [r[:7] + r[8:] for r in a]  # the same samples and verdicts
    assert [r[7] for r in b] == pytest.approx([r[7] for r in a], abs=1e-5)
    assert len({r[5] for r in b}) > 1
    for name in ("reward_mean", "loss", "grad_norm", "heldout_reward"):
        x, y = metric(colocated, "reasoning_rl", name), metric(served, "reasoning_rl", name)
        assert x.keys() == y.keys() and all(x[k] == pytest.approx(y[k], rel=1e-4, abs=1e-6) for k in x), name
    assert metric(served, "reasoning_rl", "grad_norm")[1] > 0

    refused = _stage(served, "execution.rollout.servers=3", f"posttrain.stages.reasoning_rl.steps={STEPS + 1}")
    assert refused.returncode != 0
    out = refused.stdout + refused.stderr
    assert "execution.rollout.servers" in out and "3 rollout servers for 2 trainer process(es)" in out, out[-2000:]
    assert "Traceback" not in out


@pytest.mark.slow
@pytest.mark.extended  # `make test-all` (CI time): the served path of a stage that would otherwise run in `run`
def test_one_trainer_process_with_a_server_runs_in_a_process_of_its_own(tmp_path: Path) -> None:
    """One process would run in the `run` process itself, which on a GPU machine sees the servers' GPUs too;
    with servers it is a process of its own, given only the trainers' GPUs."""
    run = tmp_path / "run"
    proc = _stage(run, "execution.rollout.servers=1", "posttrain.stages.reasoning_rl.steps=2",
                  env={"QWEN3_RECIPE_NPROC": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    folder = run / "jobs" / "posttrain.reasoning_rl"
    assert "trl_worker: process 0 of 1" in (folder / "trl.log").read_text()
    assert "took weights version 1" in (folder / "rollout" / "server-0.log").read_text()
    assert len(query(run, "select * from rollouts where stage = 'reasoning_rl'")) == 2 * PROMPTS * GROUP
    assert not processes_of(folder / "rollout")
