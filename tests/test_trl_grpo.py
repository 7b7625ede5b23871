"""Issue 19: real GRPO steps through TRL's GRPOTrainer (posttrain/trl_grpo.py), configured by our lowering,
with our rollouts (the transformers engine, the Qwen3 template, the thinking budget) and our math verifier
as its reward, on the shipped tiny teacher: rewards differ within a group, the gradient is not zero, the
weights move, every rollout stays within the budget before its early-stop text, forced tokens are out of
the loss, the ratio is against the engine's log-probabilities (stale ones when sync_every > 1), the
temperature anneals per step, and every step lands in the provenance shards."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

TEACHER = Path(__file__).parent / "assets" / "tiny-teacher"
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
OPT = {"beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.0, "grad_clip": 1.0}


def _prompts():
    from qwen3_recipe.synth.prompts import Prompt
    return ([Prompt(f"p{i}", "tiny", f"What is {i} + {i % 3}?", str(i + i % 3)) for i in range(4)]
            + [Prompt(f"q{i}", "tiny", f"What is {i} + {i + 2}?", str(2 * i + 2)) for i in range(4)])


def _run(tmp_path: Path, engine, s, monkeypatch):
    """train_grpo on a fresh copy of the teacher; returns (trainer, rows, weights before, what each loss saw)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qwen3_recipe.posttrain import trl_grpo
    from qwen3_recipe.posttrain.grpo import verifier_reward
    from qwen3_recipe.posttrain.trl_lowering import grpo_args
    from qwen3_recipe.provenance.recorder import ShardRecorder
    from qwen3_recipe.verify.verifiers import build_verifier

    seen = []
    original = trl_grpo.Qwen3GRPOTrainer._compute_loss

    def compute_loss(self, model, inputs):
        rollouts = _in_loss_order(inputs, self.rollout_func.last)
        ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
        n = inputs["completion_ids"].size(1)
        with torch.no_grad():  # the plain HF forward (no fused head): logits, at the step's temperature by hand
            logits = model(input_ids=ids, attention_mask=torch.cat([inputs["prompt_mask"],
                                                                     inputs["completion_mask"]], 1)).logits
            by_hand = torch.log_softmax(logits[:, -n - 1:-1].float() / self.temperature, -1).gather(
                -1, inputs["completion_ids"][..., None])[..., 0]
        seen.append({"by_hand": by_hand, "temperature": self.temperature,
                     "old": inputs["old_per_token_logps"].detach().clone(),
                     # the loss's mask (as TRL's _compute_loss takes it): padding and env_mask (forced) out
                     "mask": inputs["completion_mask"] * inputs.get("tool_mask", 1), "rollouts": rollouts,
                     "hook": list(self.rollout_func.last),
                     "version": self.rollout_func.version,
                     "current": self._get_per_token_logps_and_entropies(
                         model, ids, torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1), n)[0].detach()})
        return original(self, model, inputs)
    monkeypatch.setattr(trl_grpo.Qwen3GRPOTrainer, "_compute_loss", compute_loss)

    model = AutoModelForCausalLM.from_pretrained(TEACHER, dtype=torch.float32)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    lowered = {"grpo": vars(s), "lr": 5e-4, "seed": 1, "checkpoints": 1, "optimizer": OPT}
    args = grpo_args(lowered, tmp_path) | {"use_cpu": True, "gradient_checkpointing": False}
    trainer, rows = trl_grpo.train_grpo(
        model, AutoTokenizer.from_pretrained(TEACHER), engine, _prompts(),
        verifier_reward(build_verifier({"type": "math"})), s, args, stage="rl",
        recorder_for=lambda step, rank: ShardRecorder(tmp_path / "prov", "posttrain.rl", f"step-{step:06d}", rank))
    return trainer, rows, before, seen


def _in_loss_order(inputs, rollouts):
    """The hook's rollouts in the rows' order of the loss's inputs (TRL shuffles the generation batch)."""
    out = []
    for k in range(inputs["completion_ids"].size(0)):
        prompt = inputs["prompt_ids"][k][inputs["prompt_mask"][k].bool()].tolist()
        completion = inputs["completion_ids"][k][inputs["completion_mask"][k].bool()].tolist()
        match = [r for r in rollouts if r.prompt_ids == prompt and r.response_ids == completion]
        assert match, f"row {k} of the loss is no rollout of the hook"
        out.append(match[0])
    return out


def _table(tmp_path: Path, table: str) -> list[dict]:
    import pyarrow.parquet as pq
    files = sorted((tmp_path / "prov" / table).glob("*.parquet"))
    return [row for f in files for row in pq.read_table(f).to_pylist()]


def test_grpo_steps_through_trl_with_our_rollouts_verifier_and_provenance(tmp_path: Path, monkeypatch) -> None:
    from qwen3_recipe.posttrain.rollout_engine import rollout_engine
    from qwen3_recipe.posttrain.stage_plan import GRPOSettings
    s = GRPOSettings(steps=3, batch_size=4, group_size=4, max_response_tokens=64, thinking_budget=10,
                     sync_every=2, seed=1)
    with rollout_engine(TEACHER, 64, kind="transformers") as engine:
        trainer, rows, before, seen = _run(tmp_path, engine, s, monkeypatch)
        early_stop = list(engine.markers.early_stop)

    assert len(seen) == 3 and all(len(step["hook"]) == 16 for step in seen)  # 4 prompts x 4 samples
    groups = [step["hook"][i:i + 4] for step in seen for i in range(0, 16, 4)]
    assert all(len({r.prompt.prompt_id for r in g}) == 1 for g in groups)  # one prompt per group
    assert sorted(g[0].prompt.prompt_id for g in groups[:8]) == sorted(p.prompt_id for p in _prompts())  # an epoch
    assert any(len({r.reward for r in g}) > 1 for g in groups), [[r.reward for r in g] for g in groups]
    cut = [r for g in groups for r in g if r.forced.any()]
    assert cut, "a thinking budget of 10 tokens must cut some of the tiny teacher's rollouts"
    for r in cut:  # forced = the early-stop text, right where the budget ran out, and out of the loss
        at = int(r.forced.nonzero()[0])
        assert r.response_ids[at:at + len(early_stop)] == early_stop[:len(r.response_ids) - at]
    for step in seen:
        for k, r in enumerate(step["rollouts"]):
            n = len(r.response_ids)
            assert step["mask"][k, :n].tolist() == r.sampled.int().tolist() and not step["mask"][k, n:].any()
    # the ratio's old side is the engine's log-probabilities: at step 1 (sync_every 2) the engine still holds
    # step 0's weights, so they differ from the policy's own, the stale sampling TRL alone would not correct
    assert [step["version"] for step in seen] == [0, 0, 2]
    for step in seen:
        for k, r in enumerate(step["rollouts"]):
            keep = r.sampled
            assert torch.allclose(step["old"][k, :len(keep)][keep], r.old_logps[keep], atol=1e-6)
    stale = seen[1]
    keep = stale["mask"].bool()
    assert (stale["old"][keep] - stale["current"][keep]).abs().max() > 1e-4
    assert (seen[0]["old"][seen[0]["mask"].bool()] - seen[0]["current"][seen[0]["mask"].bool()]).abs().max() < 1e-3

    logs = [h for h in trainer.state.log_history if "grad_norm" in h]
    varied = [any(len({r.reward for r in step["hook"][i:i + 4]}) > 1 for i in range(0, 16, 4)) for step in seen]
    assert len(logs) == 3 and any(varied)
    # a gradient exactly when some group's rewards differ (an all-equal group has no advantage)
    assert [h["grad_norm"] > 0 for h in logs] == varied, (logs, varied)
    assert [k for k, v in trainer.model.state_dict().items() if not torch.equal(v, before[k])], "no weight changed"

    # provenance: every rollout once, with its reward, verdict, advantage and the weights it came from
    rollouts = _table(tmp_path, "rollouts")
    assert len(rollouts) == 48 and len({r["sample_id"] for r in rollouts}) == 48
    assert [sum(r["step"] == k for r in rollouts) for k in (1, 2, 3)] == [16, 16, 16]
    assert {r["policy_version"] for r in rollouts if r["step"] == 2} == {0}
    assert all(r["verdict"] and r["reward"] in (0.0, 1.0) and r["text"] for r in rollouts)
    by_id = {(r["step"], r["prompt_id"]): [] for r in rollouts}
    for r in rollouts:
        by_id[(r["step"], r["prompt_id"])].append(r)
    for group in by_id.values():  # group-scaled advantages: zero mean within the group
        assert abs(sum(r["advantage"] for r in group)) < 1e-4
    steps = _table(tmp_path, "train_steps")
    metric = {(r["step"], r["metric"]): r["value"] for r in steps}
    for k in (1, 2, 3):
        assert {"reward_mean", "loss", "grad_norm", "lr", "accuracy", "forced_tokens", "temperature"} <= \
            {m for st, m in metric if st == k}
        mean = sum(r["reward"] for r in rollouts if r["step"] == k) / 16
        assert math.isclose(metric[(k, "reward_mean")], mean, abs_tol=1e-4)
    assert [row["step"] for row in rows] == [1, 2, 3]


def test_trl_grpo_anneals_the_temperature_and_scores_unusable_logprobs_with_the_policy(tmp_path: Path,
                                                                                       monkeypatch) -> None:
    """transformers' log-probabilities are at T = 1: at T = 0.5 the hook reports none, and the ratio's old
    side is the policy's own before the update (ratio 1)."""
    from qwen3_recipe.posttrain.rollout_engine import rollout_engine
    from qwen3_recipe.posttrain.stage_plan import GRPOSettings
    s = GRPOSettings(steps=2, batch_size=2, group_size=2, max_response_tokens=32, temperature_start=1.0,
                     temperature_end=0.5, seed=3)
    from qwen3_recipe.posttrain.trl_grpo import pre_fused_forward
    with rollout_engine(TEACHER, 32, kind="transformers") as engine:
        trainer, _, _, seen = _run(tmp_path, engine, s, monkeypatch)
    assert [step["temperature"] for step in seen] == [1.0, 0.5]
    # the head re-fused at T = 0.5 wraps the forward TRL first fused onto (accelerate's wrappers kept), once
    inner = pre_fused_forward(trainer.accelerator.unwrap_model(trainer.model).forward)
    assert "original_forward" not in getattr(inner, "__func__", inner).__code__.co_freevars
    assert [r.temperature for r in seen[1]["rollouts"]] == [0.5] * 4
    assert all(r.old_logps is None for r in seen[1]["rollouts"]) and all(r.old_logps is not None
                                                                          for r in seen[0]["rollouts"])
    for step in seen:
        keep = step["mask"].bool()
        assert torch.allclose(step["old"][keep], step["current"][keep], atol=1e-4)  # same weights both sides
        assert torch.allclose(step["current"][keep], step["by_hand"][keep], atol=1e-4)  # logits / T, T annealed
    temps = {r["step"]: r["value"] for r in _table(tmp_path, "train_steps") if r["metric"] == "temperature"}
    assert temps == {1: 1.0, 2: 0.5}


def test_the_prompt_order_of_an_epoch_does_not_depend_on_the_epochs_before_it() -> None:
    """A stage resumed in its second epoch draws that epoch's order as an uninterrupted one does: our sampler
    reseeds from (seed, epoch) where TRL's draws every epoch from one generator a checkpoint does not keep."""
    from trl.trainer.utils import RepeatSampler

    from qwen3_recipe.posttrain.trl_grpo import EpochSeededSampler

    def sampler(cls):
        s = RepeatSampler(list(range(12)), mini_repeat_count=2, batch_size=3, seed=5)
        s.__class__ = cls
        return s

    def epochs(s, which):
        out = []
        for epoch in which:
            if hasattr(s, "set_epoch"):
                s.set_epoch(epoch)
            out.append(list(s))
        return out

    uninterrupted = epochs(sampler(EpochSeededSampler), [0, 1])
    assert epochs(sampler(EpochSeededSampler), [1]) == uninterrupted[1:]  # resumed in epoch 1
    assert uninterrupted[0] != uninterrupted[1]
    trl = epochs(sampler(RepeatSampler), [0, 1])
    assert epochs(sampler(RepeatSampler), [1]) != trl[1:]  # TRL's alone would replay epoch 0's order
