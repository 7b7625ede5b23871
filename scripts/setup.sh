#!/usr/bin/env bash
# Builds .venv with every engine, idempotently: reruns are a no-op unless pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
STAMP="$VENV/.setup-stamp"
# bubblewrap: the sandbox for model-written code (qwen3_recipe/verify/isolation.py). Debian's package;
# without root or apt it stays missing and code verification refuses (or, if the recipe allows it,
# runs weakly isolated).
if ! command -v bwrap >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap; } >/tmp/setup-bwrap.log 2>&1 \
    && echo "setup: installed $(bwrap --version)" || echo "setup: could not install bubblewrap (see /tmp/setup-bwrap.log)"
fi
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
# pip's chatter (this machine's index warnings, build notices) goes to the setup log, not the terminal
LOG="$VENV/setup.log"
pip() {
  "$VENV/bin/python" -m pip "$@" >>"$LOG" 2>&1 \
    || { echo "setup: pip $* failed; the end of $LOG:"; tail -30 "$LOG"; exit 1; }
}
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  pip install -q --no-deps --no-build-isolation -e .
  echo "setup: $VENV is up to date"; exit 0
fi
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
: > "$LOG"
pip install -q --upgrade pip setuptools wheel
# torch first, pinned: an unpinned torch pulls a multi-GB CUDA build (ENGINES.md).
pip install -q --no-compile "torch==2.13.0"
pip install -q --no-compile -e ".[cpu,dev]"
# PyPI's torchvision/torchaudio/torchcodec are CUDA builds that break `import transformers`
# next to CPU torch; text-only code needs none of them.
"$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec >>"$LOG" 2>&1 || true
"$VENV/bin/python" -c "import torch, duckdb, pydantic; assert torch.__version__.startswith('2.13.0'), torch.__version__"
echo "$want" > "$STAMP"
echo "setup: $VENV ready (pip's log: $LOG)"
