"""Issue 19: real GRPO steps through TRL's GRPOTrainer, configured by our lowering, with our rollouts (the
transformers engine, the Qwen3 template, the thinking budget) and our math verifier as its reward, on the
shipped tiny teacher: rewards differ within a group, the gradient is not zero, the weights move, every
rollout stays within the budget before its early-stop text, and forced tokens are out of the loss."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

TEACHER = Path(__file__).parent / "assets" / "tiny-teacher"
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


def test_grpo_steps_through_trl_with_our_rollouts_and_verifier(tmp_path: Path) -> None:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from qwen3_recipe.posttrain.grpo import verifier_reward
    from qwen3_recipe.posttrain.rollout_engine import rollout_engine
    from qwen3_recipe.posttrain.stage_plan import GRPOSettings
    from qwen3_recipe.posttrain.trl_lowering import grpo_args
    from qwen3_recipe.posttrain.trl_rollouts import RolloutHook, trl_reward
    from qwen3_recipe.synth.prompts import Prompt
    from qwen3_recipe.verify.verifiers import build_verifier

    budget = 10
    s = GRPOSettings(steps=2, batch_size=4, group_size=4, max_response_tokens=64, thinking_budget=budget, seed=1)
    lowered = {"grpo": vars(s), "lr": 5e-4, "seed": 1, "checkpoints": 1,
               "optimizer": {"beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.0, "grad_clip": 1.0}}
    prompts = [Prompt(f"p{i}", "tiny", f"What is {i} + {i % 3}?", str(i + i % 3)) for i in range(4)]
    prompts += [Prompt(f"q{i}", "tiny", f"What is {i} + {i + 2}?", str(2 * i + 2)) for i in range(4)]
    model = AutoModelForCausalLM.from_pretrained(TEACHER, dtype=torch.float32)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    with rollout_engine(TEACHER, 64, kind="transformers") as engine:
        hook = RolloutHook(engine, prompts, s)
        seen = []
        reward = trl_reward(verifier_reward(build_verifier({"type": "math"})))

        def recorded(prompts, completions, rollout, **kw):
            out = reward(prompts, completions, rollout, **kw)
            seen.append([(r.prompt.prompt_id, r.reward, r.verdict, r.forced.clone(), r.response_ids) for r in rollout])
            return out
        recorded.__name__ = reward.__name__
        args = GRPOConfig(**grpo_args(lowered, tmp_path) | {"use_cpu": True, "gradient_checkpointing": False,
                                                             "save_strategy": "no"})
        trainer = GRPOTrainer(model=model, reward_funcs=recorded, args=args, rollout_func=hook,
                              train_dataset=Dataset.from_dict({"prompt": [p.prompt_id for p in prompts]}),
                              processing_class=AutoTokenizer.from_pretrained(TEACHER))
        trainer.train()
        early_stop = engine.markers.early_stop

    assert len(seen) == 2 and all(len(step) == 16 for step in seen)  # 4 prompts x 4 samples per step
    groups = [step[i:i + 4] for step in seen for i in range(0, 16, 4)]
    assert all(len({pid for pid, *_ in g}) == 1 for g in groups)  # one prompt per group
    assert sorted(g[0][0] for g in groups) == sorted(p.prompt_id for p in prompts)  # one epoch, each prompt once
    rewards = [[r for _, r, *_ in g] for g in groups]
    assert any(len(set(g)) > 1 for g in rewards), f"no group with different rewards: {rewards}"
    cut = [(forced, ids) for step in seen for *_, forced, ids in step if forced.any()]
    assert cut, "a thinking budget of 10 tokens must cut some of the tiny teacher's rollouts"
    for forced, ids in cut:  # forced = the early-stop text, right where the budget ran out
        at = int(forced.nonzero()[0])
        assert ids[at:at + len(early_stop)] == list(early_stop)[:len(ids) - at]
    logs = [h for h in trainer.state.log_history if "grad_norm" in h]
    assert len(logs) == 2 and all(h["grad_norm"] > 0 for h in logs), logs
    moved = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert moved, "no weight changed"
    assert hook.version == 1  # weights pushed into the engine before each step's rollouts
