"""Issue 19: GRPO on TRL in two processes, launched by `accelerate launch` (gloo on CPU), each sampling its
share of the groups with its own rollout engine: every rollout once in provenance (each process its own
shard rank), whole groups per process, advantages normalised over each whole group, one set of step
metrics over both processes, and an export that reloads in transformers with weights that moved."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("accelerate")

TEACHER = Path(__file__).parent / "assets" / "tiny-teacher"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_grpo_through_accelerate_launch(tmp_path: Path) -> None:
    import pyarrow.parquet as pq
    from transformers import AutoModelForCausalLM

    from qwen3_recipe.posttrain.stage_plan import GRPOSettings
    prompts = ([{"prompt_id": f"p{i}", "source": "tiny", "text": f"What is {i} + {i % 3}?", "gold": str(i + i % 3)}
                for i in range(4)]
               + [{"prompt_id": f"q{i}", "source": "tiny", "text": f"What is {i} + {i + 2}?", "gold": str(2 * i + 2)}
                  for i in range(4)])
    s = GRPOSettings(steps=2, batch_size=4, group_size=4, max_response_tokens=48, thinking_budget=10, seed=1)
    arch = {"vocab_size": 578, "hidden_size": 128, "num_layers": 4, "num_heads": 4, "num_kv_heads": 2, "head_dim": 32,
            "intermediate_size": 384, "tie_embeddings": True, "rope_theta": 1e4, "max_position_embeddings": 1024}
    spec = {"init": str(TEACHER), "out": str(tmp_path / "out"), "provenance": str(tmp_path / "prov"),
            "job": "posttrain.rl", "stage": "rl", "engine": "transformers", "prompts": prompts,
            "heldout": [{"prompt_id": f"h{i}", "source": "tiny", "text": f"What is {i} + 5?", "gold": str(i + 5)}
                        for i in range(2)], "export": {"tokenizer_dir": str(TEACHER), "arch": arch},
            "lowered": {"grpo": vars(s), "lr": 5e-4, "seed": 1, "checkpoints": 1, "verifier": {"type": "math"},
                        "optimizer": {"beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.0,
                                      "grad_clip": 1.0}}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    env = os.environ | {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "TOKENIZERS_PARALLELISM": "false",
                        "QWEN3_RECIPE_ROLLOUT_ENGINE": "transformers"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), "-m", "qwen3_recipe.posttrain.trl_worker",
           str(tmp_path / "spec.json")]
    log = tmp_path / "launch.log"
    with log.open("w") as f:
        done = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=600)
    assert done.returncode == 0, log.read_text()[-4000:]
    text = log.read_text()
    for rank in (0, 1):  # two processes of one gloo group, on CPU
        assert f"trl_worker: process {rank} of 2, DistributedType.MULTI_CPU, backend gloo" in text, text[-3000:]

    def rows(table: str) -> list[dict]:  # with the shard's rank (the file's `-r<rank>` suffix)
        return [r | {"rank": int(f.stem.rsplit("-r", 1)[1])}
                for f in sorted((tmp_path / "prov" / table).glob("*.parquet")) for r in pq.read_table(f).to_pylist()]

    rollouts = rows("rollouts")
    assert len(rollouts) == 32 and len({r["sample_id"] for r in rollouts}) == 32  # 2 steps x 4 prompts x 4
    assert {r["rank"] for r in rollouts} == {0, 1}
    for step in (1, 2):
        for rank in (0, 1):  # each process sampled whole groups: 2 prompts x 4 samples
            mine = [r for r in rollouts if r["step"] == step and r["rank"] == rank]
            assert len(mine) == 8 and all(sum(m["prompt_id"] == r["prompt_id"] for m in mine) == 4 for r in mine)
        step_prompts = {r["prompt_id"] for r in rollouts if r["step"] == step}
        assert len(step_prompts) == 4
        for pid in step_prompts:  # advantages over the whole group: zero mean
            assert abs(sum(r["advantage"] for r in rollouts if r["step"] == step and r["prompt_id"] == pid)) < 1e-4
    assert any(len({r["reward"] for r in rollouts if r["step"] == st and r["prompt_id"] == pid}) > 1
               for st in (1, 2) for pid in {r["prompt_id"] for r in rollouts})
    metrics = rows("train_steps")
    assert {r["rank"] for r in metrics} == {0}
    keyed = {(r["step"], r["metric"]): r["value"] for r in metrics}
    assert len(keyed) == len(metrics)  # one value per step and metric: only process 0 wrote them
    assert {(0, "heldout_reward"), (2, "heldout_reward")} <= set(keyed)  # before and after, on held-out prompts
    logged = [json.loads(line) for line in (tmp_path / "out" / "dump" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in logged] == [1, 2]
    assert [row["reward_mean"] for row in logged] == [keyed[(k, "reward_mean")] for k in (1, 2)]
    for step in (1, 2):  # TRL's reward mean is over both processes, and so are ours
        ours = [r for r in rollouts if r["step"] == step]
        assert abs(keyed[(step, "reward_mean")] - sum(r["reward"] for r in ours) / 16) < 1e-4
        assert abs(keyed[(step, "accuracy")] - sum(r["verdict"] == "correct" for r in ours) / 16) < 1e-6
    assert any(keyed[(step, "grad_norm")] > 0 for step in (1, 2))

    trained = AutoModelForCausalLM.from_pretrained(tmp_path / "out" / "hf", dtype=torch.float32)
    teacher = AutoModelForCausalLM.from_pretrained(TEACHER, dtype=torch.float32)
    changed = [k for k, v in trained.state_dict().items() if not torch.equal(v, teacher.state_dict()[k])]
    assert changed, "the exported weights equal the teacher's"
