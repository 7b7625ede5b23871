#!/usr/bin/env bash
# GPU check (one GPU, <= ~5 min once the environment is there): train the compiled Qwen3-0.6B
# stage (recipes/qwen3-0.6B.yaml, first pretraining stage, via qwen3_recipe.train.launch) and
# torchtitan's own Qwen3-0.6B config for the same steps on the same random-token data, seq_len 4096
# and global batch; print tokens/s and MFU of both (from torchtitan's log lines) and their ratio.
#
#   bash benchmarks/gpu_check.sh [--dry-run] [--steps 30] [--batch 8] [--loader hf_text|packed]
#
# --dry-run: set up, generate the data, build both Trainer.Configs and both loaders, no training
# (runs on a CPU machine with .venv). Environment:
#   PYTHON=...            use this interpreter as is (no setup)
#   GPU_CHECK_DIR         work folder (default /tmp/gpu_check; wiped first)
#   GPU_CHECK_VENV        venv to create when neither .venv nor it has CUDA torch + torchtitan
#                         (default $GPU_CHECK_DIR/../gpu_check_venv; --system-site-packages)
#   GPU_CHECK_WHEELS=DIR  offline install from DIR (pip --no-index), keeping the torch already there
#   GPU_CHECK_RUN_TIMEOUT seconds per training run (default 180); GPU_CHECK_SETUP_TIMEOUT (default 420;
#                         a cold install of CUDA torch is outside the ~5 min of the check itself)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DRY=0; ARGS=()
for a in "$@"; do if [[ $a == --dry-run ]]; then DRY=1; else ARGS+=("$a"); fi; done
WORK=${GPU_CHECK_DIR:-/tmp/gpu_check}
VENV=${GPU_CHECK_VENV:-$(dirname "$WORK")/gpu_check_venv}
RUN_T=${GPU_CHECK_RUN_TIMEOUT:-180}
export PYTHONPATH="$ROOT:$ROOT/benchmarks${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export HF_HOME="$WORK/hf" HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
START=$SECONDS
phase() {  # phase NAME CMD...: run and time one phase
  local name=$1 t=$SECONDS rc=0; shift
  echo "== $name"
  "$@" || rc=$?
  echo "== $name: $((SECONDS - t)) s (total $((SECONDS - START)) s), exit $rc"
  return $rc
}
usable() {  # usable PY: has what the check imports (and, unless --dry-run, CUDA)
  [[ -x $1 ]] || command -v "$1" >/dev/null || return 1
  "$1" -c "import torch, torchtitan, tokenizers, datasets, numpy, pydantic, yaml
assert $DRY or torch.cuda.is_available()" 2>/dev/null
}
setup() {
  if [[ -n ${PYTHON:-} ]]; then PY=$PYTHON
  elif usable .venv/bin/python; then PY=.venv/bin/python
  elif usable "$VENV/bin/python"; then PY=$VENV/bin/python
  else
    PY=$VENV/bin/python
    [[ -x $PY ]] || python3 -m venv --system-site-packages "$VENV"
    # the `gpu` extra's pins for what training needs (not vllm), plus the core dependencies
    mapfile -t pins < <(python3 - "$([[ -n ${GPU_CHECK_WHEELS:-} ]] && echo keep-torch)" <<'EOF'
import sys, tomllib
p = tomllib.load(open("pyproject.toml", "rb"))["project"]
want = ("torchtitan", "datasets", "tokenizers") + (() if sys.argv[1] == "keep-torch" else ("torch",))
print("\n".join(p["dependencies"] + [d for d in p["optional-dependencies"]["gpu"]
                                     if d.split("=")[0].split(">")[0].split("[")[0] in want]))
EOF
)
    local src=(); [[ -n ${GPU_CHECK_WHEELS:-} ]] && src=(--no-index --find-links "$GPU_CHECK_WHEELS")
    echo "installing into $VENV: ${pins[*]}"
    timeout "${GPU_CHECK_SETUP_TIMEOUT:-420}" "$PY" -m pip install -q "${src[@]}" "${pins[@]}"
  fi
  "$PY" -c "import torch, torchtitan; print('python', torch.__file__.rsplit('/lib/', 1)[0], '| torch', torch.__version__,
'| cuda', torch.cuda.is_available() and torch.cuda.get_device_name(0), '| torchtitan', torchtitan.__version__)"
}
phase setup setup
rm -rf "$WORK"; mkdir -p "$WORK"
check() { "$PY" benchmarks/gpu_check.py "$@" --work "$WORK" ${ARGS[@]+"${ARGS[@]}"}; }
phase selftest check selftest
phase prepare check prepare
phase configs check configs
if (( DRY )); then echo "dry run: everything built, nothing trained ($((SECONDS - START)) s)"; exit 0; fi
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader || true
# `timeout` kills the whole process group: torchrun's workers too
phase compiled timeout -k 10 "$((RUN_T + 15))" "$PY" benchmarks/gpu_check.py compiled --work "$WORK" --timeout "$RUN_T" || true
phase torchtitan timeout -k 10 "$((RUN_T + 15))" "$PY" benchmarks/gpu_check.py stock --work "$WORK" --timeout "$RUN_T" || true
for f in compiled torchtitan; do grep -E "Error|error:" "$WORK/$f/train.log" 2>/dev/null | tail -3 || true; done
phase summary check summary
