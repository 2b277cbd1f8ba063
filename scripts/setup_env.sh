#!/usr/bin/env bash
# Set up .venv on a fresh machine: torch from the local wheel store, then the
# package (editable) with its dev, DALI, nvImageCodec, timm and numba extras. Idempotent; safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check)
.venv/bin/python -c "import torch, torchvision" 2>/dev/null \
  || "${PIP[@]}" torch==2.14.1 torchvision==0.29.1
"${PIP[@]}" -e ".[dev,dali,nvimgcodec,timm,numba]"
