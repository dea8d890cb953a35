"""tenfold.remat.apply and peak_memory: segmenting policies, fit in graph mode and with XLA
equal to the plain model, and a lower peak memory."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tenfold
from tenfold.remat import Recompute, apply, peak_memory, segments_for
from tenfold.remat.apply import balanced_cuts


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _model(wrap):
    keras.utils.set_random_seed(4)
    model = tenfold.models.small_resnet((8, 8, 1), 4, width=4, blocks=(1, 1))
    return apply(model, "sqrt") if wrap else model


@pytest.mark.parametrize("jit_compile", [False, True])
def test_fit_in_graph_mode_and_with_xla_matches_plain_fit(jit_compile):
    x, y = _x((16, 8, 8, 1), seed=5), np.arange(16) % 4
    results = []
    for wrap in (False, True):
        model = _model(wrap)
        model.compile(
            keras.optimizers.SGD(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit_compile,
        )
        history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        results.append((history.history["loss"], [np.asarray(v) for v in model.variables]))
    (loss_a, vars_a), (loss_b, vars_b) = results
    np.testing.assert_allclose(loss_b, loss_a, rtol=1e-4)
    assert len(vars_a) == len(vars_b)
    for a, b in zip(vars_a, vars_b):  # BN moving statistics included: updated once per step
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-5)


# ---------------------------------------------------------------- apply(model, policy)


def test_apply_segments_resnet_blocks_by_sqrt_int_and_names():
    model = tenfold.models.small_resnet((8, 8, 1), 3, width=4, blocks=(3, 3, 3))
    wrapped = apply(model, "sqrt")
    segments = [layer for layer in wrapped.layers if isinstance(layer, Recompute)]
    assert len(segments) == 3
    # cut by activation size, not block count: outputs per example are 8·8·4 = 256 in stage
    # 1, 128 in stage 2, 64 in stage 3 (total 1344); cuts where the running sum first
    # reaches 1/3 and 2/3 of it: after 2 blocks (512) and after 4 (896)
    assert [len(s.layer.layers) for s in segments] == [2, 2, 5]
    names = [layer.name for layer in wrapped.layers]
    assert names[:4] == ["image", "stem_conv", "stem_norm", "stem_act"]
    assert names[-2:] == ["pool", "classifier"]
    assert len([layer for layer in apply(model, 2).layers if isinstance(layer, Recompute)]) == 2
    one = apply(model, ["stage2_block1", "stage3_block3"])
    wrapped_names = [layer.layer.name for layer in one.layers if isinstance(layer, Recompute)]
    assert wrapped_names == ["stage2_block1", "stage3_block3"]
    x = _x((2, 8, 8, 1))
    np.testing.assert_allclose(wrapped.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5)


def test_apply_segments_mlp_and_sequential():
    model = tenfold.models.mlp((4,), 2, hidden=(8,) * 9)
    wrapped = apply(model)  # 9 hidden Dense blocks, head excluded → 3 segments
    assert sum(isinstance(layer, Recompute) for layer in wrapped.layers) == 3
    assert wrapped.layers[-1].name == "classifier"
    seq = keras.Sequential([keras.Input((4,))] + [keras.layers.Dense(4) for _ in range(5)])
    out = apply(seq, 2)
    assert isinstance(out, keras.Sequential)
    assert sum(isinstance(layer, Recompute) for layer in out.layers) == 2


def test_balanced_cuts():
    assert balanced_cuts([1] * 16, 4) == [0, 4, 8, 12]
    assert balanced_cuts([4] * 4 + [2] * 4 + [1] * 4 + [0.5] * 4, 4) == [0, 2, 4, 8]
    assert balanced_cuts([100, 1, 1, 1], 4) == [0, 1, 2, 3]
    assert balanced_cuts([1, 1, 1, 100], 2) == [0, 3]
    with pytest.raises(ValueError, match="count must be between 1 and 3, received 4"):
        balanced_cuts([1, 1, 1], 4)


def test_segments_for():
    assert [segments_for("sqrt", n) for n in (1, 2, 4, 9, 16, 20)] == [1, 1, 2, 3, 4, 4]
    assert segments_for(5, 9) == 5


@pytest.mark.parametrize(
    "policy,error,match",
    [
        ("cube", ValueError, "policy must be 'sqrt'.*received 'cube'"),
        (0, ValueError, "policy as a segment count must be >= 1, received 0"),
        (99, ValueError, "asks for 99 segments but the model has only 3 blocks"),
        (1.5, TypeError, "policy must be 'sqrt', an int or a list"),
        (["nope"], ValueError, r"layers \['nope'\] that are not in model"),
    ],
)
def test_apply_bad_policy(policy, error, match):
    model = tenfold.models.small_resnet((8, 8, 1), 3, width=4, blocks=(1, 1, 1))
    with pytest.raises(error, match=match):
        apply(model, policy)


def test_apply_rejects_a_branching_model():
    inputs = keras.Input((4,))
    a = keras.layers.Dense(4)(inputs)
    b = keras.layers.Dense(4)(inputs)
    model = keras.Model(inputs, keras.layers.Add()([a, b]))
    with pytest.raises(ValueError, match="needs a chain of layers"):
        apply(model)


# ---------------------------------------------------------------- peak_memory


def test_peak_memory_counts_a_known_allocation():
    x = tf.ones((256, 1024))  # 1 MiB
    peak = peak_memory(lambda: x * 2.0 + 1.0)
    assert peak >= 256 * 1024 * 4


def test_recompute_lowers_the_peak_memory_of_a_training_step():
    x = tf.constant(_x((1024, 64)))
    y = tf.constant(np.arange(1024) % 4)
    peaks = []
    for wrap in (False, True):
        keras.utils.set_random_seed(0)
        model = tenfold.models.mlp((64,), 4, hidden=(256,) * 16)
        if wrap:
            model = apply(model, "sqrt")
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

        @tf.function
        def step(x, y, model=model, loss_fn=loss_fn):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            return tape.gradient(loss, model.trainable_variables)

        step(x, y)
        peaks.append(peak_memory(lambda step=step: step(x, y)))
    # 16 activations of 1 MiB each are kept without remat; about 4 + 4 with it
    assert peaks[1] < 0.75 * peaks[0], peaks
