#!/usr/bin/env bash
# Replay the four kernels locally, then build, check and push to Kaggle.
# Usage: scripts/push.sh [--dry-run] [--model model.pt] [--kernels eda preprocess ...]
# SKIP_REPLAY=1 skips the replay. Credentials: KAGGLE_USERNAME/KAGGLE_KEY or ~/.kaggle/kaggle.json (never in this repo).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${SKIP_REPLAY:-0}" = 1 ] || .venv/bin/rsna replicate
exec .venv/bin/rsna kaggle push "$@"
