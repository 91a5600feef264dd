#!/usr/bin/env bash
# Every speed benchmark plus a short ResNet-18 CIFAR-10 training, in one go, on a GPU machine.
#
#   bash benchmarks/gpu_suite.sh [OUT_DIR]      # default OUT_DIR: $OUT if set, else /tmp/ballot_jax_gpu_suite
#   bash benchmarks/gpu_suite.sh --dry-run      # print the steps and their time limits, run nothing
#   bash benchmarks/gpu_suite.sh --quick DIR    # every step at --quick sizes (a smoke test; runs on a CPU)
#
# Run from anywhere; it changes to the repository root and puts it on PYTHONPATH (no install needed:
# jax, flax, optax, orbax-checkpoint, chex and numpy must be importable; torch for vs_torch; and
# ml_collections for the experiment runs, which are skipped with a message without it). Python is
# $PYTHON, else python3. Each step has its own time limit (`timeout`), and the limits add up to
# under 8 minutes (455 s of steps + set-up); a step that fails or runs out of time is recorded and
# the suite goes on. Results in OUT_DIR: one JSON (--json) and one log per step, train_throughput.md,
# and summary.md / summary.json (benchmarks/suite_report.py): images/s, the fraction of the chip's
# dense bf16 peak, and each benchmark's headline ratio. Exit status: 0 if every step ran, else 1.
# Nothing in the project depends on a GPU: on a CPU-only machine the same steps run on the CPU.
set -u -o pipefail

DRY=0
QUICK=0
OUT_DIR=""
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY=1 ;;
    --quick) QUICK=1 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    -*) echo "unknown option $arg" >&2; exit 2 ;;
    *) OUT_DIR="$arg" ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
OUT_DIR="${OUT_DIR:-${OUT:-${TMPDIR:-/tmp}/ballot_jax_gpu_suite}}"
PY="${PYTHON:-python3}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# JAX and PyTorch share the GPU in vs_torch: leave PyTorch room (JAX takes 75% by default).
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.6}"

Q=()
SCALE=1  # --quick runs on a (small, shared) CPU: compilation dominates there, so allow more time
if [ "$QUICK" = 1 ]; then Q=(--quick --repeats 2); SCALE=4; fi
CIFAR_ZIP=""
for c in "$ROOT/../shared/data/cifar10-jpeg.zip" "$ROOT/shared/data/cifar10-jpeg.zip"; do
  if [ -f "$c" ]; then CIFAR_ZIP="$c"; break; fi
done

FAILED=()
# step NAME LIMIT_S CMD...: run CMD with a time limit, stdout+stderr to OUT_DIR/NAME.log
step() {
  local name="$1" limit=$(($2 * SCALE)); shift 2
  if [ "$DRY" = 1 ]; then printf '%-22s %4ss  %s\n' "$name" "$limit" "$*"; return 0; fi
  echo "== $name (limit ${limit}s): $*" >&2
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" >"$OUT_DIR/$name.log" 2>&1
  local rc=$?
  echo "   $name: exit $rc after $((SECONDS - t0))s" >&2
  tail -n 12 "$OUT_DIR/$name.log" >&2
  if [ "$rc" != 0 ]; then FAILED+=("$name(exit $rc)"); fi
  return 0
}

if [ "$DRY" = 0 ]; then
  mkdir -p "$OUT_DIR" || exit 2
  "$PY" - <<'EOF' || { echo "the project's dependencies are not importable with $PY" >&2; exit 2; }
import jax, flax, optax, orbax.checkpoint, chex, numpy  # noqa: F401
import ballot_jax  # noqa: F401
print("jax", jax.__version__, "backend", jax.default_backend(), "devices", jax.devices())
EOF
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv \
    >"$OUT_DIR/nvidia-smi.txt" 2>&1
fi
HAVE_MLC=0
"$PY" -c "import ml_collections" >/dev/null 2>&1 && HAVE_MLC=1
if [ "$DRY" = 1 ]; then  # list the conditional steps too
  echo "(the last two steps run only where ml_collections imports; the last one only with the CIFAR-10 archive)"
  HAVE_MLC=1; CIFAR_ZIP="${CIFAR_ZIP:-<cifar10-jpeg.zip>}"
fi

SUITE_T0=$SECONDS
# Train throughput first (the headline): batch 128 (the experiments' size) and 512 (fills the chip better).
if [ "$QUICK" = 1 ]; then
  step train_throughput 120 "$PY" -m benchmarks.train_throughput "${Q[@]}" --json "$OUT_DIR/train_throughput.json" \
    --markdown "$OUT_DIR/train_throughput.md"
else
  step train_throughput 70 "$PY" -m benchmarks.train_throughput --batch 128 --steps 100 --repeats 3 \
    --json "$OUT_DIR/train_throughput.json" --markdown "$OUT_DIR/train_throughput.md"
  step train_throughput_b512 50 "$PY" -m benchmarks.train_throughput --batch 512 --steps 50 --repeats 3 \
    --json "$OUT_DIR/train_throughput_b512.json" --markdown "$OUT_DIR/train_throughput_b512.md"
fi
step vs_torch 65 "$PY" -m benchmarks.vs_torch "${Q[@]}" --json "$OUT_DIR/vs_torch.json"
step masked_step 35 "$PY" -m benchmarks.masked_step "${Q[@]}" --json "$OUT_DIR/masked_step.json"
step conflict 35 "$PY" -m benchmarks.conflict "${Q[@]}" --json "$OUT_DIR/conflict.json"
step loop 35 "$PY" -m benchmarks.loop "${Q[@]}" --json "$OUT_DIR/loop.json"
# Virtual CPU devices (a correctness check of the sharded step; the GPU machine has one GPU).
step sharded_step 40 "$PY" -m benchmarks.sharded_step "${Q[@]}" --json "$OUT_DIR/sharded_step.json"
step maxpool 25 "$PY" -m benchmarks.maxpool "${Q[@]}" --json "$OUT_DIR/maxpool.json"
if [ "$HAVE_MLC" = 1 ]; then
  step end_to_end 40 "$PY" -m benchmarks.end_to_end --json "$OUT_DIR/end_to_end.json" --timeout 35 \
    --config.train.steps=100 --config.train.rewind_step=2 --config.seeds=0 --config.sparsities=0.5 \
    --config.methods=dense,magnitude
  if [ -n "$CIFAR_ZIP" ]; then
    # The experiment CLI itself: ResNet-18 (batch norm) on real CIFAR-10, dense, a few hundred steps.
    STEPS=300; PER_CLASS=1000; BATCH=128
    if [ "$QUICK" = 1 ]; then STEPS=4; PER_CLASS=20; BATCH=10; fi
    E2E_T0=$SECONDS
    step cifar10_resnet18 60 "$PY" -m experiments.cifar10 --workdir "$OUT_DIR/cifar10_resnet18_run" \
      --config.data_dir="$CIFAR_ZIP" --config.data.max_per_class=$PER_CLASS --config.model=resnet18 \
      --config.model_kwargs.norm=batch --config.methods=dense --config.seeds=0 \
      --config.train.steps=$STEPS --config.train.rewind_step=1 --config.train.batch_size=$BATCH
    if [ "$DRY" = 0 ]; then
      printf '{"benchmark": "cifar10_resnet18", "wall_s": %s, "steps": %s, "batch_size": %s, "images_per_class": %s}\n' \
        "$((SECONDS - E2E_T0))" "$STEPS" "$BATCH" "$PER_CLASS" >"$OUT_DIR/cifar10_resnet18.json"
    fi
  else
    echo "cifar10_resnet18: skipped (no cifar10-jpeg.zip under ../shared/data or ./shared/data;" \
      "train_throughput above ran on synthetic data)" >&2
  fi
else
  echo "end_to_end, cifar10_resnet18: skipped (ml_collections is not importable with $PY;" \
    "carry its wheel, see benchmarks/README.md)" >&2
fi

if [ "$DRY" = 1 ]; then exit 0; fi
echo "suite: $((SECONDS - SUITE_T0))s of steps" >&2
"$PY" -m benchmarks.suite_report "$OUT_DIR" >"$OUT_DIR/summary.log" 2>&1 || FAILED+=("suite_report")
cat "$OUT_DIR/summary.md" 2>/dev/null
if [ "${#FAILED[@]}" -gt 0 ]; then
  echo "steps that failed: ${FAILED[*]}" >&2
  exit 1
fi
exit 0
