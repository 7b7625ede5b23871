"""Everything torchtitan 0.3.0 needs to train on a machine without an accelerator, in one place.

torchtitan does not support CPU upstream. Five gaps, each closed here and nowhere else:

1. `torchtitan.tools.utils` resolves the device at import time and falls back to "cuda"; several
   modules then copy `device_type` / `device_module` into their own namespace. On CPU we set
   them to "cpu" and to `_CpuDeviceModule` (torch.cpu plus the memory-stat calls torchtitan
   makes), in `torchtitan.tools.utils` and in every torchtitan module already imported.
2. torchtitan calls `torch.distributed.set_timeout`, which torch 2.13 lacks; the private
   `distributed_c10d._set_pg_timeout` does the same job.
3. `set_pg_timeouts` passes `device_ids=[current_device()]` to a barrier; gloo takes no device
   ids, so on CPU the barrier runs without them.
4. FlexAttention has no CPU backward and varlen attention has no CPU kernel:
   `SDPADocumentAttention` is a `VarlenAttention` (so the trainer hands it the per-document
   `VarlenMetadata`) that runs `F.scaled_dot_product_attention` with a dense per-document causal
   mask. `sdpa_document_attention` plugs it in through torchtitan's override hook:
   `--override.imports qwen3_recipe.train.cpu.sdpa_document_attention`, or
   `Trainer.Config.override.imports`.
5. MoE experts: torchtitan's `GroupedExperts` casts activations and weights to bf16 for
   `torch._grouped_mm` (CUDA's grouped GEMM is bf16-only). On CPU, where the recipe trains in
   fp32, `ParamDtypeGroupedExperts` runs the same grouped GEMM (torch 2.13 has a CPU kernel, fp32
   included, with backward) in the weights' dtype, so the model that trains computes what
   transformers and vLLM compute from its export. Plugged in by the override
   `qwen3_recipe.train.cpu.param_dtype_grouped_experts`; `cpu_model_config` applies both
   swaps to a model config built outside the trainer (the post-training policy).

`apply_cpu_workarounds()` is idempotent and does nothing when an accelerator is present.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from qwen3_recipe.train.launch import ATTENTION_OVERRIDE, CPU_OVERRIDES, has_accelerator  # noqa: F401

_applied = False


def _cpu_memory_stats(device=None) -> dict:
    return {"active_bytes.all.peak": 0, "reserved_bytes.all.peak": 0,
            "num_alloc_retries": 0, "num_ooms": 0}


def _cpu_device_properties(device=None):
    try:
        import os

        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 1 << 34
    return SimpleNamespace(name="cpu", total_memory=total)


class _CpuDeviceModule:
    """Stand-in for `torch.cuda` on CPU: torch.cpu plus the calls torchtitan's metrics make."""

    def __getattr__(self, name):
        return getattr(torch.cpu, name)

    @staticmethod
    def current_device() -> int:
        return 0

    @staticmethod
    def device_count() -> int:
        return 1

    @staticmethod
    def set_device(device) -> None:
        return None

    @staticmethod
    def synchronize(device=None) -> None:
        return None

    @staticmethod
    def get_device_name(device=None) -> str:
        return "cpu"

    get_device_properties = staticmethod(_cpu_device_properties)
    memory_stats = staticmethod(_cpu_memory_stats)

    @staticmethod
    def reset_peak_memory_stats(device=None) -> None:
        return None

    @staticmethod
    def empty_cache() -> None:
        return None


def _set_timeout(timeout: timedelta, group=None) -> None:
    torch.distributed.distributed_c10d._set_pg_timeout(timeout, group)


def _cpu_set_pg_timeouts(timeout: timedelta, parallel_dims) -> None:
    torch.distributed.barrier()
    groups = [m.get_group() for m in parallel_dims.get_all_one_dimensional_meshes().values()]
    for group in groups + [None]:
        _set_timeout(timeout, group)


def apply_cpu_workarounds() -> bool:
    """Make torchtitan run on CPU/gloo. Returns True when the workarounds are (now) in effect."""
    global _applied
    if _applied:
        return True
    if has_accelerator():
        return False
    import torchtitan.tools.utils as tt_utils

    old = (tt_utils.device_type, tt_utils.device_module)
    new_module = _CpuDeviceModule()
    tt_utils.device_type, tt_utils.device_module = "cpu", new_module
    for name, mod in list(sys.modules.items()):
        if not name.startswith("torchtitan") or mod is None:
            continue
        if getattr(mod, "device_type", None) is old[0] and "device_type" in vars(mod):
            mod.device_type = "cpu"
        if getattr(mod, "device_module", None) is old[1] and "device_module" in vars(mod):
            mod.device_module = new_module
    if not hasattr(torch.distributed, "set_timeout"):
        torch.distributed.set_timeout = _set_timeout
    import torchtitan.distributed.utils as dist_utils

    dist_utils.set_pg_timeouts = _cpu_set_pg_timeouts
    _applied = True
    return True


# --------------------------------------------------------------------------- attention

from torchtitan.config.override import derive, override  # noqa: E402
from torchtitan.models.common.attention import (  # noqa: E402
    FlexAttention,
    VarlenAttention,
    VarlenMetadata,
)
from torchtitan.models.common.moe import GroupedExperts  # noqa: E402


def document_causal_mask(cu_seqlens: torch.Tensor, batch: int, length: int,
                         window_left: int = -1) -> torch.Tensor:
    """Dense boolean mask [B, 1, L, L]: token i sees token j iff same document and j <= i
    (and i - j <= window_left when window_left >= 0). `cu_seqlens` are packed document
    starts over B*L tokens, ending with B*L (torchtitan's VarlenMetadata.cu_seq_q)."""
    t = torch.arange(batch * length, device=cu_seqlens.device)
    doc = (torch.searchsorted(cu_seqlens.to(torch.int64), t, right=True) - 1).view(batch, length)
    same_doc = doc[:, :, None] == doc[:, None, :]
    i = torch.arange(length, device=cu_seqlens.device)
    causal = i[None, :] <= i[:, None]
    if window_left >= 0:
        causal &= (i[:, None] - i[None, :]) <= window_left
    return (same_doc & causal[None])[:, None]


class SDPADocumentAttention(VarlenAttention):
    """Varlen attention's contract (per-document causal over packed sequences), computed by
    `F.scaled_dot_product_attention` with a dense mask. O(L^2) memory: for CPU tests and
    small runs, not for long sequences."""

    @dataclass(kw_only=True, slots=True)
    class Config(VarlenAttention.Config):
        pass

    def forward(self, q_BLNH, k_BLNH, v_BLNH, *, attention_masks: VarlenMetadata,
                scale: float | None = None, out_transform=None, enable_gqa: bool = False,
                **kwargs) -> torch.Tensor:
        if out_transform is not None:
            raise NotImplementedError("SDPADocumentAttention does not return the LSE")
        if self.window_size[1] not in (0,):
            raise NotImplementedError("SDPADocumentAttention is causal only")
        assert isinstance(attention_masks, VarlenMetadata), type(attention_masks)
        B, L = q_BLNH.shape[:2]
        mask = document_causal_mask(attention_masks.cu_seq_q, B, L, self.window_size[0])
        out = F.scaled_dot_product_attention(
            q_BLNH.transpose(1, 2), k_BLNH.transpose(1, 2), v_BLNH.transpose(1, 2),
            attn_mask=mask, scale=scale, enable_gqa=enable_gqa,
        )
        return out.transpose(1, 2)


@override(target=FlexAttention.Config,
          description="CPU: per-document causal SDPA with a dense mask instead of FlexAttention")
def sdpa_document_attention(cfg: FlexAttention.Config) -> SDPADocumentAttention.Config:
    return SDPADocumentAttention.Config()


# --------------------------------------------------------------------------- MoE experts

class ParamDtypeGroupedExperts(GroupedExperts):
    """torchtitan's grouped experts computed in the weights' dtype (fp32 on CPU), not bf16."""

    @dataclass(kw_only=True, slots=True)
    class Config(GroupedExperts.Config):
        pass

    def forward(self, x_RD: torch.Tensor, num_tokens_per_expert_E: torch.Tensor) -> torch.Tensor:
        w1, w2, w3 = (w.to_local() if hasattr(w, "to_local") else w for w in (self.w1_EFD, self.w2_EDF, self.w3_EFD))
        x = x_RD.to(w1.dtype)
        if x.shape[-1] * x.element_size() % 16 or w1.shape[1] * w1.element_size() % 16:
            return self._per_expert(x, num_tokens_per_expert_E, w1, w2, w3).type_as(x_RD)
        offsets = torch.cumsum(num_tokens_per_expert_E, dim=0, dtype=torch.int32)
        h = F.silu(self._grouped_mm(A=x, B_t=w1.transpose(-2, -1), offs=offsets))
        h = h * self._grouped_mm(A=x, B_t=w3.transpose(-2, -1), offs=offsets)
        return self._grouped_mm(A=h, B_t=w2.transpose(-2, -1), offs=offsets).type_as(x_RD)

    @staticmethod
    def _per_expert(x, counts, w1, w2, w3) -> torch.Tensor:
        """Sizes the grouped GEMM's 16-byte stride rule refuses: one matmul per expert."""
        outs, start = [], 0
        for e, n in enumerate(counts.tolist()):
            xe = x[start:start + int(n)]
            outs.append((F.silu(xe @ w1[e].T) * (xe @ w3[e].T)) @ w2[e].T)
            start += int(n)
        return torch.cat(outs) if outs else x.new_zeros(0, w2.shape[1])


@override(target=GroupedExperts.Config, exact=True,
          description="CPU: MoE experts in the weights' dtype (fp32) instead of bf16")
def param_dtype_grouped_experts(cfg: GroupedExperts.Config) -> ParamDtypeGroupedExperts.Config:
    return derive(cfg, ParamDtypeGroupedExperts.Config)


def cpu_model_config(config) -> None:
    """The CPU swaps (SDPA document attention, param-dtype experts) applied in place to a Qwen3
    model config that is built without torchtitan's trainer (and so without its overrides)."""
    for layer in config.layers:
        layer.attention.inner_attention = SDPADocumentAttention.Config()
        moe = getattr(layer, "moe", None)
        if moe is not None:
            moe.routed_experts.inner_experts = param_dtype_grouped_experts(moe.routed_experts.inner_experts)
