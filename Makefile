# The two commands of the README: `make run` (set up + train on bundled data) and
# `make test` (set up + run the test suite). Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export KERAS_BACKEND ?= tensorflow
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: run test test-slow test-all bench lint setup

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[cpu,dev]"
	# KerasHub backbones for the your-model tests and `tenfold bench models`; --no-deps because
	# its tensorflow-text requirement pulls the full tensorflow next to tensorflow-cpu
	$(PY) -m pip install -q --no-deps keras-hub regex rich kagglehub kagglesdk==0.1.28 sentencepiece tokenizers tqdm
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/tenfold train --out runs/default --force

# the whole suite under TensorFlow, then the backend-neutral tests under JAX and PyTorch
test: $(STAMP)
	$(PY) -m pytest -n 2 --dist load -q --durations=15
	KERAS_BACKEND=jax JAX_PLATFORMS=cpu $(PY) -m pytest -n 2 --dist load -q -m "all_backends and not slow"
	KERAS_BACKEND=torch $(PY) -m pytest -n 2 --dist load -q -m "all_backends and not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -n 2 --dist load -q -m slow
	KERAS_BACKEND=torch $(PY) -m pytest -n 2 --dist load -q -m "all_backends and slow"

test-all: $(STAMP)
	$(PY) -m pytest -n 2 --dist load -q -m "slow or not slow"

bench: $(STAMP)
	$(VENV)/bin/tenfold bench --quick

lint: $(STAMP)
	$(VENV)/bin/ruff check tenfold tests
