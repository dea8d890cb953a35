"""Test session setup, and which tests run under which Keras backend.

`make test` runs the whole suite under TensorFlow, then the tests marked `all_backends` under
`KERAS_BACKEND=jax` and `KERAS_BACKEND=torch` (contract checks and the numerical tests of the
backend-neutral components). Under JAX or PyTorch, a test without that marker is deselected:
it uses TensorFlow's own parts (`tf.data`, `tf.distribute`, SavedModel, the trainer).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The same TensorFlow CPU kernels on every machine: TensorFlow turns oneDNN on by default only
# on CPUs with AVX-512, and without it (measured on an AMD EPYC with AVX2) Conv2D refuses
# channels_first, the CPU allocator keeps no statistics (remat.peak_memory) and the
# `grappler` oneDNN bfloat16 rewrite does nothing. The suite runs with it on everywhere.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import keras  # noqa: E402
import pytest  # noqa: E402

BACKEND = keras.backend.backend()

# torch.compile takes minutes per component on a CPU (236 s for ACBlock alone, measured):
# under PyTorch the jit_compile contract check runs only with the slow tests.
TORCH_SLOW_CHECKS = ("jit_compile",)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "all_backends: also runs under KERAS_BACKEND=jax and torch in `make test`"
    )


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects, so added `slow` markers count
def pytest_collection_modifyitems(config, items):
    if BACKEND == "tensorflow" or os.environ.get("TENFOLD_TEST_EVERYTHING") == "1":
        return  # TENFOLD_TEST_EVERYTHING=1: find which unmarked tests pass on this backend
    kept, dropped = [], []
    for item in items:
        (kept if item.get_closest_marker("all_backends") else dropped).append(item)
        callspec = getattr(item, "callspec", None)
        check = callspec.params.get("check") if callspec else None
        if BACKEND == "torch" and check in TORCH_SLOW_CHECKS:
            item.add_marker(pytest.mark.slow)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _grappler_off():
    """Turn off a Grappler mixed-precision rewrite a test left on: with oneDNN on it really
    casts every later graph in the worker process to bfloat16."""
    if BACKEND != "tensorflow":
        return
    import tensorflow as tf

    from tenfold.precision.configure import GRAPPLER_OPTIONS

    options = tf.config.optimizer.get_experimental_options()
    if any(options.get(name) for name in GRAPPLER_OPTIONS):
        from tenfold.precision import configure

        configure("float32", jit_compile=False)  # also forgets what configure() set


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts with float32, no Grappler rewrite and a clean Keras session."""
    keras.config.set_dtype_policy("float32")
    _grappler_off()
    yield
    keras.config.set_dtype_policy("float32")
    _grappler_off()
    keras.backend.clear_session()
