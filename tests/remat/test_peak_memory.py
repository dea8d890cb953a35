"""tenfold.remat.peak_memory on TensorFlow (CPU allocator: eager, graph, XLA) and its errors;
JAX and PyTorch are checked in subprocesses (test_backends.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tenfold
from tenfold.remat import apply, peak_memory


def test_counts_a_known_allocation_in_eager_and_graph_mode():
    x = tf.ones((256, 1024))  # 1 MiB
    assert peak_memory(lambda: x * 2.0 + 1.0) >= 256 * 1024 * 4
    f = tf.function(lambda x: tf.reduce_sum(tf.matmul(x, x, transpose_b=True)))
    f(x)
    # the 256 x 256 product: 256 KiB, then reduced
    assert 256 * 256 * 4 <= peak_memory(f, x) < 2 * 256 * 256 * 4 + 4096


def test_never_a_silent_zero():
    x = tf.ones((4, 4))
    with pytest.raises(RuntimeError, match="TensorFlow allocator of device 'CPU:0' recorded no allocation"):
        peak_memory(lambda: x)
    with pytest.raises(RuntimeError, match="no allocator statistics for device 'GPU:7'"):
        peak_memory(lambda: x + 1.0, device="GPU:7")
    with pytest.raises(TypeError, match="fn must be a callable, received 3"):
        peak_memory(3)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_recompute_lowers_the_peak_memory_of_a_training_step(jit_compile):
    x = tf.constant(np.random.default_rng(0).normal(size=(1024, 64)).astype("float32"))
    y = tf.constant(np.arange(1024) % 4)
    peaks = []
    for wrap in (False, True):
        keras.utils.set_random_seed(0)
        model = tenfold.models.mlp((64,), 4, hidden=(256,) * 16)
        if wrap:
            model = apply(model, "sqrt")
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

        @tf.function(jit_compile=jit_compile)
        def step(x, y, model=model, loss_fn=loss_fn):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            return tape.gradient(loss, model.trainable_variables)

        step(x, y)
        peaks.append(peak_memory(step, x, y))
    # 16 activations of 1 MiB each are kept without remat; about 4 + 4 with it
    assert peaks[1] < 0.75 * peaks[0], peaks
