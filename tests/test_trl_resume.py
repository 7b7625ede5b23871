"""Issue 19: a reasoning_rl stage on TRL in two processes (`accelerate launch`, gloo: QWEN3_RECIPE_NPROC=2)
killed with SIGKILL mid-stage (the `run` process: its launcher and trainers die with it) and run again
resumes from its last whole TRL checkpoint: the same provenance row counts as the stage's settings give,
no rollout or step twice, the data order continued (no prompt sampled twice within the epoch), the held-
out reward before and after, and an export that reloads in transformers and vLLM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, kill_when, query, rows_in, run_cli

RECIPE = "tests/assets/recipes/posttrain-rl.yaml"
STEPS, PROMPTS, GROUP = 6, 8, 8
SETTINGS = ["--set", f"posttrain.stages.reasoning_rl.steps={STEPS}",
            "--set", "posttrain.stages.reasoning_rl.max_response_tokens=48"]
ENV = {"QWEN3_RECIPE_ROLLOUT_ENGINE": "transformers", "OMP_NUM_THREADS": "1", "QWEN3_RECIPE_NPROC": "2",
       "CUDA_VISIBLE_DEVICES": ""}


@pytest.mark.slow
@pytest.mark.extended  # in `make test-all`: tests/test_trl_served.py kills and resumes the same 2-process stage in CI
def test_a_killed_trl_stage_resumes_exactly_once(tmp_path: Path) -> None:
    pytest.importorskip("trl")
    run = tmp_path / "run"
    folder = run / "jobs" / "posttrain.reasoning_rl"
    metrics = folder / "dump" / "metrics.jsonl"
    cmd = [sys.executable, "-m", "qwen3_recipe.cli", "run", RECIPE, "-o", str(run), "--only", "posttrain.reasoning_rl",
           *SETTINGS]
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **ENV}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    kill_when(proc, lambda: rows_in(metrics) >= 3, folder / "trl_spec.json")
    done_before = len(metrics.read_text().splitlines())
    assert 3 <= done_before < STEPS
    assert list((folder / "dump").glob("checkpoint-*")), "no TRL checkpoint to resume from"

    again = run_cli("run", RECIPE, "-o", str(run), "--only", "posttrain.reasoning_rl", *SETTINGS, env=ENV, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    log = (folder / "trl.log").read_text()
    assert "Qwen3GRPOTrainer: resuming from checkpoint-" in log, log[-2000:]
    assert "trl_worker: process 1 of 2, DistributedType.MULTI_CPU, backend gloo" in log, log[-2000:]

    rows = query(run, "select step, prompt_id, sample_id from rollouts where stage = 'reasoning_rl'")
    assert len(rows) == STEPS * PROMPTS * GROUP and len({r[2] for r in rows}) == len(rows)
    per_step = {step: {r[1] for r in rows if r[0] == step} for step in range(1, STEPS + 1)}
    assert all(len(p) == PROMPTS for p in per_step.values())
    # one epoch (the stage has ~140 training prompts): the resumed steps continue the order, no prompt twice
    assert len(set().union(*per_step.values())) == STEPS * PROMPTS
    steps = query(run, "select step, metric, count(*) from train_steps where stage = 'reasoning_rl' group by all")
    assert all(n == 1 for *_, n in steps)
    assert {s for s, m, _ in steps if m == "reward_mean"} == set(range(1, STEPS + 1))
    assert {s for s, m, _ in steps if m == "heldout_reward"} == {0, STEPS}
    assert [json.loads(x)["step"] for x in metrics.read_text().splitlines()] == list(range(1, STEPS + 1))

    # the export reloads in transformers and serves in vLLM
    import torch
    from transformers import AutoModelForCausalLM
    hf = folder / "hf"
    AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32)
    pytest.importorskip("vllm")
    from qwen3_recipe.posttrain.rollout_engine import rollout_engine
    from qwen3_recipe.posttrain.rollouts import sample_groups
    from qwen3_recipe.synth.prompts import Prompt
    with rollout_engine(hf, 16, kind="vllm") as engine:
        groups = sample_groups(engine, [Prompt("x", "t", "What is 3 + 4?", "7")], step=0, seed=1, n=2,
                               max_tokens=16, temperature=1.0)
    assert all(r.response_ids for r in groups[0])
