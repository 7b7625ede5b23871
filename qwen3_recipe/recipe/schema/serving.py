"""`serving`: how a generation job's model is served (in `execution`, or per job)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from qwen3_recipe.recipe.schema.common import Section, SeqLen


class Serving(Section):
    """Where a generation job's requests go. `in_process`: vLLM inside the job's own process (one
    task; the local fast path). `vllm`: datatrove's InferenceRunner starts a vLLM server per task
    and sends it the requests of that task's shard. (A running server: `engine: vllm_server` with
    `server_url`. SGLang: not yet.) The dataset is the same however a job is served."""

    type: Literal["in_process", "vllm"] = "in_process"
    tp: int = Field(1, gt=0)
    """Tensor-parallel degree: GPUs one model copy is split over."""
    dp: int = Field(1, gt=0)
    """Data-parallel model copies per server."""
    pp: int = Field(1, gt=0)
    """Pipeline-parallel degree."""
    expert_parallel: bool = False
    """MoE: experts spread over the tp x dp GPUs instead of each split tp-ways."""
    gpus_per_task: int | None = Field(None, gt=0)
    """GPUs a task's server gets: tp x dp x pp (the default; other values are refused). One node's at
    most on Slurm (tasks spanning nodes: not yet)."""
    tasks: int = Field(1, gt=0)
    """Servers at once, each answering the requests of one shard (a stable hash of the request)."""
    max_concurrent: int | None = Field(None, gt=0)
    """Sequences in flight per server (vLLM's max_num_seqs; default: the engine's)."""
    max_model_len: SeqLen | None = None
    """Context per sequence the server is started with (default: the job's longest prompt + max_tokens)."""
    extra_args: dict[str, str | int | float | bool] = {}
    """More server flags, as `vllm serve --key=value` (true: a bare flag)."""
