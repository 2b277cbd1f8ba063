#!/usr/bin/env bash
# Build the offline wheel dataset (rsna_pkg + every wheel the Kaggle image lacks) into OUT.
# Usage: scripts/build_wheel_dataset.sh OUT [--python 3.11] [--platform TAG] [--decoder dali|nvimgcodec|cpu]
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/rsna kaggle build-dataset "$@"
