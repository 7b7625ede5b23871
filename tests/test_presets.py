"""Presets against the official Qwen3 config.json values, and against transformers' own models."""

import json

import pytest

from qwen3_recipe.presets import PRESETS, find_preset, resolve_arch

# Copied by hand from Qwen/<model>/config.json on the Hugging Face hub (April 2025 releases):
# (layers, hidden, heads, kv_heads, head_dim, intermediate, moe_intermediate, experts, active, tied, rope, vocab)
OFFICIAL = {
    "Qwen3-0.6B": (28, 1024, 16, 8, 128, 3072, 0, 0, 0, True, 1e6, 151936),
    "Qwen3-1.7B": (28, 2048, 16, 8, 128, 6144, 0, 0, 0, True, 1e6, 151936),
    "Qwen3-4B": (36, 2560, 32, 8, 128, 9728, 0, 0, 0, True, 1e6, 151936),
    "Qwen3-8B": (36, 4096, 32, 8, 128, 12288, 0, 0, 0, False, 1e6, 151936),
    "Qwen3-14B": (40, 5120, 40, 8, 128, 17408, 0, 0, 0, False, 1e6, 151936),
    "Qwen3-32B": (64, 5120, 64, 8, 128, 25600, 0, 0, 0, False, 1e6, 151936),
    "Qwen3-30B-A3B": (48, 2048, 32, 4, 128, 6144, 768, 128, 8, False, 1e6, 151936),
    "Qwen3-235B-A22B": (94, 4096, 64, 4, 128, 12288, 1536, 128, 8, False, 1e6, 151936),
}
KEYS = ("num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim",
        "intermediate_size", "moe_intermediate_size", "num_experts", "num_experts_per_tok",
        "tie_word_embeddings", "rope_theta", "vocab_size")


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_preset_equals_official_config_field_by_field(name):
    cfg = PRESETS[name].to_hf_config()
    for key, expected in zip(KEYS, OFFICIAL[name]):
        assert cfg.get(key, 0) == expected, f"{name}.{key}"
    assert cfg["model_type"] == ("qwen3_moe" if OFFICIAL[name][7] else "qwen3")
    assert cfg["max_position_embeddings"] == 40960 and cfg["rms_norm_eps"] == 1e-6


def test_published_sizes():
    # Model cards: 0.6B total / 0.44B non-embedding; 30.5B total / 3.3B active; 235B / 22B active.
    assert round(PRESETS["Qwen3-0.6B"].total_params / 1e9, 1) == 0.6
    assert round((PRESETS["Qwen3-0.6B"].total_params - 151936 * 1024) / 1e9, 2) == 0.44
    assert round(PRESETS["Qwen3-30B-A3B"].total_params / 1e9, 1) == 30.5
    assert 3.3e9 <= PRESETS["Qwen3-30B-A3B"].active_params < 3.4e9  # the card truncates 3.35 to 3.3
    assert round(PRESETS["Qwen3-235B-A22B"].total_params / 1e9) == 235
    assert round(PRESETS["Qwen3-235B-A22B"].active_params / 1e9) == 22


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_parameter_count_matches_transformers_model(name):
    """Build the model from our config.json with transformers on the meta device and count."""
    import torch
    import transformers

    arch = PRESETS[name]
    cfg = json.loads(json.dumps(arch.to_hf_config(name)))
    config = transformers.AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    assert sum(p.numel() for p in model.parameters()) == arch.total_params
    assert config.num_hidden_layers == arch.num_layers


def test_loose_preset_names_and_overrides():
    assert find_preset("0.6b") == find_preset("qwen3-0.6B") == "Qwen3-0.6B"
    assert find_preset("7B") is None
    varied = resolve_arch("Qwen3-0.6B", {"num_layers": 24})
    assert varied.num_layers == 24 and varied.hidden_size == 1024
    with pytest.raises(ValueError, match="needs"):
        resolve_arch(None, {"hidden_size": 64})
