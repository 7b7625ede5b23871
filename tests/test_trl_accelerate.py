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


def _spec(tmp_path: Path, relative: bool = False) -> Path:  # relative: out and provenance under the cwd
    from qwen3_recipe.posttrain.stage_plan import GRPOSettings
    prompts = ([{"prompt_id": f"p{i}", "source": "tiny", "text": f"What is {i} + {i % 3}?", "gold": str(i + i % 3)}
                for i in range(4)]
               + [{"prompt_id": f"q{i}", "source": "tiny", "text": f"What is {i} + {i + 2}?", "gold": str(2 * i + 2)}
                  for i in range(4)])
    s = GRPOSettings(steps=2, batch_size=4, group_size=4, max_response_tokens=48, thinking_budget=10, seed=1)
    arch = {"vocab_size": 578, "hidden_size": 128, "num_layers": 4, "num_heads": 4, "num_kv_heads": 2, "head_dim": 32,
            "intermediate_size": 384, "tie_embeddings": True, "rope_theta": 1e4, "max_position_embeddings": 1024}
    where = Path() if relative else tmp_path
    spec = {"kind": "reasoning_rl", "init": str(TEACHER), "out": str(where / "out"),
            "provenance": str(where / "prov"), "job": "posttrain.rl", "stage": "rl", "engine": "transformers",
            "prompts": prompts,
            "heldout": [{"prompt_id": f"h{i}", "source": "tiny", "text": f"What is {i} + 5?", "gold": str(i + 5)}
                        for i in range(2)], "export": {"tokenizer_dir": str(TEACHER), "arch": arch},
            "lowered": {"grpo": vars(s), "lr": 5e-4, "seed": 1, "checkpoints": 1, "verifier": {"type": "math"},
                        "optimizer": {"beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.0,
                                      "grad_clip": 1.0}},
            "execution": {"executor": "ray", "fsdp": "none", "mixed_precision": "fp32",
                          "activation_checkpointing": "none", "ray": {"address": None}}}
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    return tmp_path / "spec.json"


ENV = {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "TOKENIZERS_PARALLELISM": "false",
       "QWEN3_RECIPE_ROLLOUT_ENGINE": "transformers", "QWEN3_RECIPE_NPROC": "2"}


def _rows(folder: Path, table: str) -> list[dict]:  # with the shard's rank (the file's `-r<rank>` suffix)
    import pyarrow.parquet as pq
    return [r | {"rank": int(f.stem.rsplit("-r", 1)[1])}
            for f in sorted((folder / "prov" / table).glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


@pytest.fixture(scope="module")
def launched(tmp_path_factory) -> Path:
    """The stage's two processes under `accelerate launch` (the executor `local` runs them so)."""
    tmp_path = tmp_path_factory.mktemp("accelerate")
    spec = _spec(tmp_path)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), "-m", "qwen3_recipe.posttrain.trl_worker", str(spec)]
    log = tmp_path / "launch.log"
    with log.open("w") as f:
        done = subprocess.run(cmd, env=os.environ | ENV, stdout=f, stderr=subprocess.STDOUT, timeout=600)
    assert done.returncode == 0, log.read_text()[-4000:]
    return tmp_path


def test_two_process_grpo_through_accelerate_launch(launched: Path) -> None:
    from transformers import AutoModelForCausalLM
    tmp_path, log = launched, launched / "launch.log"
    text = log.read_text()
    for rank in (0, 1):  # two processes of one gloo group, on CPU
        assert f"trl_worker: process {rank} of 2, DistributedType.MULTI_CPU, backend gloo" in text, text[-3000:]

    rows = lambda table: _rows(tmp_path, table)  # noqa: E731

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


@pytest.mark.slow
def test_the_same_processes_as_ray_train_workers(launched: Path, tmp_path: Path) -> None:
    """execution.executor: ray: posttrain/trl_ray.py starts the two processes as Ray Train workers on a local Ray
    instance (gloo on CPU) with accelerate's settings; they give exactly the accelerate-launched run's rollouts,
    rewards, advantages and step metrics, and the same export. The spec's paths are relative, as a run directory
    of `runs/<name>` makes them: they stay the driver's, though Ray Train moves each worker to a folder of its own."""
    pytest.importorskip("ray")
    from safetensors.torch import load_file
    spec = _spec(tmp_path, relative=True)
    log = tmp_path / "ray.log"
    with log.open("w") as f:
        done = subprocess.run([sys.executable, "-m", "qwen3_recipe.posttrain.trl_ray", str(spec)], cwd=tmp_path,
                              env=os.environ | ENV, stdout=f, stderr=subprocess.STDOUT, timeout=600)
    text = log.read_text()
    assert done.returncode == 0, text[-4000:]
    assert "trl_ray: 2 Ray Train worker(s) on CPUs (gloo) at a local instance" in text
    for rank in (0, 1):
        assert f"trl_worker: process {rank} of 2, DistributedType.MULTI_CPU, backend gloo" in text, text[-3000:]
    keys = ("step", "prompt_id", "sample_id", "text", "reward", "verdict", "rank")
    sort = lambda rows: sorted(rows, key=lambda r: r["sample_id"])  # noqa: E731
    a, b = sort(_rows(launched, "rollouts")), sort(_rows(tmp_path, "rollouts"))
    assert len(b) == 32 and [{k: r[k] for k in keys} for r in b] == [{k: r[k] for k in keys} for r in a]
    assert [r["advantage"] for r in b] == pytest.approx([r["advantage"] for r in a], abs=1e-5)
    metrics = lambda folder: {(r["step"], r["metric"]): r["value"] for r in _rows(folder, "train_steps")}  # noqa: E731
    x, y = metrics(launched), metrics(tmp_path)
    assert x.keys() == y.keys() and all(y[k] == pytest.approx(x[k], rel=1e-4, abs=1e-6) for k in x)
    assert y[(1, "grad_norm")] > 0
    exported = [load_file(str(next((d / "out" / "hf").glob("*.safetensors")))) for d in (launched, tmp_path)]
    assert exported[0].keys() == exported[1].keys()
    assert all(torch.allclose(exported[0][k], exported[1][k], atol=1e-5) for k in exported[0])


def test_ray_workers_get_what_accelerate_launch_would_tell_them() -> None:
    """FSDP2 over decoder layers and bf16, from the same launch flags the local and Slurm launches pass."""
    from qwen3_recipe.posttrain.trl_launch import launch_args
    from qwen3_recipe.posttrain.trl_ray import accelerate_env
    env = accelerate_env(launch_args({"fsdp": "full", "mixed_precision": "bf16"}, "qwen3_moe", 16) + ["-m", "x"])
    assert {k: env[k] for k in ("ACCELERATE_USE_FSDP", "FSDP_VERSION", "FSDP_TRANSFORMER_CLS_TO_WRAP",
                                "FSDP_STATE_DICT_TYPE", "ACCELERATE_MIXED_PRECISION")} == {
        "ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2", "FSDP_TRANSFORMER_CLS_TO_WRAP": "Qwen3MoeDecoderLayer",
        "FSDP_STATE_DICT_TYPE": "SHARDED_STATE_DICT", "ACCELERATE_MIXED_PRECISION": "bf16"}
    ddp = accelerate_env(launch_args({"fsdp": "none", "mixed_precision": "fp32"}, "qwen3", 2) + ["-m", "x"])
    assert "ACCELERATE_USE_FSDP" not in ddp and ddp["ACCELERATE_MIXED_PRECISION"] == "no"
