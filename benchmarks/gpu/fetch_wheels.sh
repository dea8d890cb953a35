#!/usr/bin/env bash
# Fill benchmarks/gpu/wheels/ (git-ignored) with what the GPU machine lacks for
# `import tenfold` under KERAS_BACKEND=jax: keras and its two missing dependencies (namex,
# optree), pydantic (tenfold's recipe schema) with pydantic-core, annotated-types,
# typing-inspection, and a typing-extensions new enough for them. Run it here, where pip
# reaches the package registry; the GPU machine reaches none. Binary wheels (optree,
# pydantic-core) are taken for the GPU machine's Python (3.12, x86-64 manylinux), not this
# one's: pass another version as the first argument if its README says otherwise.
set -euo pipefail
PYVER="${1:-3.12}"
HERE="$(cd "$(dirname "$0")" && pwd)"
DEST="$HERE/wheels"
mkdir -p "$DEST"
rm -f "$DEST"/*.whl
python3 -m pip download --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DEST" \
  keras==3.15.1 namex==0.1.0 optree==0.20.0 \
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
  typing-extensions==4.16.0
du -ch "$DEST"/*.whl | tail -1   # the device tool carries at most 64 MiB with the working tree
