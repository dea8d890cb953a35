"""Test session setup, and which tests run under which Keras backend.

`make test` runs the whole suite under TensorFlow, then the tests marked `all_backends` under
`KERAS_BACKEND=jax` and `KERAS_BACKEND=torch` (contract checks and the numerical tests of the
backend-neutral components). Under JAX or PyTorch, a test without that marker is deselected:
it uses TensorFlow's own parts (`tf.data`, `tf.distribute`, SavedModel, the trainer).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Each machine's default TensorFlow kernels (oneDNN only where TensorFlow turns it on, CPUs
# with AVX-512): forced on an AVX2-only CPU it computes wrong strided 1x1 convolution
# gradients (tenfold.precision.kernels; tests/precision/test_kernels.py). Tests that need
# oneDNN (channels_first Conv2D on a CPU, the Grappler bfloat16 rewrite) start a process with
# it on. A BFC CPU allocator keeps the statistics remat.peak_memory reads, oneDNN or not.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

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
