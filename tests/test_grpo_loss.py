"""GRPO's loss, checked against hand computation, and what it is taken over:

- the clipped objective with ratio != 1 (upper clip for a positive advantage, lower clip for a
  negative one) plus the k3 KL term, value and gradient, equal the formula worked out by hand;
- tokens the thinking budget forced take no part in loss or gradient (they still condition the
  tokens after them), and sample_groups marks them while the sampled tokens keep their old
  log-probabilities (no more all-None, ratio 1);
- the policy's new log-probabilities are at the sampling temperature: log_softmax(logits / T);
- (slow) through real vLLM: a budget-truncated rollout at T != 1 has vLLM's old log-probabilities
  for its sampled tokens, at T, and its forced tokens masked.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import REPO

TEACHER = REPO / "tests" / "assets" / "tiny-teacher"


# --------------------------------------------------------------------------- the loss by hand

def _hand_grpo(new, old, ref, adv, eps, beta):
    """Loss and d loss / d new, token by token in plain floats (token-level mean over all tokens)."""
    n = sum(len(s) for s in new)
    loss, grads = 0.0, []
    for lp_s, old_s, ref_s, a in zip(new, old, ref, adv):
        g_s = []
        for lp, o, r in zip(lp_s, old_s, ref_s):
            ratio = math.exp(lp - o)
            unclipped, clipped = ratio * a, min(max(ratio, 1 - eps), 1 + eps) * a
            d = r - lp
            k3 = math.exp(d) - d - 1
            loss += (-min(unclipped, clipped) + beta * k3) / n
            # the unclipped branch carries the gradient -ratio * A; the clipped one none (its ratio is constant)
            pg = -ratio * a if unclipped <= clipped else 0.0
            g_s.append((pg + beta * (1 - math.exp(d))) / n)
        grads.append(g_s)
    return loss, grads


def test_grpo_loss_with_clipping_and_kl_equals_the_hand_computed_one():
    from qwen3_recipe.posttrain.objectives import grpo_loss
    eps, beta = 0.2, 0.05
    # ratios: A > 0: 1.5 (above 1 + eps: clipped), 0.7 (below 1 - eps: not clipped, min picks it), 1.1
    #         A < 0: 0.6 (below 1 - eps: clipped), 1.4 (above 1 + eps: not clipped), 0.95
    ratios = [[1.5, 0.7, 1.1], [0.6, 1.4, 0.95]]
    old = [[-1.2, -0.4, -2.0], [-0.9, -1.7, -0.3]]
    new = [[o + math.log(r) for o, r in zip(os_, rs)] for os_, rs in zip(old, ratios)]
    ref = [[-1.0, -0.8, -1.5], [-1.1, -1.0, -0.6]]
    adv = [1.3, -0.7]
    want_loss, want_grad = _hand_grpo(new, old, ref, adv, eps, beta)

    lps = [torch.tensor(s, dtype=torch.float64, requires_grad=True) for s in new]
    loss, stats = grpo_loss(lps, [torch.tensor(s, dtype=torch.float64) for s in old],
                            torch.tensor(adv, dtype=torch.float64), eps,
                            [torch.tensor(s, dtype=torch.float64) for s in ref], beta)
    loss.backward()
    assert loss.item() == pytest.approx(want_loss, abs=1e-6)
    for lp, g in zip(lps, want_grad):
        assert lp.grad.tolist() == pytest.approx(g, abs=1e-6)
    # the clipped tokens' policy-gradient part is gone: only the KL's gradient is left there
    assert lps[0].grad[0].item() == pytest.approx(beta * (1 - math.exp(ref[0][0] - new[0][0])) / 6, abs=1e-9)
    assert lps[1].grad[0].item() == pytest.approx(beta * (1 - math.exp(ref[1][0] - new[1][0])) / 6, abs=1e-9)
    # 4 of 6 tokens lie outside [1 - eps, 1 + eps]
    assert stats["clip_fraction"] == pytest.approx(4 / 6)
    k3 = [math.exp(r - n) - (r - n) - 1 for rs, ns in zip(ref, new) for r, n in zip(rs, ns)]
    assert stats["kl_ref"] == pytest.approx(sum(k3) / 6, abs=1e-6)


def test_forced_tokens_contribute_nothing_to_the_loss_or_its_gradient():
    from qwen3_recipe.posttrain.objectives import grpo_loss
    new = [torch.tensor([-1.0, -0.5, -0.2, -3.0, -0.7], dtype=torch.float64, requires_grad=True)]
    forced = torch.tensor([False, False, True, True, False])
    ref = [torch.tensor([-1.1, -0.4, -9.0, -0.1, -0.9], dtype=torch.float64)]
    adv = torch.tensor([0.9], dtype=torch.float64)

    def loss_with(old_forced: list[float]) -> tuple[float, list[float]]:
        old = torch.tensor([-1.3, -0.1, *old_forced, -0.6], dtype=torch.float64)
        if new[0].grad is not None:
            new[0].grad = None
        loss, _ = grpo_loss(new, [old], adv, 0.2, ref, 0.1, masks=[~forced])
        loss.backward()
        return loss.item(), new[0].grad.tolist()

    a, grad_a = loss_with([0.0, 0.0])
    b, grad_b = loss_with([-40.0, 5.0])  # any old value there: a ratio of e^40 would dominate if it counted
    assert a == b and grad_a == grad_b
    assert grad_a[2] == grad_a[3] == 0.0 and grad_a[0] != 0.0
    # the same as the loss over the sampled tokens alone
    keep = ~forced
    alone, _ = grpo_loss([new[0].detach()[keep]], [torch.tensor([-1.3, -0.1, -0.6], dtype=torch.float64)], adv,
                         0.2, [ref[0][keep]], 0.1)
    assert a == pytest.approx(alone.item(), abs=1e-12)


# --------------------------------------------------------------------------- the policy's side

@pytest.fixture(scope="module")
def policy():
    from qwen3_recipe.posttrain.policy import Policy
    return Policy(TEACHER)


SEQS = [([5, 17, 33, 40], [61, 62, 70, 81, 99, 100]), ([5, 18, 34], [63, 64, 65, 66])]


def test_new_logprobs_at_temperature_are_log_softmax_of_logits_over_t(policy):
    from qwen3_recipe.posttrain.policy import Batch
    from qwen3_recipe.posttrain.rollouts import logprobs_of
    T = 0.6
    batch = Batch.pack(SEQS)
    with torch.no_grad():
        logits = policy.logits(batch)
    want = [torch.log_softmax(logits[s - 1:e - 1] / T, -1).gather(-1, batch.tokens[0, s:e, None])[:, 0]
            for s, e in batch.spans]
    with torch.no_grad():
        got = policy.token_logprobs(batch, T)
    for g, w in zip(got, want):
        assert torch.allclose(g, w, atol=1e-6)
    assert not torch.allclose(got[0], policy.token_logprobs(batch)[0].detach(), atol=1e-3)  # T matters here
    per_seq = logprobs_of(policy, SEQS, [T, 1.0])
    assert torch.allclose(per_seq[0], want[0], atol=1e-6)
    assert torch.allclose(per_seq[1], policy.token_logprobs(batch)[1].detach(), atol=1e-6)


class _FakeEngine:
    """Two samples as the engines report a budget cut: two-phase (inserted tokens have no
    log-probabilities) and vLLM's native budget (forced through the logits: it reports numbers there)."""

    def __init__(self, early_stop=(90, 91, 92)) -> None:
        from types import SimpleNamespace
        self.markers = SimpleNamespace(early_stop=early_stop)

    def generate(self, requests):
        from qwen3_recipe.synth.sampling import Result, Sample
        ids = [10, 11, 90, 91, 92, 12, 13]
        lp = [{10: -0.5}, {11: -0.25}, None, None, None, {12: -1.0}, {13: -0.125}]
        two_phase = Sample("", ids, "stop", lp, thinking_tokens=2, budget_cut=True, cut_at=2)
        native = Sample("", ids, "stop", [{10: -0.5}, {11: -0.25}, {90: -7.0}, {91: -6.0}, {92: -5.0}, {12: -1.0},
                                          {13: -0.125}], thinking_tokens=2, budget_cut=True, cut_at=2)
        plain = Sample("", [10, 11, 12], "stop", [{10: -0.5}, {11: -0.25}, {12: -1.0}])
        return [Result(r.id, "think", [1, 2, 3], [two_phase, native, plain]) for r in requests]


def test_sample_groups_marks_forced_tokens_and_keeps_the_sampled_tokens_logprobs():
    from types import SimpleNamespace

    from qwen3_recipe.posttrain.rollouts import sample_groups
    from qwen3_recipe.posttrain.trl_grpo import rollout_metrics
    from qwen3_recipe.synth.prompts import Prompt
    groups = sample_groups(_FakeEngine(), [Prompt("p", "t", "q", "a")], step=0, seed=0, n=3, max_tokens=16,
                           temperature=1.0, thinking_budget=2)
    two_phase, native, plain = groups[0]
    for r in (two_phase, native):
        assert r.forced.tolist() == [False, False, True, True, True, False, False]
        assert r.old_logps.tolist() == [-0.5, -0.25, 0.0, 0.0, 0.0, -1.0, -0.125]  # real ones where sampled
        assert r.sampled.sum() == 4 and r.temperature == 1.0
    assert plain.forced.sum() == 0 and plain.old_logps.tolist() == [-0.5, -0.25, -1.0]
    for r in (two_phase, native, plain):
        r.reward, r.verdict = 1.0, "correct"
    one_process = SimpleNamespace(device="cpu", reduce=lambda t, reduction: t)  # what it asks of accelerate
    assert rollout_metrics(groups[0], one_process)["forced_tokens"] == 6.0
    # an engine whose log-probabilities are at T = 1 cannot supply the old side of a T = 0.7 rollout:
    # the policy scores it at T before the update instead (forced tokens stay marked)
    hot = sample_groups(_FakeEngine(), [Prompt("p", "t", "q", "a")], step=0, seed=0, n=3, max_tokens=16,
                        temperature=0.7, thinking_budget=2)[0]
    assert all(r.old_logps is None and r.temperature == 0.7 for r in hot) and hot[0].forced.sum() == 3


# --------------------------------------------------------------------------- through real vLLM

@pytest.mark.slow
def test_vllm_rollout_cut_by_the_budget_keeps_old_logprobs_at_t_and_masks_forced_tokens(policy, tmp_path):
    """vLLM's native budget forces the early-stop text through the logits: its (processed) log-probability
    there is 0, not the policy's; the sampled tokens' are the policy's at T. A GRPO step of the stage's
    trainer (TRL's, posttrain/trl_grpo.py) over such rollouts is on-policy (ratio 1 on sampled tokens: nothing
    clipped) and records the forced tokens in metrics.jsonl."""
    pytest.importorskip("vllm")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qwen3_recipe.posttrain.grpo import GRPOSettings
    from qwen3_recipe.posttrain.metric_rows import read_rows
    from qwen3_recipe.posttrain.rollout_engine import (
        logprobs_at_sampling_temperature,
        push_weights,
        rollout_engine,
    )
    from qwen3_recipe.posttrain.rollouts import logprobs_of, sample_groups
    from qwen3_recipe.posttrain.trl_grpo import train_grpo
    from qwen3_recipe.posttrain.trl_lowering import grpo_args
    from qwen3_recipe.provenance.recorder import ShardRecorder
    from qwen3_recipe.synth.prompts import Prompt
    T, budget = 0.7, 3
    prompts = [Prompt(f"p{i}", "t", f"What is {i} + {i + 2}?", str(2 * i + 2)) for i in range(3)]
    with rollout_engine(TEACHER, 64) as engine:
        assert logprobs_at_sampling_temperature(engine)
        push_weights(engine, policy.hf_state_dict())
        early_stop = len(engine.markers.early_stop)
        groups = sample_groups(engine, prompts, step=0, seed=3, n=2, max_tokens=48, temperature=T,
                               thinking_budget=budget)
        rollouts = [r for g in groups for r in g]
        cut = [r for r in rollouts if r.forced.any()]
        assert cut, "the tiny teacher thinks for more than 3 tokens: some rollouts must be cut"
        for r in cut:
            assert r.old_logps is not None and r.temperature == T
            assert int(r.forced.sum()) == min(early_stop, len(r.response_ids) - int(r.forced.nonzero()[0]))
            keep = r.sampled
            at_t, at_one = logprobs_of(policy, [r.seq], T)[0], logprobs_of(policy, [r.seq])[0]
            # vLLM's log-probabilities of the sampled tokens are the policy's at T, not at 1
            assert torch.allclose(r.old_logps[keep], at_t[keep], atol=2e-3), (r.old_logps - at_t)[keep].abs().max()
            assert not torch.allclose(r.old_logps[keep], at_one[keep], atol=2e-3)
            assert (r.old_logps[r.forced] == 0).all()

        # one GRPO step over such rollouts (a reward for the cut ones, so advantages differ)
        def reward(r):
            return float(bool(r.forced.any())), "cut" if r.forced.any() else "not cut"
        s = GRPOSettings(steps=1, batch_size=3, group_size=2, max_response_tokens=48, thinking_budget=budget,
                         temperature_start=T, temperature_end=T, seed=3)
        lowered = {"grpo": vars(s), "lr": 1e-4, "seed": 3, "checkpoints": 1, "optimizer": {"grad_clip": 1.0}}
        metrics = tmp_path / "metrics.jsonl"
        model = AutoModelForCausalLM.from_pretrained(TEACHER, dtype=torch.float32)
        train_grpo(model, AutoTokenizer.from_pretrained(TEACHER), engine, prompts, reward, s,
                   grpo_args(lowered, tmp_path) | {"use_cpu": True}, stage="reasoning_rl",
                   recorder_for=lambda st, rank: ShardRecorder(tmp_path / "prov", "j", f"s{st}", rank),
                   metrics_path=metrics)
    row = read_rows(metrics)[0]
    assert row["forced_tokens"] > 0 and row["temperature"] == T
    assert row["clip_fraction"] == 0.0  # on-policy: ratio 1 where sampled
