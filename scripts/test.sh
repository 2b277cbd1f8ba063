#!/usr/bin/env bash
# The README's test command: set up .venv, then lint, type-check and run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
.venv/bin/ruff check rsna_pkg tests scripts benchmarks
.venv/bin/ruff format --check rsna_pkg tests scripts benchmarks
.venv/bin/mypy rsna_pkg benchmarks
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
