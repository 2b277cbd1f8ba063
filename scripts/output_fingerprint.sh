#!/usr/bin/env bash
# The whole chain on a small synthetic set (synth -> preprocess -> train 2 epochs -> infer),
# then one sha256 per output: every PNG, metrics.json and submission.csv. Run it before and
# after a change that must not move any output (a refactor, a faster decoder) and diff the
# two lists:  bash scripts/output_fingerprint.sh /tmp/before > before.txt
# Single-threaded training, so the weights (and the submission) do not depend on the core
# count or on scheduling.
set -euo pipefail
OUT=${1:?usage: output_fingerprint.sh WORKDIR}
cd "$(dirname "$0")/.."
RSNA=(.venv/bin/python -m rsna_pkg)
rm -rf "$OUT" && mkdir -p "$OUT"
"${RSNA[@]}" synth "$OUT/data" --patients 12 --seed 0 --workers 1 >/dev/null 2>&1
for split in train test; do
  "${RSNA[@]}" preprocess --data "$OUT/data" --split $split --out "$OUT/png_$split" \
    --size 128 64 --workers 1 --preview 0 --quiet >/dev/null
done
"${RSNA[@]}" train --data "$OUT/data" --images "$OUT/png_train" --out "$OUT/model" \
  --size 128 64 --epochs 2 --seed 0 --workers 0 --threads 1 >/dev/null 2>&1
"${RSNA[@]}" infer --data "$OUT/data" --model "$OUT/model/model.pt" \
  --out "$OUT/submission.csv" --workers 1 --threads 1 --device cpu >/dev/null 2>&1
cd "$OUT"
find png_train png_test -name '*.png' | LC_ALL=C sort | xargs sha256sum
python3 - <<'PY'
import json
m = json.load(open("model/metrics.json"))
m.pop("train_seconds", None)  # a wall time, the one field that may differ
print(json.dumps(m, sort_keys=True))
PY
sha256sum submission.csv
