#!/usr/bin/env bash
# The GPU run of tenfold (issue 16, item 5), for a machine with one NVIDIA GPU, JAX and no
# TensorFlow: installs the carried wheels (benchmarks/gpu/wheels/, made by fetch_wheels.sh)
# into a folder of its own, then measures under KERAS_BACKEND=jax with
# `python -m tenfold.bench.gpu` and writes $OUT/gpu.json (and $OUT/gpu.log), all within
# GPU_RUN_SECONDS (default 470 s: under the 8 minutes the issue gives). Extra arguments go to
# tenfold.bench.gpu (e.g. --tiny, --only encoder-remat). See benchmarks/gpu/README.md.
set -uo pipefail
START=$(date +%s)
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT" || exit 1
OUT="${OUT:-$ROOT/runs/gpu}"
PY="${PYTHON:-python3}"
TOTAL="${GPU_RUN_SECONDS:-470}"
SITE="${TENFOLD_GPU_SITE:-/tmp/tenfold-gpu-site}"
WHEELS="${TENFOLD_GPU_WHEELS:-$HERE/wheels}"
mkdir -p "$OUT"

echo "python: $("$PY" --version 2>&1) at $(command -v "$PY")"
if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  echo "no wheels in $WHEELS: run benchmarks/gpu/fetch_wheels.sh where pip works, and carry" \
       "benchmarks/gpu/wheels" >&2
  exit 2
fi
# --no-deps: the machine has the rest (numpy, jax, h5py, ml-dtypes, rich, absl-py, pyyaml,
# typer, matplotlib, scikit-learn, pillow); --target: nothing of the machine's is replaced
if ! "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$WHEELS"/*.whl; then
  echo "the carried wheels do not install on this Python: remake them with" \
       "benchmarks/gpu/fetch_wheels.sh $("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" >&2
  exit 3
fi
export PYTHONPATH="$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-/tmp/tenfold-jax-cache}"

"$PY" - <<'PY' || exit 4
import jax, keras, tenfold, tenfold.train.recipe  # recipe: the pydantic wheels
print(f"jax {jax.__version__}, keras {keras.__version__} ({keras.backend.backend()}), "
      f"tenfold {tenfold.__version__}; devices: {jax.devices()}")
try:
    import tensorflow  # noqa: F401
    print("note: TensorFlow is installed here; the run does not use it")
except ImportError:
    print("no TensorFlow here, as expected")
PY

ELAPSED=$(( $(date +%s) - START ))
LEFT=$(( TOTAL - ELAPSED ))
# the measuring stops 45 s before the hard limit: the last section may run past its estimate,
# and gpu.json is rewritten after every section, so a kill still leaves the finished ones
BUDGET=$(( LEFT - 45 ))
echo "setup took ${ELAPSED} s; measuring for at most ${BUDGET} s (hard limit ${LEFT} s)"
timeout -k 10 "$LEFT" "$PY" -m tenfold.bench.gpu --out "$OUT" --budget "$BUDGET" "$@" 2>&1 \
  | tee "$OUT/gpu.log"
STATUS=${PIPESTATUS[0]}
echo "tenfold.bench.gpu exited $STATUS after $(( $(date +%s) - START )) s in all; results in $OUT"
exit "$STATUS"
