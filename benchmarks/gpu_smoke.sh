#!/usr/bin/env bash
# GPU smoke for `harness train`: on one CUDA GPU, build a synthetic 50k-sample pool at 224 px and
# train the debug recipe's model (ViT-B-32, batch 1024, amp) for 200 steps twice: with the real
# WebDataset loader (through harness.train.launch.train, off-recipe budget of 200 steps) and with open_clip's
# `--dataset-type synthetic`; prints samples/s of both and their ratio (benchmarks/bench_train_tiny.py).
# Target: < 8 min on one H100. Without a GPU it says so and exits 0.
#
# Python: $PYTHON if set (it must have torch + torchvision), else the first of .venv/bin/python,
# python3 that imports torch. If open_clip_train or webdataset are missing, they are installed into
# a venv (--system-site-packages, so torch is reused) at $SMOKE_VENV (default .smoke-venv): from
# $WHEELHOUSE (--no-index) when set, else from PyPI.
# Knobs: STEPS (200), POOL (50000), WORKERS (8), WORK (a temp dir; kept if set).
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for cand in .venv/bin/python python3 python; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c "import torch, torchvision" >/dev/null 2>&1; then
      PY="$cand"; break
    fi
  done
fi
if [ -z "$PY" ]; then
  echo "gpu_smoke: no python with torch+torchvision found; set PYTHON=/path/to/python" >&2
  exit 1
fi
echo "gpu_smoke: python $(command -v "$PY") ($("$PY" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__)'))"

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_smoke: NO CUDA GPU visible to torch: nothing to measure, skipped."
  exit 0
fi
"$PY" -c "import torch; p = torch.cuda.get_device_properties(0); print(f'gpu_smoke: GPU {p.name}, {p.total_memory / 2**30:.0f} GiB')"

if ! "$PY" -c "import open_clip_train, webdataset, PIL" >/dev/null 2>&1; then
  VENV="${SMOKE_VENV:-.smoke-venv}"
  echo "gpu_smoke: open_clip_train/webdataset missing: installing into $VENV (reusing this python's torch)"
  "$PY" -m venv --system-site-packages "$VENV"
  PIP_SRC=()
  if [ -n "${WHEELHOUSE:-}" ]; then PIP_SRC=(--no-index --find-links "$WHEELHOUSE"); fi
  "$VENV/bin/python" -m pip install -q "${PIP_SRC[@]}" "open_clip_torch==3.3.0" "webdataset<=0.2.86" braceexpand
  PY="$VENV/bin/python"
fi
"$PY" -c "import open_clip, webdataset; print('gpu_smoke: open_clip', open_clip.__version__, 'webdataset', webdataset.__version__)"

export WANDB_MODE="${WANDB_MODE:-offline}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
KEEP=()
if [ -n "${WORK:-}" ]; then KEEP=(--keep "$WORK"); fi
start=$(date +%s)
"$PY" benchmarks/bench_train_tiny.py --scale debug --image-size 224 --pool-samples "${POOL:-50000}" \
  --shards 64 --steps "${STEPS:-200}" --workers "${WORKERS:-8}" --device cuda "${KEEP[@]}"
echo "gpu_smoke: total $(( $(date +%s) - start ))s"
