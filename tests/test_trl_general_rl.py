"""Issue 19: general_rl on TRL through `run` (tests/assets/recipes/posttrain-rl.yaml, its general_rl alone, from
the shipped tiny teacher): `method: hybrid` spends its first steps on DPO over the policy's own best/worst pairs
(TRL's DPOTrainer, posttrain/trl_general_rl.py), then policy gradient on our GRPO trainer with the reward mix -
the rule checks and a reward model given by path (a tiny one built here) - and the k3 KL to the stage's
starting weights.

- in one process and in two (`accelerate launch`, gloo): the same pairs, the same first-step gradient and
  held-out margin (the DPO loss is a mean over the step's pairs across processes, whatever each process drew);
  phases, roles, advantages and metrics in provenance; the KL reference is the stage's start, not the DPO
  phase's weights; the export reloads in transformers;
- killed with SIGKILL in its policy-gradient phase, run again: the DPO phase is not redone, the policy-gradient
  phase resumes from its checkpoint, every rollout and step metric once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, kill_when, metric, query, run_cli

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

TEACHER = REPO / "tests" / "assets" / "tiny-teacher"
RECIPE = "tests/assets/recipes/posttrain-rl.yaml"
STEPS, PROMPTS, GROUP = 4, 4, 4
ENV = {"QWEN3_RECIPE_ROLLOUT_ENGINE": "transformers", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


def _reward_model(out: Path) -> Path:
    from transformers import Qwen3Config, Qwen3ForSequenceClassification
    cfg = json.loads((TEACHER / "config.json").read_text())
    cfg.update(num_hidden_layers=1, layer_types=["full_attention"], num_labels=1, dtype="float32")
    torch.manual_seed(0)
    Qwen3ForSequenceClassification(Qwen3Config(**cfg)).save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(TEACHER / name, out / name)
    return out


def _settings(rm: Path) -> list[str]:
    stage = "posttrain.stages.general_rl"
    sets = ["posttrain.stages.reasoning_rl=null", "posttrain.stages.fusion=null", f"{stage}.method=hybrid",
            f"{stage}.steps={STEPS}", f"{stage}.batch_size={PROMPTS}", f"{stage}.group_size={GROUP}",
            f"{stage}.max_response_tokens=48", f"{stage}.rewards=[{{type: rule}}, {{type: reward_model, path: {rm}}}]"]
    return ["--only", "posttrain", *(arg for x in sets for arg in ("--set", x))]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[int, Path]:
    base = tmp_path_factory.mktemp("general_rl")
    rm = _reward_model(base / "rm")
    out = {}
    for processes in (1, 2):
        run = base / f"run{processes}"
        proc = run_cli("run", RECIPE, "-o", str(run), *_settings(rm), env=ENV | {"QWEN3_RECIPE_NPROC": str(processes)},
                       timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        out[processes] = run
    return out


@pytest.mark.slow
def test_hybrid_general_rl_on_trl_in_two_processes_matches_one(runs) -> None:
    one, two = runs[1], runs[2]
    assert "trl_worker: process 1 of 2, DistributedType.MULTI_CPU, backend gloo" in \
        (two / "jobs" / "posttrain.general_rl" / "trl.log").read_text()
    for run in (one, two):
        assert list(metric(run, "general_rl", "phase").values()) == [0.0, 0.0, 1.0, 1.0]
        rows = query(run, "select step, prompt_id, role, advantage, sample_id from rollouts where stage = 'general_rl'")
        assert len(rows) == STEPS * PROMPTS * GROUP and len({r[4] for r in rows}) == len(rows)
        pairs = metric(run, "general_rl", "pairs")
        for step in (1, 2):  # DPO: each pair's chosen and rejected marked, no advantages
            roles = [r[2] for r in rows if r[0] == step]
            assert roles.count("chosen") == roles.count("rejected") == pairs[step]
            assert all(r[3] is None for r in rows if r[0] == step)
        for step in (3, 4):  # policy gradient: group advantages (zero mean per group), no roles
            for pid in {r[1] for r in rows if r[0] == step}:
                adv = [r[3] for r in rows if r[0] == step and r[1] == pid]
                assert len(adv) == GROUP and abs(sum(adv)) < 1e-3
            assert all(r[2] is None for r in rows if r[0] == step)
        assert sum(pairs.values()) > 0
        # the KL is to the stage's start: the DPO phase already moved the policy away from it
        assert metric(run, "general_rl", "kl_ref")[3] > 1e-5 > metric(run, "general_rl", "approx_kl")[3]
        assert set(metric(run, "general_rl", "heldout_margin")) == {0, STEPS}
        specs = json.loads((run / "jobs" / "posttrain.general_rl" / "rewards.json").read_text())
        assert [s["type"] for s in specs] == ["rule", "reward_model"]
    # the split changes nothing: the same pairs, the same first step (its loss is log 2: the policy is the reference)
    for name in ("pairs", "reward_mean", "heldout_margin", "heldout_pairs"):
        a, b = metric(one, "general_rl", name), metric(two, "general_rl", name)
        assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-6) for k in a), name
    g1, g2 = metric(one, "general_rl", "grad_norm"), metric(two, "general_rl", "grad_norm")
    assert g1[1] > 0 and g1[1] == pytest.approx(g2[1], rel=1e-3)
    assert metric(one, "general_rl", "loss")[1] == pytest.approx(0.6931, abs=1e-3)

    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(two / "jobs" / "posttrain.general_rl" / "hf")
    start = AutoModelForCausalLM.from_pretrained(TEACHER)
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), start.state_dict().values()))


@pytest.mark.slow
@pytest.mark.extended  # `make test-all`: CI keeps test_trl_served.py's 2-process kill and resume (CI time)
def test_a_killed_general_rl_resumes_in_its_policy_gradient_phase(runs, tmp_path: Path) -> None:
    from qwen3_recipe.posttrain.trl_steps import COMPLETE
    rm = tmp_path / "rm"
    _reward_model(rm)
    run = tmp_path / "run"
    folder = run / "jobs" / "posttrain.general_rl"
    metrics = folder / "dump" / "metrics.jsonl"
    env = {**os.environ, **ENV, "QWEN3_RECIPE_NPROC": "2"}
    cmd = [sys.executable, "-m", "qwen3_recipe.cli", "run", RECIPE, "-o", str(run), *_settings(rm)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    whole = folder / "dump" / "pg" / "checkpoint-1" / COMPLETE  # the policy-gradient phase's first step, saved
    kill_when(proc, whole.exists, folder / "trl_spec.json")
    assert (folder / "dump" / "dpo" / "hf" / "config.json").exists()

    again = run_cli("run", RECIPE, "-o", str(run), *_settings(rm), env=ENV | {"QWEN3_RECIPE_NPROC": "2"}, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    log = (folder / "trl.log").read_text()
    assert "Qwen3GRPOTrainer: resuming from checkpoint-" in log and "Qwen3DPOTrainer" not in log, log[-2000:]
    rows = query(run, "select step, sample_id from rollouts where stage = 'general_rl'")
    assert len(rows) == STEPS * PROMPTS * GROUP and len({r[1] for r in rows}) == len(rows)
    steps = query(run, "select step, metric, count(*) from train_steps where stage = 'general_rl' group by all")
    assert all(n == 1 for *_, n in steps)
    assert {s for s, m, _ in steps if m == "reward_mean"} == set(range(1, STEPS + 1))
    assert [json.loads(x)["step"] for x in metrics.read_text().splitlines()] == list(range(1, STEPS + 1))
    # the resumed stage's steps are those of the uninterrupted one: the same rollouts from the same weights
    for name in ("pairs", "reward_mean", "kl_ref"):
        a, b = metric(run, "general_rl", name), metric(runs[2], "general_rl", name)
        assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k], rel=1e-3, abs=1e-6) for k in a), name


def test_dpo_micro_batches_take_the_whole_batch_step(tmp_path: Path) -> None:
    """The DPO phase's pairs go through policy and reference in micro-batches (memory): all pairs in one forward
    and one pair per forward give the same loss and gradient; so they do with padding rows (a process with fewer
    pairs than another: here a faked second process with 3 more), which add nothing but the step's pair count."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qwen3_recipe.posttrain.rollout_engine import rollout_engine
    from qwen3_recipe.posttrain.stage_plan import GRPOSettings
    from qwen3_recipe.posttrain.trl_general_rl import dpo_trainer
    from qwen3_recipe.posttrain.trl_lowering import dpo_args
    from qwen3_recipe.synth.prompts import Prompt
    s = GRPOSettings(steps=1, batch_size=4, group_size=4, max_response_tokens=24, seed=3)
    lowered = {"grpo": vars(s), "lr": 1e-3, "seed": 3, "checkpoints": 1, "beta": 0.1,
               "optimizer": {"grad_clip": 1.0}}
    args = dpo_args(lowered, tmp_path / "out", {"fsdp": "none"}, 1) | {"use_cpu": True, "report_to": []}
    prompts = [Prompt(f"p{i}", "tiny", f"What is {i} + 2?", str(i + 2)) for i in range(4)]
    reward = lambda r: (float(sum(r.response_ids) % 7), "scored")  # noqa: E731 (rewards that differ in a group)

    def another_process(gather):  # the pair counts of this process and of one with 3 more pairs
        return lambda t: torch.cat([t, t + 3]) if t.dtype == torch.int64 and t.shape == (1,) else gather(t)
    out = {}
    with rollout_engine(TEACHER, 24, kind="transformers") as engine:
        for micro, padded in ((None, False), (1, False), (None, True), (1, True)):
            model = AutoModelForCausalLM.from_pretrained(TEACHER, dtype=torch.float32)
            trainer = dpo_trainer(model, AutoModelForCausalLM.from_pretrained(TEACHER, dtype=torch.float32),
                                  AutoTokenizer.from_pretrained(TEACHER), engine, prompts, reward, s, args,
                                  recorder_for=None, stage="g", micro_pairs=micro)
            trainer.current_gradient_accumulation_steps = 1  # (what train() sets before its first step)
            if padded:
                trainer.accelerator.gather = another_process(trainer.accelerator.gather)
            loss = trainer.training_step(trainer.model, {"prompt_id": [p.prompt_id for p in prompts]})
            grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
            out[micro, padded] = (float(loss), grads, trainer.pairs)
    loss, grads, (pairs, rows) = out[None, False]
    assert pairs >= 2 and loss == pytest.approx(0.6931, abs=1e-3)  # log 2: the policy is the reference
    assert any(g.abs().sum() > 0 for g in grads.values())
    for key, (micro_loss, micro_grads, (total, sent)) in out.items():
        padding = key[1]
        share = pairs / (2 * pairs + 3) if padding else 1.0  # this process's real pairs, of the step's
        assert (total, sent) == ((2 * pairs + 3, pairs + 3) if padding else (pairs, pairs)), key  # rows: this one's
        assert micro_loss == pytest.approx(loss * share, rel=1e-5), key
        assert micro_grads.keys() == grads.keys()
        assert all(torch.allclose(micro_grads[k], grads[k] * share, rtol=1e-4, atol=1e-7) for k in grads), key
