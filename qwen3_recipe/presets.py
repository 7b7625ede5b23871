"""Qwen3 architectures: the official presets, parameter counts, and HF `config.json` rendering.

Values are those of the released Hugging Face configs (Qwen/Qwen3-*/config.json, April 2025).
Kept free of torch/transformers imports: `plan` and `validate` use it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

QWEN3_VOCAB = 151_936  # config vocab; the tokenizer itself has 151,669 tokens
BOS_TOKEN_ID = 151_643  # <|endoftext|>
EOS_TOKEN_ID = 151_645  # <|im_end|>


@dataclass(frozen=True, slots=True)
class Arch:
    """A fully specified Qwen3 (dense or MoE) decoder."""

    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    vocab_size: int = QWEN3_VOCAB
    head_dim: int = 128
    tie_embeddings: bool = False
    rope_theta: float = 1_000_000.0
    max_position_embeddings: int = 40_960
    rms_norm_eps: float = 1e-6
    num_experts: int = 0
    num_experts_per_tok: int = 0
    moe_intermediate_size: int = 0
    norm_topk_prob: bool = True

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    def _attention_params(self) -> int:
        q = self.hidden_size * self.num_heads * self.head_dim
        kv = 2 * self.hidden_size * self.num_kv_heads * self.head_dim
        o = self.num_heads * self.head_dim * self.hidden_size
        return q + kv + o + 2 * self.head_dim  # + q_norm, k_norm

    def _mlp_params(self, active: bool) -> int:
        if not self.is_moe:
            return 3 * self.hidden_size * self.intermediate_size
        experts = self.num_experts_per_tok if active else self.num_experts
        router = self.hidden_size * self.num_experts
        return experts * 3 * self.hidden_size * self.moe_intermediate_size + router

    def _params(self, active: bool) -> int:
        layer = self._attention_params() + self._mlp_params(active) + 2 * self.hidden_size
        embed = self.vocab_size * self.hidden_size
        head = 0 if self.tie_embeddings else embed
        return self.num_layers * layer + embed + head + self.hidden_size

    @property
    def total_params(self) -> int:
        """Every stored parameter (tied embeddings counted once), as `model.parameters()` sums."""
        return self._params(active=False)

    @property
    def active_params(self) -> int:
        """Parameters used per token (MoE: routed experts only), tied embeddings counted once."""
        return self._params(active=True)

    @property
    def compute_params(self) -> int:
        """N in the 6·N·D training-FLOPs rule: activated parameters that do matmuls per token.

        The input embedding is a lookup (no FLOPs) and is left out; the output projection is a
        matmul and stays in, tied or not.
        """
        embed = self.vocab_size * self.hidden_size
        return self.active_params - embed + (embed if self.tie_embeddings else 0)

    def to_hf_config(self, name: str | None = None, rope_scaling: dict | None = None) -> dict[str, Any]:
        """The keys of transformers' Qwen3Config / Qwen3MoeConfig, as in the official files."""
        cfg: dict[str, Any] = {
            "architectures": ["Qwen3MoeForCausalLM" if self.is_moe else "Qwen3ForCausalLM"],
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": BOS_TOKEN_ID if self.vocab_size == QWEN3_VOCAB else None,
            "eos_token_id": EOS_TOKEN_ID if self.vocab_size == QWEN3_VOCAB else None,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "hidden_size": self.hidden_size,
            "initializer_range": 0.02,
            "intermediate_size": self.intermediate_size,
            "max_position_embeddings": self.max_position_embeddings,
            "max_window_layers": self.num_layers,
            "model_type": "qwen3_moe" if self.is_moe else "qwen3",
            "num_attention_heads": self.num_heads,
            "num_hidden_layers": self.num_layers,
            "num_key_value_heads": self.num_kv_heads,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_scaling": rope_scaling,
            "rope_theta": self.rope_theta,
            "sliding_window": None,
            "tie_word_embeddings": self.tie_embeddings,
            "torch_dtype": "bfloat16",
            "use_cache": True,
            "use_sliding_window": False,
            "vocab_size": self.vocab_size,
        }
        if self.is_moe:
            cfg.update({
                "decoder_sparse_step": 1,
                "mlp_only_layers": [],
                "moe_intermediate_size": self.moe_intermediate_size,
                "norm_topk_prob": self.norm_topk_prob,
                "num_experts": self.num_experts,
                "num_experts_per_tok": self.num_experts_per_tok,
                "output_router_logits": False,
                "router_aux_loss_coef": 0.001,
            })
        if name:
            cfg["_name_or_path"] = name
        return dict(sorted(cfg.items()))

    @classmethod
    def from_hf_config(cls, config: dict[str, Any]) -> "Arch":
        """The inverse of `to_hf_config`: the architecture of any Qwen3 / Qwen3-MoE `config.json`
        (ours, the official files, transformers' `save_pretrained`). Raises ValueError for what a
        Qwen3 built from `Arch` cannot be (dense layers between MoE ones, QKV bias, sliding
        window), rather than building another model than the weights'."""
        model_type = config.get("model_type", "qwen3")
        if model_type not in ("qwen3", "qwen3_moe"):
            raise ValueError(f"model_type {model_type!r} is not a Qwen3 (qwen3, qwen3_moe)")
        # transformers 5 writes num_experts as num_local_experts
        experts = int(config.get("num_experts") or config.get("num_local_experts") or 0)
        moe = model_type == "qwen3_moe" or experts > 0
        unsupported = [k for k, bad in (
            ("attention_bias", bool(config.get("attention_bias"))),
            ("use_sliding_window", bool(config.get("use_sliding_window"))),
            ("mlp_only_layers", moe and bool(config.get("mlp_only_layers"))),
            ("decoder_sparse_step", moe and int(config.get("decoder_sparse_step", 1)) != 1),
            ("hidden_act", config.get("hidden_act", "silu") != "silu")) if bad]
        if unsupported:
            raise ValueError(f"a Qwen3 config with {', '.join(unsupported)} set is not supported")
        rope = config.get("rope_parameters") or {}  # transformers 5 moves rope_theta here
        fields: dict[str, Any] = dict(
            vocab_size=int(config["vocab_size"]), hidden_size=int(config["hidden_size"]),
            num_layers=int(config["num_hidden_layers"]), num_heads=int(config["num_attention_heads"]),
            num_kv_heads=int(config.get("num_key_value_heads") or config["num_attention_heads"]),
            head_dim=int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]),
            intermediate_size=int(config.get("intermediate_size") or 0),
            tie_embeddings=bool(config.get("tie_word_embeddings", False)),
            rope_theta=float(config.get("rope_theta") or rope.get("rope_theta") or 1e6),
            rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
            max_position_embeddings=int(config["max_position_embeddings"]))
        if moe:
            fields.update(num_experts=experts,
                          num_experts_per_tok=int(config["num_experts_per_tok"]),
                          moe_intermediate_size=int(config["moe_intermediate_size"]),
                          norm_topk_prob=bool(config.get("norm_topk_prob", False)))
        return cls(**fields)

    def replace(self, **changes: Any) -> "Arch":
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, Arch] = {
    "Qwen3-0.6B": Arch(hidden_size=1024, num_layers=28, num_heads=16, num_kv_heads=8,
                       intermediate_size=3072, tie_embeddings=True),
    "Qwen3-1.7B": Arch(hidden_size=2048, num_layers=28, num_heads=16, num_kv_heads=8,
                       intermediate_size=6144, tie_embeddings=True),
    "Qwen3-4B": Arch(hidden_size=2560, num_layers=36, num_heads=32, num_kv_heads=8,
                     intermediate_size=9728, tie_embeddings=True),
    "Qwen3-8B": Arch(hidden_size=4096, num_layers=36, num_heads=32, num_kv_heads=8,
                     intermediate_size=12288),
    "Qwen3-14B": Arch(hidden_size=5120, num_layers=40, num_heads=40, num_kv_heads=8,
                      intermediate_size=17408),
    "Qwen3-32B": Arch(hidden_size=5120, num_layers=64, num_heads=64, num_kv_heads=8,
                      intermediate_size=25600),
    "Qwen3-30B-A3B": Arch(hidden_size=2048, num_layers=48, num_heads=32, num_kv_heads=4,
                          intermediate_size=6144, num_experts=128, num_experts_per_tok=8,
                          moe_intermediate_size=768),
    "Qwen3-235B-A22B": Arch(hidden_size=4096, num_layers=94, num_heads=64, num_kv_heads=4,
                            intermediate_size=12288, num_experts=128, num_experts_per_tok=8,
                            moe_intermediate_size=1536),
}

ARCH_FIELDS = tuple(f.name for f in dataclasses.fields(Arch))
REQUIRED_ARCH_FIELDS = tuple(f.name for f in dataclasses.fields(Arch)
                             if f.default is dataclasses.MISSING)


def yarn_scaling(yarn) -> dict | None:
    """config.json `rope_scaling` for a recipe's `model.yarn` (inference-time extension)."""
    if yarn is None:
        return None
    return {"rope_type": "yarn", "factor": yarn.factor,
            "original_max_position_embeddings": yarn.original_max_position_embeddings}


def find_preset(name: str) -> str | None:
    """Canonical preset name for loose spellings: `0.6B`, `qwen3-0.6b`, `Qwen3-0.6B`."""
    key = name.strip().lower().removeprefix("qwen3-").removeprefix("qwen3_")
    for preset in PRESETS:
        if preset.lower().removeprefix("qwen3-") == key:
            return preset
    return None


def resolve_arch(preset: str | None, overrides: dict[str, Any] | None) -> Arch:
    """A preset with `overrides` applied, or an architecture from `overrides` alone.

    Raises ValueError naming unknown presets or missing fields.
    """
    given = {k: v for k, v in (overrides or {}).items() if v is not None and k in ARCH_FIELDS}
    if preset is not None:
        canonical = find_preset(preset)
        if canonical is None:
            raise ValueError(f"unknown preset '{preset}'")
        return PRESETS[canonical].replace(**given)
    missing = [f for f in REQUIRED_ARCH_FIELDS if f not in given]
    if missing:
        raise ValueError("without a preset, `arch` needs " + ", ".join(missing))
    if "head_dim" not in given:
        given["head_dim"] = given["hidden_size"] // given["num_heads"]
    return Arch(**given)
