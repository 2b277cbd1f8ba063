#!/usr/bin/env bash
# The GPU path on the lent GPU machine, in one prepared run of at most 8 minutes:
#   here, once:    python scripts/fetch_device_wheels.py     (fills the git-ignored .whl/)
#   on the device: bash scripts/device_check.sh              (carry .whl; results in $OUT)
#   anywhere:      bash scripts/device_check.sh --dry-run    (tiny sizes on the CPU; CI runs it)
# Writes $OUT/gpu_report.json (updated after every section) and $OUT/device_check.log, and
# prints the table. Without --dry-run it installs .whl/*.whl (pydicom, dicomsdl, pylibjpeg*,
# imagecodecs, nvImageCodec + nvJPEG2000/nvJPEG: what that machine lacks) into /tmp/site.
# PYTHON (default python3) is the interpreter; DEVICE_CHECK_LIMIT the seconds the check
# itself may run (default 450: install and start-up fit in the rest of the 8 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-$PWD/build/device_check}
LIMIT=${DEVICE_CHECK_LIMIT:-450}
dry=0
for arg in "$@"; do [ "$arg" = "--dry-run" ] && dry=1; done
mkdir -p "$OUT"
start=$(date +%s)
if [ "$dry" = 0 ] && compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  echo "installed $(ls .whl/*.whl | wc -l) wheels into /tmp/site in $(( $(date +%s) - start )) s"
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 OPENCV_LOG_LEVEL=${OPENCV_LOG_LEVEL:-ERROR}
set +e
# SIGINT first: the report written after each finished section stays, the run ends cleanly.
timeout --signal=INT --kill-after=20 "$LIMIT" \
  "$PY" -m rsna_pkg bench device --out "$OUT" "$@" 2>&1 | tee "$OUT/device_check.log"
rc=${PIPESTATUS[0]}
set -e
echo "device_check: exit $rc after $(( $(date +%s) - start )) s; report $OUT/gpu_report.json"
exit "$rc"
