"""NF-ResNet pieces: activation gammas, expected stds, the NF block, small_resnet(norm="none")."""

import keras
import numpy as np
import pytest

import tenfold
from tenfold.models import (
    ACTIVATION_GAMMAS,
    NFResidualBlock,
    ScaledActivation,
    activation_gamma,
    estimate_gamma,
    expected_stds,
)


def test_relu_gamma_closed_form():
    assert activation_gamma("relu") == pytest.approx(np.sqrt(2.0 / (1.0 - 1.0 / np.pi)), rel=1e-8)


@pytest.mark.parametrize("name", sorted(ACTIVATION_GAMMAS))
def test_table_agrees_with_monte_carlo(name):
    assert estimate_gamma(name, samples=1 << 20, seed=1) == pytest.approx(ACTIVATION_GAMMAS[name], rel=5e-3)


def test_gamma_scales_to_unit_variance_and_unknown_activations_are_estimated():
    x = np.random.default_rng(0).standard_normal(200_000)
    y = np.asarray(ScaledActivation("gelu")(x.astype("float32")), np.float64)
    assert np.var(y) == pytest.approx(1.0, rel=2e-2)
    gamma = activation_gamma("hard_silu")  # not in the table: Monte-Carlo estimate
    h = x * np.clip(x + 3, 0, 6) / 6  # hard_silu in NumPy
    assert gamma == pytest.approx(1.0 / np.std(h), rel=1e-2)


def test_expected_stds_follow_the_variance_recursion():
    alpha = 0.2
    got = expected_stds((3, 2), alpha=alpha)
    var, ref = 1.0, []
    for stage, count in enumerate((3, 2)):
        for i in range(count):
            ref.append(np.sqrt(var))
            var = (1.0 if stage and i == 0 else var) + alpha**2
    np.testing.assert_allclose(got, ref)
    assert got[:3] == pytest.approx([1.0, np.sqrt(1.04), np.sqrt(1.08)])


def conv_same(x, w):
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros(x.shape[:3] + (w.shape[-1],))
    for i in range(x.shape[1]):
        for j in range(x.shape[2]):
            out[:, i, j] = np.tensordot(xp[:, i:i + 3, j:j + 3], w, 3)
    return out


def ws_ref(w):
    w = np.asarray(w, np.float64)
    return (w - w.mean((0, 1, 2))) / np.sqrt(np.maximum(np.prod(w.shape[:3]) * w.var((0, 1, 2)), 1e-4))


def test_nf_block_matches_reference():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 5, 3)).astype("float32")
    block = NFResidualBlock(3, beta=1.3, alpha=0.2)
    y0 = np.asarray(block(x))
    np.testing.assert_allclose(y0, x, atol=1e-6)  # zero-initialized skip gain: identity
    block.skip_gain.assign(0.7)
    g = ACTIVATION_GAMMAS["relu"]
    h = np.maximum(x / 1.3, 0) * g
    h = conv_same(h, ws_ref(block.conv1.kernel) * np.asarray(block.conv1.gain))
    h = np.maximum(h, 0) * g
    h = conv_same(h, ws_ref(block.conv2.kernel) * np.asarray(block.conv2.gain))
    np.testing.assert_allclose(np.asarray(block(x)), x + 0.2 * 0.7 * h, rtol=1e-4, atol=1e-4)


def test_projection_block_shortcut_reads_normalized_input():
    x = np.random.default_rng(1).normal(size=(2, 6, 6, 2)).astype("float32")
    block = NFResidualBlock(4, strides=2, beta=2.0)
    y = np.asarray(block(x))
    assert y.shape == (2, 3, 3, 4) and block.shortcut_conv is not None
    short = np.asarray(block.shortcut_conv(np.maximum(x / 2.0, 0) * ACTIVATION_GAMMAS["relu"]))
    np.testing.assert_allclose(y, short, atol=1e-5)


def test_small_resnet_norm_none_is_nf_and_trains():
    model = tenfold.models.small_resnet((8, 8, 1), 10, width=8, conv="ws", norm="none")
    blocks = [layer for layer in model.layers if isinstance(layer, NFResidualBlock)]
    assert len(blocks) == 3 and blocks[0].beta == 1.0 and blocks[1].beta == pytest.approx(np.sqrt(1.04))
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in model._flatten_layers())
    splits = tenfold.data.load("digits")
    model.compile(keras.optimizers.Adam(3e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(splits.x_train, splits.y_train, batch_size=64, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert np.isfinite(history.history["loss"]).all()


@pytest.mark.parametrize(
    "kwargs,match",
    [({"alpha": 0}, "alpha"), ({"beta": -1.0}, "beta"), ({"strides": 3}, "strides"), ({"filters": 0}, "filters")],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NFResidualBlock(**{"filters": 4, **kwargs})


def test_bad_activation_and_samples():
    with pytest.raises(ValueError, match="activation"):
        ScaledActivation("nope")
    with pytest.raises(TypeError, match="activation"):
        ScaledActivation(np.tanh)
    with pytest.raises(ValueError, match="samples"):
        estimate_gamma("relu", samples=10)
    with pytest.raises(ValueError, match="gamma"):
        ScaledActivation("relu", gamma=0.0)
