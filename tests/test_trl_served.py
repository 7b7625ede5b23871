"""Issue 19: rollouts from servers of their own (`execution.rollout.servers`, posttrain/rollout_server.py).

- a vLLM rollout server samples from the weights a trainer pushes through the stage's folder (its
  log-probabilities equal the pushed policy's, scored by torchtitan's model), reports vLLM's native thinking
  budget and processed log-probabilities, and a process that does not own the server waits for its owner's push;
- a reasoning_rl stage in two trainer processes sharing one server (the transformers engine, as the other
  multi-process tests: fast and deterministic) gives exactly the rollouts, rewards and step metrics that the
  same stage gives with each process's own colocated engine, also when killed with SIGKILL mid-stage (its
  server goes with it) and resumed with a fresh server; no server outlives its stage;
- more servers than trainer processes is refused at execution.rollout.servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO, metric, query, run_cli

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
    from qwen3_recipe.posttrain import rollout_server
    from qwen3_recipe.posttrain.policy import Policy
    from qwen3_recipe.posttrain.rollout_engine import logprobs_at_sampling_temperature, push_weights
    from qwen3_recipe.posttrain.rollouts import logprobs_of, sample_groups
    from qwen3_recipe.synth.prompts import Prompt
    policy = Policy(TEACHER)
    with torch.no_grad():
        for p in policy.model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    prompt = [Prompt("x", "t", "What is 3 + 4?", "7")]
    with rollout_server.start(tmp_path, TEACHER, 64, "vllm", 1, 1, dict(os.environ)) as [url]:
        owner = rollout_server.ServedRollouts(url, TEACHER, pusher=True, weights=tmp_path / "w.safetensors")
        other = rollout_server.ServedRollouts(url, TEACHER, pusher=False, weights=tmp_path / "unused", timeout=2)
        assert owner.budget == "native" and logprobs_at_sampling_temperature(owner)
        before = sample_groups(owner, prompt, step=0, seed=1, n=2, max_tokens=16, temperature=1.0)[0]
        waiting = threading.Thread(target=push_weights, args=(other, {}))
        waiting.start()  # waits for the owner's first push ...
        time.sleep(1)
        assert waiting.is_alive()
        push_weights(owner, policy.hf_state_dict())
        waiting.join(timeout=2)  # ... and returns once it has come
        assert not waiting.is_alive()
        after = sample_groups(other, prompt, step=0, seed=1, n=2, max_tokens=16, temperature=1.0)[0]
        with pytest.raises(TimeoutError):
            push_weights(other, {})  # a second push its owner never makes
    assert not (tmp_path / "unused").exists()
    assert [r.response_ids for r in before] != [r.response_ids for r in after]
    for r in after:  # the server's log-probabilities are the pushed policy's
        assert torch.allclose(r.old_logps, logprobs_of(policy, [r.seq])[0], atol=1e-3)


def _stage(run: Path, *extra: str, background: bool = False):
    stage = "posttrain.stages.reasoning_rl"
    sets = ["posttrain.stages.fusion=null", "posttrain.stages.general_rl=null", f"{stage}.steps={STEPS}",
            f"{stage}.batch_size={PROMPTS}", f"{stage}.group_size={GROUP}", f"{stage}.max_response_tokens=48", *extra]
    args = ["run", RECIPE, "-o", str(run), "--only", "posttrain", *(arg for x in sets for arg in ("--set", x))]
    if background:
        return subprocess.Popen([sys.executable, "-m", "qwen3_recipe.cli", *args], cwd=REPO, env={**os.environ, **ENV},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return run_cli(*args, env=ENV, timeout=900)


def _workers(path: Path) -> list[int]:
    out = subprocess.run(["pgrep", "-f", str(path)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


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
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and killed.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.2)
    assert killed.poll() is None, "the stage ended before it could be killed"
    assert (folder / "rollout" / "server-0.url").exists()
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    for _ in range(100):  # the server and the trainers go with it (PR_SET_PDEATHSIG)
        if not _workers(folder / "rollout") + _workers(folder / "trl_spec.json"):
            break
        time.sleep(0.1)
    assert not _workers(folder / "rollout"), "a rollout server outlived its killed stage"
    assert 2 <= len(metrics.read_text().splitlines()) < STEPS
    assert list((folder / "dump").glob("checkpoint-*")), "no TRL checkpoint to resume from"
    again = _stage(served, "execution.rollout.servers=1")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "Qwen3GRPOTrainer: resuming from checkpoint-" in (folder / "trl.log").read_text()
    steps = query(served, "select step, metric, count(*) from train_steps where stage = 'reasoning_rl' group by all")
    assert all(n == 1 for *_, n in steps) and {s for s, m, _ in steps if m == "heldout_reward"} == {0, STEPS}
    assert [json.loads(x)["step"] for x in metrics.read_text().splitlines()] == list(range(1, STEPS + 1))

    assert "rollout server: " in (folder / "rollout" / "server-0.log").read_text()
    # process 0 owns the one server and pushes to it; process 1 samples from it after each push
    assert (folder / "rollout" / "weights-0.safetensors").exists()
    assert not (folder / "rollout" / "weights-1.safetensors").exists()
    assert not (colocated / "jobs" / "posttrain.reasoning_rl" / "rollout").exists()
    assert not _workers(folder / "rollout"), "a rollout server outlived its stage"

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
