"""Issue 19: on-policy distillation on TRL's GKD trainer (posttrain/trl_distill.py) with our rollouts, in two
processes under `accelerate launch` (gloo on CPU): a fresh 2-layer student learns from the shipped tiny
teacher - the loss is the step's token-mean KL, the held-out KL to the teacher falls, every rollout lands once
in provenance with its KL, both modes take turns, the two processes give what one gives (same held-out
numbers: the sampling and the KL do not depend on the split), and the export reloads in transformers."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from test_posttrain import make_student  # a fresh 2-layer, width-64 Qwen3 with the teacher's tokenizer

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

TEACHER = Path(__file__).parent / "assets" / "tiny-teacher"
STEPS, BATCH, SAMPLES = 6, 4, 2


def _run(work: Path, processes: int) -> Path:
    from qwen3_recipe.posttrain.stage_plan import GRPOSettings
    from qwen3_recipe.posttrain.trl_launch import worker_command
    prompts = [{"prompt_id": f"p{i}", "source": "tiny", "text": f"What is {i % 10} + {i // 10}?",
                "gold": str(i % 10 + i // 10)} for i in range(40)]
    s = GRPOSettings(steps=STEPS, batch_size=BATCH, group_size=SAMPLES, max_response_tokens=48, seed=1)
    arch = {"vocab_size": 578, "hidden_size": 64, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1, "head_dim": 32,
            "intermediate_size": 192, "tie_embeddings": True, "rope_theta": 1e4, "max_position_embeddings": 1024}
    spec = {"kind": "distill_onpolicy", "init": str(make_student(work / "student")), "out": str(work / "out"),
            "provenance": str(work / "prov"), "job": "posttrain.d", "stage": "d", "engine": "transformers",
            "prompts": prompts[:32], "heldout": prompts[32:36], "execution": {"fsdp": "none"},
            "export": {"tokenizer_dir": str(TEACHER), "arch": arch},
            "lowered": {"grpo": vars(s), "lr": 1e-3, "seed": 1, "checkpoints": 2, "teacher": str(TEACHER),
                        "kl": "reverse", "modes": ["think", "no_think"], "optimizer": {"grad_clip": 1.0}}}
    (work / "spec.json").write_text(json.dumps(spec))
    cmd = worker_command(work / "spec.json", spec["execution"], "qwen3", env={"QWEN3_RECIPE_NPROC": str(processes)})
    env = os.environ | {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "TRL_EXPERIMENTAL_SILENCE": "1",
                        "PYTHONPATH": str(Path(__file__).parents[1])}
    with (work / "log").open("w") as log:
        done = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=900)
    assert done.returncode == 0, (work / "log").read_text()[-4000:]
    return work / "out"


def _rows(prov: Path, table: str) -> list[dict]:
    import pyarrow.parquet as pq
    return [r | {"rank": int(f.stem.rsplit("-r", 1)[1])}
            for f in sorted((prov / table).glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


@pytest.mark.slow
def test_two_process_onpolicy_distillation_lowers_the_heldout_kl(tmp_path: Path) -> None:
    out = _run(tmp_path / "two", processes=2)
    log = (tmp_path / "two" / "log").read_text()
    for rank in (0, 1):
        assert f"trl_worker: process {rank} of 2, DistributedType.MULTI_CPU, backend gloo" in log
    summary = json.loads((out / "trl_summary.json").read_text())
    assert summary[f"heldout_kl_{STEPS}"] < summary["heldout_kl_0"], summary

    rollouts = _rows(tmp_path / "two" / "prov", "rollouts")
    assert len(rollouts) == STEPS * BATCH * SAMPLES and len({r["sample_id"] for r in rollouts}) == len(rollouts)
    assert {r["rank"] for r in rollouts} == {0, 1}
    assert [{r["mode"] for r in rollouts if r["step"] == k} for k in (1, 2)] == [{"think"}, {"no_think"}]
    assert all(r["teacher_kl"] is not None and r["teacher_kl"] >= 0 for r in rollouts)
    steps = {(r["step"], r["metric"]): r["value"] for r in _rows(tmp_path / "two" / "prov", "train_steps")}
    for k in range(1, STEPS + 1):
        mine = [r for r in rollouts if r["step"] == k]
        token_mean = sum(r["teacher_kl"] * r["tokens"] for r in mine) / sum(r["tokens"] for r in mine)
        assert abs(steps[(k, "kl")] - token_mean) < 1e-4  # the step's KL: a token mean over both processes
        assert abs(steps[(k, "loss")] - steps[(k, "kl")]) < 1e-4  # and what was minimised
        assert steps[(k, "grad_norm")] > 0
    assert {(0, "heldout_kl"), (STEPS, "heldout_kl")} <= set(steps)

    from transformers import AutoModelForCausalLM
    trained = AutoModelForCausalLM.from_pretrained(out / "hf", dtype=torch.float32)
    start = AutoModelForCausalLM.from_pretrained(tmp_path / "two" / "student", dtype=torch.float32)
    assert any(not torch.equal(v, start.state_dict()[k]) for k, v in trained.state_dict().items())

    # one process: the same held-out numbers before training (the split changes nothing sampled or scored), and
    # the same first step - same prompts, samples and weights, so the distributed loss and gradient are one's
    one = json.loads((_run(tmp_path / "one", processes=1) / "trl_summary.json").read_text())
    assert one["heldout_kl_0"] == pytest.approx(summary["heldout_kl_0"], rel=1e-6)
    assert one[f"heldout_kl_{STEPS}"] < one["heldout_kl_0"]
    alone = {(r["step"], r["metric"]): r["value"] for r in _rows(tmp_path / "one" / "prov", "train_steps")}
    for metric in ("loss", "kl", "grad_norm"):
        assert alone[(1, metric)] == pytest.approx(steps[(1, metric)], rel=1e-4), metric
