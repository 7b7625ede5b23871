"""Issue 19: on-policy distillation on TRL's GKD trainer (posttrain/trl_distill.py) with our rollouts, in two
processes under `accelerate launch` (gloo on CPU): a fresh 2-layer student learns from the shipped tiny
teacher - the loss is the step's token-mean KL, the held-out KL to the teacher falls, every rollout lands once
in provenance with its KL, both modes take turns, the two processes give what one gives (same held-out
numbers: the sampling and the KL do not depend on the split), and the export reloads in transformers.
Off-policy distillation on TRL's SFTTrainer (posttrain/trl_offpolicy.py) likewise: two processes take the step
one process accumulates from two micro-batches, with the same loss and gradient."""

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


def test_onpolicy_micro_batches_take_the_whole_batch_step(tmp_path: Path) -> None:
    """A process's rollouts go through student and teacher in micro-batches (memory): 8 rollouts in one forward,
    in 4 of 2 and in 3 of 3-3-2 give the same loss, gradient and per-rollout KL."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qwen3_recipe.posttrain.rollout_engine import rollout_engine
    from qwen3_recipe.posttrain.stage_plan import GRPOSettings
    from qwen3_recipe.posttrain.trl_distill import onpolicy_trainer
    from qwen3_recipe.posttrain.trl_lowering import gkd_args
    from qwen3_recipe.synth.prompts import Prompt
    student = make_student(tmp_path / "student")
    s = GRPOSettings(steps=1, batch_size=4, group_size=2, max_response_tokens=24, seed=1)
    lowered = {"grpo": vars(s), "lr": 1e-3, "seed": 1, "checkpoints": 1, "teacher": str(TEACHER), "kl": "reverse",
               "modes": ["think"], "optimizer": {"grad_clip": 1.0}}
    args = gkd_args(lowered, tmp_path / "out", {"fsdp": "none"}, 1) | {"use_cpu": True, "report_to": []}
    prompts = [Prompt(f"p{i}", "tiny", f"What is {i} + 1?", str(i + 1)) for i in range(4)]
    teacher = AutoModelForCausalLM.from_pretrained(TEACHER, dtype=torch.float32)
    out = []
    with rollout_engine(student, 24, kind="transformers") as engine:
        for micro in (None, 2, 3):
            model = AutoModelForCausalLM.from_pretrained(student, dtype=torch.float32)
            trainer = onpolicy_trainer(model, teacher, AutoTokenizer.from_pretrained(student), engine, prompts, s,
                                       args, modes=["think"], direction="reverse", recorder_for=None, stage="d",
                                       micro_rows=micro)
            loss = trainer.training_step(trainer.model, {"prompt_id": [p.prompt_id for p in prompts]})
            grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
            out.append((float(loss), grads, [r.extra["teacher_kl"] for r in trainer.last]))
    whole = out[0]
    assert whole[0] > 0 and len(whole[2]) == 8 and any(g.abs().sum() > 0 for g in whole[1].values())
    for loss, grads, kls in out[1:]:
        assert loss == pytest.approx(whole[0], rel=1e-5) and kls == pytest.approx(whole[2], rel=1e-5)
        assert grads.keys() == whole[1].keys()
        assert all(torch.allclose(grads[k], whole[1][k], rtol=1e-4, atol=1e-7) for k in grads)


# --------------------------------------------------------------------------- off-policy, on TRL's SFTTrainer

OFF_BATCH, OFF_SAMPLES, OFF_EPOCHS, OFF_TOKENS = 16, 48, 2, 512  # 512: micro-batches of 8, accumulated in one process


def _teacher_samples(path: Path) -> list[dict]:
    """The teacher pass's samples file as posttrain/teacher_pass.py writes it: the teacher's own answers (our
    engine, the Qwen3 template) with its top-8 raw log-probabilities per response token."""
    from transformers import AutoModelForCausalLM

    from qwen3_recipe.posttrain.rollout_engine import rollout_engine
    from qwen3_recipe.posttrain.rollouts import sample_groups
    from qwen3_recipe.synth.prompts import Prompt
    prompts = [Prompt(f"p{i}", "tiny", f"What is {i % 10} + {i // 10}?", str(i % 10 + i // 10))
               for i in range(OFF_SAMPLES)]
    with rollout_engine(TEACHER, 48, kind="transformers") as engine:
        groups = sample_groups(engine, prompts, step=0, seed=5, n=1, max_tokens=48, temperature=1.0)
    teacher = AutoModelForCausalLM.from_pretrained(TEACHER, dtype=torch.float32)
    rows = []
    for r in (x for g in groups for x in g):
        with torch.no_grad():
            logits = teacher(torch.tensor([r.prompt_ids + r.response_ids])).logits[0]
        top = torch.log_softmax(logits[len(r.prompt_ids) - 1:-1], -1).topk(8)
        rows.append({"id": f"{r.prompt.prompt_id}/think/0", "prompt_id": r.prompt.prompt_id, "mode": "think",
                     "prompt_ids": r.prompt_ids, "response_ids": r.response_ids, "top_ids": top.indices.tolist(),
                     "top_logps": top.values.tolist(), "text": r.text})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return rows


def _run_offpolicy(work: Path, samples: Path, processes: int) -> Path:
    from qwen3_recipe.posttrain.trl_launch import worker_command
    from qwen3_recipe.posttrain.trl_lowering import offpolicy_steps
    work.mkdir(parents=True)
    arch = {"vocab_size": 578, "hidden_size": 64, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1, "head_dim": 32,
            "intermediate_size": 192, "tie_embeddings": True, "rope_theta": 1e4, "max_position_embeddings": 1024}
    held = [{"prompt_id": "h0", "source": "tiny", "text": "What is 4 + 5?", "gold": "9"}]
    spec = {"kind": "distill_offpolicy", "steps": offpolicy_steps(OFF_SAMPLES, OFF_BATCH, OFF_EPOCHS),
            "init": str(make_student(work / "student")), "out": str(work / "out"), "provenance": str(work / "prov"),
            "job": "posttrain.off", "stage": "off", "engine": "transformers", "prompts": [], "heldout": held,
            "execution": {"fsdp": "none"}, "export": {"tokenizer_dir": str(TEACHER), "arch": arch},
            "lowered": {"lr": 3e-3, "seed": 1, "checkpoints": 2, "teacher": str(TEACHER), "modes": ["think"],
                        "teacher_samples": str(samples), "batch_size": OFF_BATCH, "max_tokens": OFF_TOKENS,
                        "kl_weight": 1.0, "ce_weight": 1.0, "optimizer": {"grad_clip": 1.0}}}
    (work / "spec.json").write_text(json.dumps(spec))
    cmd = worker_command(work / "spec.json", spec["execution"], "qwen3", env={"QWEN3_RECIPE_NPROC": str(processes)})
    env = os.environ | {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
                        "PYTHONPATH": str(Path(__file__).parents[1])}
    with (work / "log").open("w") as log:
        done = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=900)
    assert done.returncode == 0, (work / "log").read_text()[-4000:]
    return work / "out"


@pytest.mark.slow
def test_offpolicy_distillation_on_trl_in_two_processes_matches_one(tmp_path: Path) -> None:
    """Two processes (a micro-batch each) take the step one process takes in two accumulated micro-batches: the
    same samples in the same (seed, epoch) order, so the same loss - the token mean of top-k KL + CE over the whole
    step - and gradient; the top-k KL falls, whole batches only (48 samples, 16 a step: 3 steps an epoch)."""
    from qwen3_recipe.posttrain.trl_lowering import offpolicy_args
    assert offpolicy_args({"batch_size": OFF_BATCH, "max_tokens": OFF_TOKENS, "lr": 1e-3}, tmp_path, 6)[
        "gradient_accumulation_steps"] == 2  # one process: two micro-batches of 8
    samples = tmp_path / "samples.jsonl"
    rows = _teacher_samples(samples)
    runs = {n: _run_offpolicy(tmp_path / f"p{n}", samples, n) for n in (1, 2)}
    log = (tmp_path / "p2" / "log").read_text()
    assert "trl_worker: process 1 of 2, DistributedType.MULTI_CPU, backend gloo" in log
    metrics = {n: {(r["step"], r["metric"]): r["value"] for r in _rows(out.parent / "prov", "train_steps")}
               for n, out in runs.items()}
    steps = OFF_EPOCHS * (OFF_SAMPLES // OFF_BATCH)
    for n in (1, 2):
        m = metrics[n]
        assert {s for s, name in m if name == "kl_topk"} == set(range(1, steps + 1))
        assert m[(steps, "kl_topk")] < 0.8 * m[(1, "kl_topk")]
        for k in range(1, steps + 1):
            assert m[(k, "loss")] == pytest.approx(m[(k, "kl_topk")] + m[(k, "ce")], rel=1e-5)
        assert {(0, "heldout_kl"), (steps, "heldout_kl")} <= set(m)
    # step 1's tokens: the first 16 samples of epoch 0's (seed, epoch) order, whoever took them
    order = torch.randperm(OFF_SAMPLES, generator=torch.Generator().manual_seed(1)).tolist()[:OFF_BATCH]
    assert metrics[1][(1, "tokens")] == metrics[2][(1, "tokens")] == sum(len(rows[i]["response_ids"]) for i in order)
    for name in ("loss", "kl_topk", "ce", "grad_norm"):
        assert metrics[1][(1, name)] == pytest.approx(metrics[2][(1, name)], rel=1e-4), name
    assert metrics[1][(0, "heldout_kl")] == pytest.approx(metrics[2][(0, "heldout_kl")], rel=1e-6)

    from transformers import AutoModelForCausalLM
    AutoModelForCausalLM.from_pretrained(runs[2] / "hf", dtype=torch.float32)  # the export loads
