#!/usr/bin/env bash
# Mutation check, outside CI: mutmut (3.x) changes one operator, constant or call at a time
# in each covered module and runs that module's own tests; a mutant the tests still pass
# ("survived") is code the tests do not pin down. Prints the share of mutants killed per
# module (goal: 90 % or more) and lists the survivors (`mutmut show NAME` in the module's
# work folder prints one).
#
#   bash scripts/mutation.sh                  # every module below, one after another
#   bash scripts/mutation.sh voi metrics      # some of them
#   MUTATION_ONLY="NAME ..." bash scripts/mutation.sh train_step   # only these mutants
#
# Each module runs in its own copy of the working tree (MUTATION_WORK, default
# /tmp/rsna-mutation/<module>) with only its relevant tests, so one module takes minutes,
# not the whole suite per mutant. Needs mutmut: `.venv/bin/pip install -e '.[mutation]'`.
# CPU-heavy: MUTATION_CHILDREN (default 2) mutants run at once. Timeouts (a mutant whose
# tests run past 15 x their clean time + MUTATION_TIMEOUT_S, default 60 s) count as killed.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-$REPO/.venv/bin/python}"
WORK="${MUTATION_WORK:-/tmp/rsna-mutation}"
CHILDREN="${MUTATION_CHILDREN:-2}"

# module -> "source file|tests (pytest node ids or files, space-separated)"
declare -A MODULES=(
  [voi]="rsna_pkg/dicom/voi.py|tests/test_dicom_voi.py"
  [metrics]="rsna_pkg/metrics.py|tests/test_metrics.py"
  [submission]="rsna_pkg/infer/submission.py|tests/test_infer_submission.py"
  [roi]="rsna_pkg/preprocess/roi.py|tests/test_roi.py"
  # the training step with DDP: Trainer.train_epoch (no_sync accumulation, loss scaling,
  # optimizer, schedule and EMA steps) and the loss gathered over ranks, against the DDP test
  # (two gloo ranks, and one process on the same images) and an epoch that ends in a
  # partial accumulation, a model without auxiliary heads, the epoch loss against one computed
  # from the logits, and a NaN loss; about 15 s a mutant on a quiet machine
  [train_step]="rsna_pkg/train/trainer.py|tests/test_train_ddp.py::test_ddp_ranks_agree_with_each_other_and_with_one_process tests/test_train_ddp.py::test_a_last_partial_accumulation_still_steps tests/test_train_ddp.py::test_a_model_without_auxiliary_heads_trains_on_its_logits_alone tests/test_train_ddp.py::test_the_epoch_loss_is_the_mean_loss_of_every_image tests/test_train_ddp.py::test_a_loss_that_stops_being_finite_stops_training"
)
# module -> the mutants to run (mutmut name patterns), where not the whole file
declare -A ONLY=(
  [train_step]="rsna_pkg.train.trainer.xǁTrainerǁtrain_epoch__mutmut_* rsna_pkg.train.trainer.x__gather_sum__mutmut_*"
)
ORDER=(voi metrics submission roi train_step)

if ! "$PY" -c "import mutmut" 2>/dev/null; then
  echo "mutation.sh: mutmut is not installed in $PY (pip install -e '.[mutation]')" >&2
  exit 2
fi
selected=("$@")
[ ${#selected[@]} -eq 0 ] && selected=("${ORDER[@]}")
for name in "${selected[@]}"; do
  [ -n "${MODULES[$name]+x}" ] || { echo "mutation.sh: unknown module $name (${ORDER[*]})" >&2; exit 2; }
done

summary=()
for name in "${selected[@]}"; do
  IFS='|' read -r source tests <<<"${MODULES[$name]}"
  dir="$WORK/$name"
  rm -rf "$dir"
  mkdir -p "$dir"
  # the working tree as a commit of it would hold it: tracked and untracked-not-ignored files
  (cd "$REPO" && git ls-files -z -c -o --exclude-standard -- rsna_pkg tests pyproject.toml setup.py \
    | xargs -0 cp --parents -t "$dir")
  {
    echo
    echo "[tool.mutmut]"
    echo "source_paths = [\"rsna_pkg\"]"
    echo "only_mutate = [\"$source\"]"
    printf 'pytest_add_cli_args_test_selection = ['
    first=1
    for t in $tests; do
      [ $first -eq 1 ] || printf ', '
      printf '"%s"' "$t"
      first=0
    done
    echo "]"
    echo 'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x"]'
    # a mutant's tests may take 15 x their clean time + this many seconds before it counts
    # as a timeout: on a busy machine the default 1 s turns slow starts into "timeouts"
    echo "timeout_constant = ${MUTATION_TIMEOUT_S:-60}"
  } >>"$dir/pyproject.toml"
  echo "== $name: $source against $tests"
  start=$(date +%s)
  # one thread per process: mutmut forks each mutant's test run from a process that has
  # imported torch, and a forked child of a running OpenMP pool can hang (it did here,
  # showing up as "timeouts")
  # MUTATION_ONLY (mutmut names or patterns) reruns just those, e.g. a previous run's
  # survivors after a new test
  read -r -a only <<<"${MUTATION_ONLY:-${ONLY[$name]:-}}"
  (cd "$dir" && OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 "$PY" -m mutmut run --max-children "$CHILDREN" \
    "${only[@]}" >"$dir/run.log" 2>&1) || {
    echo "mutation.sh: mutmut failed for $name; see $dir/run.log" >&2
    tail -20 "$dir/run.log" >&2
    exit 1
  }
  seconds=$(($(date +%s) - start))
  (cd "$dir" && "$PY" -m mutmut export-cicd-stats >/dev/null && "$PY" -m mutmut results >"$dir/survivors.txt" 2>&1) || true
  line=$("$PY" - "$dir/mutants/mutmut-cicd-stats.json" "$name" "$seconds" <<'EOF'
import json
import sys

stats = json.load(open(sys.argv[1]))
name, seconds = sys.argv[2], int(sys.argv[3])
killed = stats["killed"] + stats["timeout"] + stats["segfault"]
# a mutant none of the module's tests reaches counts against it, as one that survives
judged = killed + stats["survived"] + stats["suspicious"] + stats["no_tests"]
share = 100.0 * killed / judged if judged else 0.0
print(f"{name}: {killed}/{judged} mutants killed ({share:.1f} %), {stats['survived']} survived, "
      f"{stats['no_tests']} not reached by its tests, {stats['timeout']} of the killed by "
      f"timeout, {stats['skipped']} skipped; {seconds} s")
EOF
)
  echo "$line"
  grep -E ": (survived|suspicious|no tests)" "$dir/survivors.txt" | sed 's/^/  /' || true
  summary+=("$line")
done
echo
echo "mutation score per module (goal: 90 % killed):"
printf '  %s\n' "${summary[@]}"
