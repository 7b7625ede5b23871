"""One pretraining job as a torchtitan 0.3.0 `Trainer.Config`, built from a plain dict.

The recipe compiler writes the job as JSON; torchrun runs

    python -m torch.distributed.run --nproc_per_node=1 --rdzv_backend c10d \
        --rdzv_endpoint=localhost:0 -m torchtitan.train \
        --module qwen3_recipe.train.job --config config

with `QWEN3_RECIPE_JOB=<job.json>`: `config()` reads it and returns `trainer_config(job)`.
`launch(job_json)` does exactly that. On a machine without an accelerator the CPU workarounds
(`qwen3_recipe.train.cpu`) are applied when this module is imported, which torchtitan's
ConfigManager does before it builds the trainer.

Job dict (keys as in the training lowerer):
    arch: hidden_size, num_layers, num_heads, num_kv_heads, head_dim, intermediate_size,
          vocab_size, tie_embeddings, rope_theta, rms_norm_eps, max_position_embeddings
    seq_len, batch_tokens, steps, seed
    lr: peak, warmup_steps, decay ("linear" | "sqrt" | "cosine"), min_lr_ratio, [decay_ratio]
    optimizer: beta1, beta2, eps, weight_decay, grad_clip
    data: tokens_dir, [token_size]
    tokenizer_dir, dump_folder
    checkpoint: interval, [initial_load_path] (a DCP step folder, or an HF export: detected),
                [model_only], [keep_latest_k]
    export_hf: write the last step as HF safetensors (+ config.json, tokenizer files via launch)
    [micro_batch_size]: sequences per process per micro-step (default: whole batch per rank)
    [metrics_file]: JSON lines of per-step metrics, relative to dump_folder
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from qwen3_recipe.train.cpu import ATTENTION_OVERRIDE, apply_cpu_workarounds

CPU = apply_cpu_workarounds()  # before any torchtitan module binds the device

import torch.nn as nn  # noqa: E402
from torchtitan.components.checkpoint import CheckpointManager  # noqa: E402
from torchtitan.components.loss import ChunkedLossWrapper, CrossEntropyLoss  # noqa: E402
from torchtitan.components.metrics import BaseLogger, LoggerContainer, MetricsProcessor  # noqa: E402
from torchtitan.components.optimizer import (  # noqa: E402
    LRSchedulersContainer,
    OptimizersContainer,
    ParamGroupConfig,
)
from torchtitan.config import TrainingConfig  # noqa: E402
from torchtitan.config.configs import DebugConfig  # noqa: E402
from torchtitan.config.override import OverrideConfig  # noqa: E402
from torchtitan.distributed.pipeline_parallel import pipeline_llm  # noqa: E402
from torchtitan.models.common import CosSinRoPE, Embedding, Linear  # noqa: E402
from torchtitan.models.common.config_utils import (  # noqa: E402
    get_attention_config,
    make_ffn_config,
    make_gqa_config,
)
from torchtitan.models.common.nn_modules import RMSNorm  # noqa: E402
from torchtitan.models.common.param_init import skip_param_init  # noqa: E402
from torchtitan.models.qwen3 import parallelize_qwen3  # noqa: E402
from torchtitan.models.qwen3.model import Qwen3Model, Qwen3TransformerBlock  # noqa: E402
from torchtitan.models.qwen3.state_dict_adapter import Qwen3StateDictAdapter  # noqa: E402
from torchtitan.protocols.model_spec import ModelSpec  # noqa: E402
from torchtitan.trainer import Trainer  # noqa: E402

from qwen3_recipe.train.tokens_loader import PackedTokensDataLoader  # noqa: E402

JOB_ENV = "QWEN3_RECIPE_JOB"
METRICS_FILE = "metrics.jsonl"

# --------------------------------------------------------------------------- model

# Same initialisation as torchtitan's stock Qwen3 flavors (models/qwen3/__init__.py).
_LINEAR_INIT = {"weight": partial(nn.init.normal_, std=0.02), "bias": nn.init.zeros_}
_NORM_INIT = {"weight": nn.init.ones_}
_EMBEDDING_INIT = {"weight": partial(nn.init.normal_, std=0.02)}
_EMBEDDING_SKIP_INIT = {"weight": skip_param_init}


def model_config(arch: dict, attn_backend: str = "flex") -> Qwen3Model.Config:
    """A dense Qwen3 of any size (the stock flavors fix eps 1e-6 and the sizes)."""
    dim, head_dim, vocab = arch["hidden_size"], arch["head_dim"], arch["vocab_size"]
    eps = float(arch.get("rms_norm_eps", 1e-6))
    tied = bool(arch.get("tie_embeddings", False))

    def norm(n: int) -> RMSNorm.Config:
        return RMSNorm.Config(normalized_shape=n, eps=eps, param_init=_NORM_INIT)

    rope = CosSinRoPE.Config(dim=head_dim, max_seq_len=int(arch["max_position_embeddings"]),
                             theta=float(arch["rope_theta"]))
    layers = [
        Qwen3TransformerBlock.Config(
            attention_norm=norm(dim),
            ffn_norm=norm(dim),
            attention=make_gqa_config(
                dim=dim, n_heads=arch["num_heads"], n_kv_heads=arch["num_kv_heads"],
                head_dim=head_dim, wqkv_param_init=_LINEAR_INIT, wo_param_init=_LINEAR_INIT,
                inner_attention=get_attention_config(attn_backend), fuse_qkv=True,
                rope=rope, qk_norm=norm(head_dim)),
            feed_forward=make_ffn_config(
                dim=dim, hidden_dim=arch["intermediate_size"],
                w1_param_init=_LINEAR_INIT, w2w3_param_init=_LINEAR_INIT),
        )
        for _ in range(arch["num_layers"])
    ]
    return Qwen3Model.Config(
        vocab_size=vocab, dim=dim, norm=norm(dim), enable_weight_tying=tied,
        tok_embeddings=Embedding.Config(num_embeddings=vocab, embedding_dim=dim,
                                        param_init=_EMBEDDING_SKIP_INIT if tied else _EMBEDDING_INIT),
        lm_head=Linear.Config(in_features=dim, out_features=vocab, param_init=_LINEAR_INIT),
        layers=layers,
    )


def model_spec(arch: dict, flavor: str = "recipe") -> ModelSpec:
    return ModelSpec(
        name="qwen3", flavor=flavor, model=model_config(arch),
        parallelize_fn=parallelize_qwen3, pipelining_fn=pipeline_llm,
        post_optimizer_build_fn=None, state_dict_adapter=Qwen3StateDictAdapter,
    )


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
    """A previous stage exported with export_hf leaves safetensors, not DCP, in its last step."""
    return bool(path) and (Path(path) / "model.safetensors.index.json").exists() \
        and not (Path(path) / ".metadata").exists()


def trainer_config(job: dict) -> Trainer.Config:
    arch, lr, opt = job["arch"], job["lr"], job.get("optimizer", {})
    ckpt = job.get("checkpoint", {})
    seq_len = int(job["seq_len"])
    if job["batch_tokens"] % seq_len:
        raise ValueError(f"batch_tokens {job['batch_tokens']} is not a multiple of seq_len {seq_len}")
    global_batch = job["batch_tokens"] // seq_len
    world = int(os.environ.get("WORLD_SIZE", "1"))
    micro = int(job.get("micro_batch_size") or max(1, global_batch // world))
    spec = model_spec(arch)
    export_hf = bool(job.get("export_hf", False))

    return Trainer.Config(
        model_spec=spec,
        hf_assets_path=str(job["tokenizer_dir"]),
        dump_folder=str(job["dump_folder"]),
        loss=ChunkedLossWrapper.Config(
            loss_fn=CrossEntropyLoss.Config(global_vocab_size=arch["vocab_size"])),
        metrics=JsonlMetricsProcessor.Config(
            log_freq=int(job.get("log_freq", 1)), disable_color_printing=True,
            jsonl_file=job.get("metrics_file", METRICS_FILE)),
        dataloader=PackedTokensDataLoader.Config(
            dataset_path=str(job["data"]["tokens_dir"]),
            token_size=job["data"].get("token_size")),
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
            disable_cuda_graphs=CPU),
        checkpoint=CheckpointManager.Config(
            enable=True,
            interval=int(ckpt.get("interval", 500)),
            initial_load_path=ckpt.get("initial_load_path"),
            initial_load_model_only=bool(ckpt.get("model_only", True)),
            initial_load_in_hf=_is_hf_checkpoint(ckpt.get("initial_load_path")),
            keep_latest_k=int(ckpt.get("keep_latest_k", 10)),
            last_save_model_only=export_hf,
            last_save_in_hf=export_hf),
        activation_checkpoint=None,
        debug=DebugConfig(seed=int(job.get("seed", 0))),
        override=OverrideConfig(imports=[ATTENTION_OVERRIDE] if CPU else []),
    )


def config() -> Trainer.Config:
    """The fixed config function torchrun is pointed at; the job comes from $QWEN3_RECIPE_JOB."""
    path = os.environ.get(JOB_ENV)
    if not path:
        raise RuntimeError(f"{JOB_ENV} must name the job's JSON file")
    return trainer_config(json.loads(Path(path).read_text()))


# --------------------------------------------------------------------------- launching

def torchrun_command(nproc: int = 1) -> list[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
           "--rdzv_backend", "c10d", "--rdzv_endpoint=localhost:0",
           "-m", "torchtitan.train", "--module", "qwen3_recipe.train.job", "--config", "config"]
    if CPU:
        cmd += ["--override.imports", ATTENTION_OVERRIDE]
    return cmd


def launch(job_json: Path, *, capture: bool = True, timeout: float | None = None,
           env: dict | None = None) -> subprocess.CompletedProcess:
    job_json = Path(job_json).resolve()
    run_env = {**os.environ, **(env or {}), JOB_ENV: str(job_json), "OMP_NUM_THREADS": "1"}
    root = str(Path(__file__).resolve().parents[2])
    run_env["PYTHONPATH"] = os.pathsep.join(p for p in (root, run_env.get("PYTHONPATH")) if p)
    result = subprocess.run(torchrun_command(), env=run_env, capture_output=capture, text=True,
                            timeout=timeout)
    job = json.loads(job_json.read_text())
    if result.returncode == 0 and job.get("export_hf"):
        final = Path(job["dump_folder"]) / "checkpoint" / f"step-{job['steps']}"
        if final.is_dir():
            write_hf_assets(job, final)
    return result


def hf_config(arch: dict, eos_token_id: int | None = None, bos_token_id: int | None = None) -> dict:
    """config.json from the same preset code as `qwen3-recipe model` (weights are saved in fp32)."""
    from qwen3_recipe.presets import Arch
    fields = {k: v for k, v in arch.items() if k in Arch.__dataclass_fields__}
    cfg = Arch(**fields).to_hf_config()
    cfg.update(torch_dtype="float32", bos_token_id=bos_token_id, eos_token_id=eos_token_id)
    return cfg


def write_hf_assets(job: dict, step_dir: Path) -> None:
    """torchtitan's HF export writes safetensors only: add config.json and the tokenizer."""
    tok_dir = Path(job["tokenizer_dir"])
    eos = bos = None
    tok_cfg = tok_dir / "tokenizer_config.json"
    if tok_cfg.exists() and (tok_dir / "tokenizer.json").exists():
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
        cfg = json.loads(tok_cfg.read_text())

        def tid(v):
            v = v.get("content") if isinstance(v, dict) else v
            return tok.token_to_id(v) if v else None

        eos, bos = tid(cfg.get("eos_token")), tid(cfg.get("bos_token"))
    (step_dir / "config.json").write_text(json.dumps(hf_config(job["arch"], eos, bos), indent=2))
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
                 "special_tokens_map.json", "generation_config.json"):
        if (tok_dir / name).exists():
            shutil.copy2(tok_dir / name, step_dir / name)
