"""Recipe architecture -> torchtitan Qwen3 `ModelSpec`.

A preset used as is becomes torchtitan's own flavor (`model_registry("0.6B")`, ...), so a cluster
run trains exactly the upstream model; any other architecture (the tiny ones, a preset varied by
`arch`) is built here from the same config builders the stock flavors use. Either way the stage's
RoPE base (ABF) and maximum length are set per stage.

The same builder serves pretraining and SFT (through torchtitan's trainer) and posttrain/policy.py's
scorer, which reads its architecture from an HF `config.json` with `arch_from_hf` (the inverse of the
export's config).

MoE (Qwen3-30B-A3B, -235B-A22B and smaller variations) is torchtitan's Qwen3 MoE layer with two
settings changed so that what trains is what the HF export holds (transformers'
`Qwen3MoeForCausalLM`, vLLM's `Qwen3MoeForCausalLM`):
- no auxiliary-loss-free load balancing: torchtitan's default keeps a per-expert routing bias
  (`expert_bias_E`, updated before each optimizer step) that HF Qwen3-MoE has no weight for, so
  the export would route differently from the model that trained (torchtitan 0.3.0 has no
  auxiliary balancing loss, Qwen3's own method, to use instead);
- the recipe's `rms_norm_eps` and `norm_topk_prob` (torchtitan's builder fixes 1e-6 and True).
"""

from __future__ import annotations

import dataclasses
from functools import partial

import torch.nn as nn
from torchtitan.components.optimizer import register_moe_load_balancing_hook
from torchtitan.distributed.pipeline_parallel import pipeline_llm
from torchtitan.models import qwen3 as tt_qwen3
from torchtitan.models.common import CosSinRoPE, Embedding, Linear
from torchtitan.models.common.config_utils import get_attention_config, make_ffn_config, make_gqa_config
from torchtitan.models.common.nn_modules import RMSNorm
from torchtitan.models.common.param_init import skip_param_init
from torchtitan.models.qwen3 import parallelize_qwen3
from torchtitan.models.qwen3.model import Qwen3Model, Qwen3TransformerBlock
from torchtitan.models.qwen3.state_dict_adapter import Qwen3StateDictAdapter
from torchtitan.protocols.model_spec import ModelSpec

# Same initialisation as torchtitan's stock Qwen3 flavors (models/qwen3/__init__.py).
_LINEAR_INIT = {"weight": partial(nn.init.normal_, std=0.02), "bias": nn.init.zeros_}
_NORM_INIT = {"weight": nn.init.ones_}
_EMBEDDING_INIT = {"weight": partial(nn.init.normal_, std=0.02)}
_EMBEDDING_SKIP_INIT = {"weight": skip_param_init}


def stock_flavor(arch: dict, preset: str | None) -> str | None:
    """torchtitan's flavor name when `arch` is exactly the preset's architecture."""
    if not preset:
        return None
    from qwen3_recipe.presets import PRESETS
    official = PRESETS.get(preset)
    flavor = preset.removeprefix("Qwen3-")
    same = official is not None and all(arch.get(k) == v for k, v in dataclasses.asdict(official).items()
                                        if k not in ("rope_theta", "max_position_embeddings"))
    return flavor if same and flavor in tt_qwen3.qwen3_configs else None


def arch_from_hf(config: dict) -> dict:
    """The arch dict (presets.Arch fields) of an HF Qwen3 / Qwen3-MoE config.json: what
    `model_spec` builds to load those weights (the inverse of export.hf_config)."""
    from qwen3_recipe.presets import Arch
    return dataclasses.asdict(Arch.from_hf_config(config))


def _faithful_moe(config: Qwen3Model.Config, arch: dict) -> None:
    """MoE layers that train what the HF export holds (module docstring)."""
    eps = float(arch.get("rms_norm_eps", 1e-6))
    for layer in config.layers:
        if getattr(layer, "moe", None) is None:
            continue
        for norm in (layer.attention_norm, layer.ffn_norm, layer.attention.qk_norm):
            norm.eps = eps
        layer.moe.load_balance_coeff = None
        layer.moe.router.route_norm = bool(arch.get("norm_topk_prob", True))


def model_config(arch: dict, attn_backend: str = "flex") -> Qwen3Model.Config:
    """A Qwen3 of any size, dense or MoE (the stock flavors fix eps 1e-6 and the sizes)."""
    dim, head_dim, vocab = arch["hidden_size"], arch["head_dim"], arch["vocab_size"]
    eps = float(arch.get("rms_norm_eps", 1e-6))
    tied = bool(arch.get("tie_embeddings", False))

    def norm(n: int) -> RMSNorm.Config:
        return RMSNorm.Config(normalized_shape=n, eps=eps, param_init=_NORM_INIT)

    rope = CosSinRoPE.Config(dim=head_dim, max_seq_len=int(arch["max_position_embeddings"]),
                             theta=float(arch["rope_theta"]))
    if arch.get("num_experts"):
        # torchtitan's own MoE layer builder (private in 0.3.0, which we pin exactly)
        layers = tt_qwen3._build_qwen3_moe_layers(
            n_layers=arch["num_layers"], dim=dim, n_heads=arch["num_heads"], n_kv_heads=arch["num_kv_heads"],
            head_dim=head_dim, moe_hidden_dim=arch["moe_intermediate_size"], num_experts=arch["num_experts"],
            top_k=arch["num_experts_per_tok"], attn_backend=attn_backend, moe_comm_backend="standard", rope=rope)
    else:
        layers = [
            Qwen3TransformerBlock.Config(
                attention_norm=norm(dim), ffn_norm=norm(dim),
                attention=make_gqa_config(
                    dim=dim, n_heads=arch["num_heads"], n_kv_heads=arch["num_kv_heads"],
                    head_dim=head_dim, wqkv_param_init=_LINEAR_INIT, wo_param_init=_LINEAR_INIT,
                    inner_attention=get_attention_config(attn_backend), fuse_qkv=True,
                    rope=rope, qk_norm=norm(head_dim)),
                feed_forward=make_ffn_config(dim=dim, hidden_dim=arch["intermediate_size"],
                                             w1_param_init=_LINEAR_INIT, w2w3_param_init=_LINEAR_INIT))
            for _ in range(arch["num_layers"])]
    config = Qwen3Model.Config(
        vocab_size=vocab, dim=dim, norm=norm(dim), enable_weight_tying=tied,
        tok_embeddings=Embedding.Config(num_embeddings=vocab, embedding_dim=dim,
                                        param_init=_EMBEDDING_SKIP_INIT if tied else _EMBEDDING_INIT),
        lm_head=Linear.Config(in_features=dim, out_features=vocab, param_init=_LINEAR_INIT),
        layers=layers)
    _faithful_moe(config, arch)
    return config


def set_rope(config: Qwen3Model.Config, theta: float, max_seq_len: int) -> None:
    """The stage's RoPE base (ABF raises it for long context) on every layer."""
    for layer in config.layers:
        layer.attention.rope.theta = float(theta)
        layer.attention.rope.max_seq_len = int(max_seq_len)


def model_spec(arch: dict, preset: str | None = None) -> ModelSpec:
    flavor = stock_flavor(arch, preset)
    if flavor:
        spec = tt_qwen3.model_registry(flavor)
    else:
        spec = ModelSpec(name="qwen3", flavor="recipe", model=model_config(arch),
                         parallelize_fn=parallelize_qwen3, pipelining_fn=pipeline_llm,
                         post_optimizer_build_fn=register_moe_load_balancing_hook if arch.get("num_experts") else None,
                         state_dict_adapter=Qwen3StateDictAdapter)
    _faithful_moe(spec.model, arch)
    set_rope(spec.model, arch["rope_theta"], arch["max_position_embeddings"])
    return spec
