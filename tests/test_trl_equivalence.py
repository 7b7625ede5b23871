"""Issue 19, point 3: TRL's trainers, configured by our lowering (posttrain/trl_lowering.py), compute the same
losses as our single-process objectives on the same fixed batches, value and gradient:

- GRPO: `GRPOTrainer._compute_loss` (the real trainer on the shipped tiny teacher, its per-token log-probs
  replaced by a fixed leaf tensor) vs `objectives.grpo_loss`, with forced tokens (the thinking budget's
  early-stop text) masked out of both, with and without the KL term, at two clip widths. Negative controls:
  TRL's "grpo" loss type (per-sequence means) and its ratio-weighted KL give different numbers.
- Advantages: TRL's own `_generate_and_score_completions`, fed by a rollout hook and a reward function,
  normalises rewards per group as `objectives.group_advantages` does.
- DPO: `DPOTrainer._compute_loss` (fixed log-probs from a stub model) vs `objectives.dpo_loss`.
- On-policy distillation: TRL's generalised JSD at beta 1 / 0 vs `objectives.token_kl` reverse / forward.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from qwen3_recipe.posttrain import objectives  # noqa: E402
from qwen3_recipe.posttrain.trl_lowering import dpo_args, grpo_args, onpolicy_distill_args  # noqa: E402

TEACHER = Path(__file__).parent / "assets" / "tiny-teacher"
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


def lowered(**grpo) -> dict:
    """A reasoning_rl stage's lowered.json, as stage_plan writes it (the parts the lowering reads)."""
    g = {"steps": 4, "batch_size": 1, "group_size": 4, "max_response_tokens": 8, "clip_eps": 0.2, "kl_coef": 0.0,
         "temperature_start": 1.0, "temperature_end": 1.0, "sync_every": 1, "thinking_budget": None,
         "mode": "think", "seed": 0} | grpo
    return {"grpo": g, "lr": 1e-3, "warmup_steps": 0, "checkpoints": 4, "seed": 0,
            "optimizer": {"beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1, "grad_clip": 1.0}}


@pytest.fixture(scope="module")
def model_and_tokenizer():
    from transformers import AutoModelForCausalLM, AutoTokenizer
    return AutoModelForCausalLM.from_pretrained(TEACHER, dtype=torch.float32), AutoTokenizer.from_pretrained(TEACHER)


def grpo_trainer(model_and_tokenizer, tmp_path: Path, lowering: dict, rollout_func=None, reward=None, **override):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer
    model, tok = model_and_tokenizer
    args = GRPOConfig(**(grpo_args(lowering, tmp_path) | {"use_cpu": True, "gradient_checkpointing": False}
                         | override))
    return GRPOTrainer(model=model, reward_funcs=reward or (lambda completions, **kw: [0.0] * len(completions)),
                       args=args, train_dataset=Dataset.from_dict({"prompt": ["1+1="] * 4}), processing_class=tok,
                       rollout_func=rollout_func)


# --- GRPO ---------------------------------------------------------------------------------------------------

LENGTHS = [6, 3, 5, 2]  # four sequences of different lengths, right-padded to 6


def fixed_batch(seed: int = 0):
    """Per-token log-probs (a leaf: the gradient is read from it), old and reference log-probs, advantages of
    both signs, one sequence with two forced tokens (absurd old values there: they must not count), padding."""
    g = torch.Generator().manual_seed(seed)
    B, C = len(LENGTHS), max(LENGTHS)
    mask = torch.zeros(B, C)
    for i, n in enumerate(LENGTHS):
        mask[i, :n] = 1
    new = (-torch.rand(B, C, generator=g) * 3).requires_grad_(True)
    old = new.detach() + torch.randn(B, C, generator=g) * 0.4  # ratios well inside and outside the clip
    forced = torch.ones(B, C)
    forced[0, 2:4] = 0
    old[0, 2:4] = torch.tensor([40.0, -40.0])
    ref = new.detach() + torch.randn(B, C, generator=g) * 0.2
    adv = torch.tensor([1.3, -0.7, 0.4, -1.1])
    return new, old, ref, adv, mask, forced


def trl_grpo_loss(trainer, new, old, ref, adv, mask, forced):
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    trainer._get_per_token_logps_and_entropies = lambda *a, **k: (new, torch.zeros_like(new), None)
    B, C = new.shape
    inputs = {"prompt_ids": torch.ones(B, 2, dtype=torch.long), "prompt_mask": torch.ones(B, 2, dtype=torch.long),
              "completion_ids": torch.ones(B, C, dtype=torch.long), "completion_mask": mask.long(),
              "tool_mask": forced.long(), "advantages": adv, "old_per_token_logps": old,
              "ref_per_token_logps": ref, "num_items_in_batch": (mask * forced).sum()}
    return trainer._compute_loss(trainer.model, inputs)


def our_grpo_loss(new, old, ref, adv, mask, forced, clip_eps, kl_coef):
    rows = [slice(0, n) for n in LENGTHS]
    loss, _ = objectives.grpo_loss([new[i, s] for i, s in enumerate(rows)], [old[i, s] for i, s in enumerate(rows)],
                                   adv, clip_eps, [ref[i, s] for i, s in enumerate(rows)], kl_coef,
                                   masks=[forced[i, s].bool() for i, s in enumerate(rows)])
    return loss


def value_and_grad(fn, new):
    new.grad = None
    loss = fn()
    loss.backward()
    return loss.detach().clone(), new.grad.clone()


@pytest.mark.parametrize("clip_eps,kl_coef", [(0.2, 0.0), (0.2, 0.05), (0.28, 0.04)])
def test_grpo_loss_equals_trl(model_and_tokenizer, tmp_path, clip_eps, kl_coef) -> None:
    trainer = grpo_trainer(model_and_tokenizer, tmp_path, lowered(clip_eps=clip_eps, kl_coef=kl_coef))
    new, old, ref, adv, mask, forced = fixed_batch()
    theirs = value_and_grad(lambda: trl_grpo_loss(trainer, new, old, ref, adv, mask, forced), new)
    ours = value_and_grad(lambda: our_grpo_loss(new, old, ref, adv, mask, forced, clip_eps, kl_coef), new)
    torch.testing.assert_close(theirs[0], ours[0], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(theirs[1], ours[1], atol=1e-6, rtol=1e-6)
    assert theirs[1][0, 2:4].abs().max() == 0 and ours[1][0, 2:4].abs().max() == 0  # forced tokens: no gradient
    assert theirs[1][mask.bool() & forced.bool()].abs().max() > 0


def test_other_trl_choices_differ(model_and_tokenizer, tmp_path) -> None:
    """The lowering's choices matter: TRL's per-sequence 'grpo' mean and its ratio-weighted KL are other losses."""
    new, old, ref, adv, mask, forced = fixed_batch(1)
    ours = our_grpo_loss(new, old, ref, adv, mask, forced, 0.2, 1.0).detach()
    same = trl_grpo_loss(grpo_trainer(model_and_tokenizer, tmp_path, lowered(kl_coef=1.0)), new, old, ref, adv,
                         mask, forced).detach()
    torch.testing.assert_close(same, ours, atol=1e-6, rtol=1e-6)
    for override in ({"loss_type": "grpo"}, {"use_bias_correction_kl": True}):
        trainer = grpo_trainer(model_and_tokenizer, tmp_path, lowered(kl_coef=1.0), **override)
        theirs = trl_grpo_loss(trainer, new, old, ref, adv, mask, forced).detach()
        assert abs(float(theirs - ours)) > 1e-4, override  # 100x the tolerance the equal side meets


def test_group_advantages_equal_trl(model_and_tokenizer, tmp_path) -> None:
    """TRL's own generation-and-scoring step, fed by a rollout hook (our engine's place) and a reward function,
    gives the advantages `group_advantages` gives for the same rewards: a group with spread, one with two
    equal and two different, one with all equal (no signal)."""
    _, tok = model_and_tokenizer
    rewards = [1.0, 0.0, 0.5, 0.25, 1.0, 1.0, 0.0, 0.3, 0.7, 0.7, 0.7, 0.7]
    seen = []

    def rollout(prompts, trainer):
        seen.append(len(prompts))
        ids = tok("1+1=", add_special_tokens=False)["input_ids"]
        return {"prompt_ids": [ids] * len(prompts), "completion_ids": [[5 + k, 6] for k in range(len(prompts))],
                "logprobs": [[-0.5, -0.5]] * len(prompts), "env_mask": [[1, 1]] * len(prompts),
                "reward": rewards[:len(prompts)]}

    def reward(completions, reward, **kw):  # the rollout's extra field arrives as a keyword
        return list(reward)

    trainer = grpo_trainer(model_and_tokenizer, tmp_path, lowered(batch_size=3, group_size=4), rollout, reward)
    trainer.model.train()
    out = trainer._generate_and_score_completions([{"prompt": "1+1="} for _ in range(12)])  # a row each
    assert seen == [12]
    ours = objectives.group_advantages(torch.tensor(rewards).view(3, 4)).flatten()
    torch.testing.assert_close(out["advantages"], ours, atol=1e-6, rtol=1e-6)
    assert out["advantages"][8:].abs().max() == 0  # all equal: no signal


# --- DPO ----------------------------------------------------------------------------------------------------

def test_dpo_loss_equals_trl(model_and_tokenizer, tmp_path) -> None:
    from datasets import Dataset
    from transformers.utils import ModelOutput
    from trl import DPOConfig, DPOTrainer

    model, tok = model_and_tokenizer
    lowering = lowered() | {"beta": 0.1, "method": "hybrid"}
    pairs = Dataset.from_dict({"prompt": ["1+1=", "2+2="], "chosen": ["2", "4"], "rejected": ["3", "5"]})
    config = DPOConfig(**dpo_args(lowering, tmp_path) | {"use_cpu": True, "gradient_checkpointing": False})
    trainer = DPOTrainer(model=model, args=config, train_dataset=pairs, processing_class=tok)
    trainer.precompute_ref_logps = True
    g = torch.Generator().manual_seed(3)
    B, L = 3, 7
    completion = torch.zeros(2 * B, L, dtype=torch.long)
    for row, (start, end) in enumerate([(2, 7), (3, 5), (2, 4), (2, 6), (4, 7), (1, 3)]):
        completion[row, start:end] = 1
    shifted = completion[:, 1:].float()
    lp = (-torch.rand(2 * B, L - 1, generator=g) * 4).requires_grad_(True)

    class Stub(torch.nn.Module):  # what TRL's fused head returns: per-token log-probs, zero off the completion
        training = True

        def forward(self, **kw):
            masked = lp * shifted
            return ModelOutput(log_probs=masked, entropy=torch.zeros_like(lp), mean_logits=torch.zeros_like(lp),
                               is_top1=torch.zeros_like(lp, dtype=torch.bool), aux_loss=None)
    ref_c, ref_r = -torch.rand(B, generator=g) * 10, -torch.rand(B, generator=g) * 10
    inputs = {"input_ids": torch.ones(2 * B, L, dtype=torch.long), "attention_mask": torch.ones(2 * B, L),
              "completion_mask": completion, "ref_chosen_logps": ref_c, "ref_rejected_logps": ref_r}
    theirs = value_and_grad(lambda: trainer._compute_loss(Stub(), inputs, False), lp)
    seq = lambda: (lp * shifted).sum(-1)  # noqa: E731
    ours = value_and_grad(lambda: objectives.dpo_loss(seq()[:B], seq()[B:], ref_c, ref_r, 0.1)[0], lp)
    torch.testing.assert_close(theirs[0], ours[0], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(theirs[1], ours[1], atol=1e-6, rtol=1e-6)


# --- on-policy distillation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kl", ["reverse", "forward"])
def test_onpolicy_kl_equals_trl(kl) -> None:
    from trl.experimental.gkd import GKDTrainer
    settings = onpolicy_distill_args({"kl": kl})
    assert settings["lmbda"] == 1.0 and settings["temperature"] == 1.0
    g = torch.Generator().manual_seed(4)
    student = torch.randn(1, 5, 11, generator=g, requires_grad=True)
    teacher = torch.randn(1, 5, 11, generator=g)
    labels = torch.tensor([[-100, 3, 4, 1, -100]])  # the prompt's and the padding's positions do not count
    keep = labels[0] != -100
    theirs = value_and_grad(lambda: GKDTrainer.generalized_jsd_loss(
        student, teacher, labels=labels, beta=settings["beta"], temperature=settings["temperature"]), student)
    ours = value_and_grad(lambda: objectives.token_kl(student[0][keep], teacher[0][keep], kl).mean(), student)
    torch.testing.assert_close(theirs[0], ours[0], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(theirs[1], ours[1], atol=1e-6, rtol=1e-6)
