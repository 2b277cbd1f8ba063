#!/usr/bin/env bash
# Replay the four kernels locally, then build, check and push to Kaggle.
# Usage: scripts/push.sh [--dry-run] [--model model.pt] [--kernels eda preprocess ...]
# Credentials: KAGGLE_USERNAME/KAGGLE_KEY or ~/.kaggle/kaggle.json (never in this repo).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/rsna replicate
exec .venv/bin/rsna kaggle push "$@"
