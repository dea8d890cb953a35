"""The backend-neutral promise: `import tenfold` and every Keras component work under JAX.

Runs in a subprocess with KERAS_BACKEND=jax (the way components are measured on a GPU
machine that has JAX but no TensorFlow).
"""

import importlib
import json
import os
import subprocess
import sys

import pytest

from tenfold import _tf

SCRIPT = r"""
import json, sys
import tenfold
from tenfold import registry
from tenfold._api import contract_kind
from tenfold.testing import check_component
assert not any(m == "tensorflow" or m.startswith("tensorflow.") for m in sys.modules), "TensorFlow imported"
results = {}
for kind in registry.kinds():
    for entry in registry.entries(kind):
        ck = contract_kind(entry.obj)
        if ck is None or entry.example is None:
            continue
        try:
            check_component(ck, entry.example(), checks=("config", "fit"))
            results[entry.path] = "ok"
        except Exception as err:  # report every failure, not just the first
            results[entry.path] = f"{type(err).__name__}: {err}"[:500]
print("RESULTS" + json.dumps(results))
"""


def test_import_and_components_under_jax_without_tensorflow():
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(proc.stdout.split("RESULTS", 1)[1])
    assert len(results) >= 1
    failed = {k: v for k, v in results.items() if v != "ok"}
    assert not failed, failed


def test_tensorflow_only_parts_name_the_extra(monkeypatch):
    real = importlib.import_module

    def fake(name, *args, **kwargs):
        if name == "tensorflow":
            raise ImportError("No module named 'tensorflow'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(ImportError, match=r"tf\.data echoing needs TensorFlow.*tenfold\[cpu\].*tenfold\[gpu\]"):
        _tf.tensorflow("tf.data echoing")
