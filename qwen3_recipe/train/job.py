"""One training job (a pretraining or SFT stage) as a torchtitan 0.3.0 `Trainer.Config`, built from a plain dict.

The recipe compiler writes the job as JSON; torchrun runs

    python -m torch.distributed.run --nproc_per_node=1 --rdzv_backend c10d \
        --rdzv_endpoint=localhost:0 -m torchtitan.train \
        --module qwen3_recipe.train.job --config config

with `QWEN3_RECIPE_JOB=<job.json>`: `config()` reads it and returns `trainer_config(job)`.
`qwen3_recipe.train.launch` does exactly that (one process alone runs `-m torchtitan.train ...` directly,
with the rank and rendezvous variables torchrun would set). On a machine without an accelerator the CPU workarounds
(`qwen3_recipe.train.cpu`) are applied when this module is imported, which torchtitan's
ConfigManager does before it builds the trainer.

Job dict (keys as in the training lowerer):
    arch: hidden_size, num_layers, num_heads, num_kv_heads, head_dim, intermediate_size,
          vocab_size, tie_embeddings, rope_theta, rms_norm_eps, max_position_embeddings
    seq_len, batch_tokens, steps, seed, [seq_len_schedule]: [{first_step, steps, seq_len}] growing
          lengths within the stage (train/pretrain.py), seq_len being the longest
    lr: peak, warmup_steps, decay ("linear" | "sqrt" | "cosine"), min_lr_ratio, [decay_ratio]
    optimizer: beta1, beta2, eps, weight_decay, grad_clip
    data: kind ("tokens": datatrove packed documents | "sft": packed chat samples with a loss
          mask, train/sft_data.py), tokens_dir, [token_size]
    [preset]: use torchtitan's stock flavor when arch is exactly that preset
    [mixed_precision] "bf16" | "fp32", [fsdp] "full" | "none",
    [activation_checkpointing] "none" | "selective" | "full", [compile],
    [parallelism]: dp_shard, dp_replicate, tp, cp, ep, pp (the recipe's execution section)
    tokenizer_dir, dump_folder
    checkpoint: interval, [initial_load_path] (a DCP step folder, or an HF export: detected),
                [model_only], [keep_latest_k]
    export_hf: write the last step as HF safetensors (+ config.json, tokenizer files: export.py)
    [micro_batch_size]: sequences per process per micro-step (default: whole batch per rank)
    [metrics_file]: JSON lines of per-step metrics, relative to dump_folder
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwen3_recipe.train.cpu import CPU_OVERRIDES, apply_cpu_workarounds
from qwen3_recipe.train.launch import JOB_ENV, LOADER_TRACE, die_with_parent

CPU = apply_cpu_workarounds()  # before any torchtitan module binds the device

from torchtitan.components.checkpoint import CheckpointManager  # noqa: E402
from torchtitan.components.loss import ChunkedLossWrapper, CrossEntropyLoss  # noqa: E402
from torchtitan.components.metrics import BaseLogger, LoggerContainer, MetricsProcessor  # noqa: E402
from torchtitan.components.optimizer import (  # noqa: E402
    LRSchedulersContainer,
    OptimizersContainer,
    ParamGroupConfig,
)
from torchtitan.config import ParallelismConfig, TrainingConfig  # noqa: E402
from torchtitan.config.configs import CompileConfig, DebugConfig  # noqa: E402
from torchtitan.distributed.activation_checkpoint import FullAC, SelectiveAC  # noqa: E402
from torchtitan.config.override import OverrideConfig  # noqa: E402
from torchtitan.trainer import Trainer  # noqa: E402

from qwen3_recipe.train.model import model_spec  # noqa: E402
from qwen3_recipe.train.tokens_loader import PackedTokensDataLoader  # noqa: E402

METRICS_FILE = "metrics.jsonl"

# --------------------------------------------------------------------------- metrics file

class JsonlLogger(BaseLogger):
    def __init__(self, path: str):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._fh = open(path, "a", encoding="utf-8")

    def log(self, metrics: dict[str, Any], step: int) -> None:
        row = {"step": step, **{k: (float(v) if hasattr(v, "__float__") else v)
                                for k, v in metrics.items()}}
        self._fh.write(json.dumps(row, default=str) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class JsonlMetricsProcessor(MetricsProcessor):
    """torchtitan's metrics, plus one JSON line per logged step in `dump_folder/jsonl_file`."""

    @dataclass(kw_only=True, slots=True)
    class Config(MetricsProcessor.Config):
        jsonl_file: str = METRICS_FILE

    def _build_metric_logger(self, *, config, dump_folder, **kwargs) -> BaseLogger:
        import torch.distributed as dist

        base = super()._build_metric_logger(config=config, dump_folder=dump_folder, **kwargs)
        if dist.is_initialized() and dist.get_rank() != 0:
            return base
        container = LoggerContainer()
        container.add_logger(base)
        container.add_logger(JsonlLogger(os.path.join(dump_folder, config.jsonl_file)))
        return container


# --------------------------------------------------------------------------- trainer config

def _is_hf_checkpoint(path: str | None) -> bool:
    """HF safetensors (a previous stage's export, an RL stage's single-file save, any HF model
    directory), not a DCP checkpoint."""
    return bool(path) and not (Path(path) / ".metadata").exists() \
        and any(Path(path).glob("*.safetensors"))


def parallelism_config(job: dict) -> ParallelismConfig:
    """The recipe's degrees; `fsdp: none` replicates instead of sharding (plain DDP, or nothing on
    one process). On CPU/gloo FSDP cannot run (no PREMUL_SUM), so replicas use partial DTensors."""
    par = job.get("parallelism", {})
    shard = int(par.get("dp_shard", -1))
    replicate = int(par.get("dp_replicate", 1))
    if job.get("fsdp", "full") == "none" or CPU:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        others = int(par.get("tp", 1)) * int(par.get("cp", 1)) * int(par.get("pp", 1))
        shard, replicate = 1, max(1, world // others)
    return ParallelismConfig(
        data_parallel_shard_degree=shard, data_parallel_replicate_degree=replicate,
        tensor_parallel_degree=int(par.get("tp", 1)), context_parallel_degree=int(par.get("cp", 1)),
        expert_parallel_degree=int(par.get("ep", 1)), pipeline_parallel_degree=int(par.get("pp", 1)),
        **({"spmd_backend": "partial_dtensor"} if CPU else {}))


def dataloader_config(job: dict):
    data = job["data"]
    if data.get("kind", "tokens") == "sft":
        from qwen3_recipe.train.sft_loader import SFTPackedDataLoader
        return SFTPackedDataLoader.Config(dataset_path=str(data["tokens_dir"]))
    return PackedTokensDataLoader.Config(dataset_path=str(data["tokens_dir"]), token_size=data.get("token_size"),
                                         seq_len_schedule=job.get("seq_len_schedule"),
                                         global_batch_size=job["batch_tokens"] // int(job["seq_len"]),
                                         # the mix holds what the stage reads: a re-loop would repeat data
                                         # past max_repetition, so running out is an error, not an epoch
                                         infinite=False, min_tokens=int(job["steps"]) * job["batch_tokens"] + 1,
                                         trace_file=str(Path(job["dump_folder"]) / LOADER_TRACE))


AC = {"none": lambda: None, "selective": SelectiveAC.Config, "full": FullAC.Config}


def trainer_config(job: dict) -> Trainer.Config:
    arch, lr, opt = job["arch"], job["lr"], job.get("optimizer", {})
    ckpt = job.get("checkpoint", {})
    seq_len = int(job["seq_len"])
    if job["batch_tokens"] % seq_len:
        raise ValueError(f"batch_tokens {job['batch_tokens']} is not a multiple of seq_len {seq_len}")
    global_batch = job["batch_tokens"] // seq_len
    world = int(os.environ.get("WORLD_SIZE", "1"))
    micro = int(job.get("micro_batch_size") or max(1, global_batch // world))
    export_hf = bool(job.get("export_hf", False))
    # bf16 autocast / FSDP parameters as in the report; fp32 where the recipe says so (CPUs
    # without bf16 matmul units emulate bf16 ~10x slower than fp32)
    precision = "float32" if job.get("mixed_precision", "bf16") == "fp32" else "bfloat16"

    return Trainer.Config(
        model_spec=model_spec(arch, job.get("preset")),
        hf_assets_path=str(job["tokenizer_dir"]),
        dump_folder=str(job["dump_folder"]),
        loss=ChunkedLossWrapper.Config(
            loss_fn=CrossEntropyLoss.Config(global_vocab_size=arch["vocab_size"])),
        metrics=JsonlMetricsProcessor.Config(
            log_freq=int(job.get("log_freq", 1)), disable_color_printing=True,
            jsonl_file=job.get("metrics_file", METRICS_FILE)),
        dataloader=dataloader_config(job),
        optimizer=OptimizersContainer.Config(param_groups=[ParamGroupConfig(
            pattern=r".*", optimizer_name="AdamW",
            optimizer_kwargs={"lr": float(lr["peak"]),
                              "betas": (float(opt.get("beta1", 0.9)), float(opt.get("beta2", 0.95))),
                              "eps": float(opt.get("eps", 1e-8)),
                              "weight_decay": float(opt.get("weight_decay", 0.1))})]),
        lr_scheduler=LRSchedulersContainer.Config(
            warmup_steps=int(lr.get("warmup_steps", 0)),
            decay_ratio=lr.get("decay_ratio"),
            decay_type=lr.get("decay", "cosine"),
            min_lr_factor=float(lr.get("min_lr_ratio", 0.0))),
        training=TrainingConfig(
            local_batch_size=micro, global_batch_size=global_batch, seq_len=seq_len,
            steps=int(job["steps"]), max_norm=float(opt.get("grad_clip", 1.0)),
            disable_cuda_graphs=CPU or bool(job.get("seq_len_schedule")),  # graphs fix input shapes
            mixed_precision_param=precision),
        parallelism=parallelism_config(job),
        checkpoint=CheckpointManager.Config(
            enable=True,
            interval=int(ckpt.get("interval", 500)),
            initial_load_path=ckpt.get("initial_load_path"),
            initial_load_model_only=bool(ckpt.get("model_only", True)),
            initial_load_in_hf=_is_hf_checkpoint(ckpt.get("initial_load_path")),
            keep_latest_k=int(ckpt.get("keep_latest_k", 10)),
            last_save_model_only=export_hf,
            last_save_in_hf=export_hf),
        activation_checkpoint=AC[job.get("activation_checkpointing", "none")](),
        compile=CompileConfig(enable=bool(job.get("compile", False))),
        debug=DebugConfig(seed=int(job.get("seed", 0))),
        override=OverrideConfig(imports=list(CPU_OVERRIDES) if CPU else []),
    )


def config() -> Trainer.Config:
    """The fixed config function torchrun is pointed at; the job comes from $QWEN3_RECIPE_JOB."""
    die_with_parent()  # the torchrun agent that started this worker
    path = os.environ.get(JOB_ENV)
    if not path:
        raise RuntimeError(f"{JOB_ENV} must name the job's JSON file")
    return trainer_config(json.loads(Path(path).read_text()))
