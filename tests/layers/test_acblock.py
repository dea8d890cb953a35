"""ACBlock and RepVGGBlock: branch outputs against NumPy, fused vs unfused over a grid."""

import itertools
import os
import tempfile

import keras
import numpy as np
import pytest

from tenfold.layers import ACBlock, RepVGGBlock
from tenfold.reparam import deploy, max_difference


def randomize(model, seed=0):
    """Random BN statistics and affine parameters, so that the fusion is really tested."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        if v.path.endswith("moving_variance") or v.path.endswith("gamma"):
            v.assign(rng.uniform(0.5, 2.0, v.shape))
        elif v.path.endswith("moving_mean") or v.path.endswith("beta") or v.path.endswith("bias"):
            v.assign(rng.normal(size=v.shape))


def conv_ref(x, w, b, stride):
    kh, kw = w.shape[:2]
    n, h, wd, _ = x.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, oh, ow, w.shape[-1]))
    for i in range(oh):
        for j in range(ow):
            out[:, i, j] = np.tensordot(x[:, i * stride:i * stride + kh, j * stride:j * stride + kw], w, 3)
    return out + (0 if b is None else b)


def bn_ref(y, bn):
    g, b = np.asarray(bn.gamma, np.float64), np.asarray(bn.beta, np.float64)
    m, v = np.asarray(bn.moving_mean, np.float64), np.asarray(bn.moving_variance, np.float64)
    return g * (y - m) / np.sqrt(v + bn.epsilon) + b


def acblock_reference(block, x):
    """Unfused ACBlock in float64: symmetric zero padding, three branches aligned on the centre."""
    k, s = block.kernel_size, block.strides
    p = (k - 1) // 2 if block.padding == "same" else 0
    xp = np.pad(x.astype(np.float64), ((0, 0), (p, p), (p, p), (0, 0)))
    c = (k - 1) // 2
    sq = conv_ref(xp, np.asarray(block.square.kernel, np.float64), None, s)
    hor = conv_ref(xp[:, c:xp.shape[1] - c], np.asarray(block.hor.kernel, np.float64), None, s)
    ver = conv_ref(xp[:, :, c:xp.shape[2] - c], np.asarray(block.ver.kernel, np.float64), None, s)
    return bn_ref(sq, block.square_bn) + bn_ref(hor, block.hor_bn) + bn_ref(ver, block.ver_bn)


GRID = list(itertools.product((1, 2), (7, 8), ("same", "valid"), (3, 5)))


@pytest.mark.parametrize("strides,size,padding,k", GRID)
def test_acblock_matches_reference_and_fuses_exactly(strides, size, padding, k):
    rng = np.random.default_rng(strides * 100 + size * 10 + k)
    x = rng.normal(size=(2, size, size, 3)).astype("float32")
    model = keras.Sequential([keras.Input((size, size, 3)), ACBlock(4, k, strides=strides, padding=padding)])
    randomize(model, seed=size + k)
    block = model.layers[0]
    y = model.predict(x, verbose=0)
    np.testing.assert_allclose(y, acblock_reference(block, x), rtol=1e-4, atol=1e-4)
    if padding == "same":
        assert y.shape[1] == -(-size // strides)
    fused = deploy(model)
    # the deployed model is plain Keras: one Conv2D with a bias (after a padding where needed)
    layers = [layer for layer in fused.layers if not isinstance(layer, keras.layers.InputLayer)]
    assert all(type(layer).__module__.startswith("keras.") for layer in layers), layers
    assert type(layers[-1]) is keras.layers.Conv2D and len(layers[-1].weights) == 2
    assert max_difference(model, fused, x) <= 1e-4


@pytest.mark.parametrize("strides,size,padding", list(itertools.product((1, 2), (7, 8), ("same", "valid"))))
def test_repvgg_block_fuses_exactly(strides, size, padding):
    rng = np.random.default_rng(size * strides)
    x = rng.normal(size=(2, size, size, 4)).astype("float32")
    model = keras.Sequential([keras.Input((size, size, 4)), RepVGGBlock(4, strides=strides, padding=padding)])
    randomize(model, seed=strides)
    block = model.layers[0]
    assert hasattr(block, "identity_bn") == (strides == 1)
    # reference: k×k + 1×1 (+ identity), each through its BN
    p = 1 if padding == "same" else 0
    xp = np.pad(x.astype(np.float64), ((0, 0), (p, p), (p, p), (0, 0)))
    ref = bn_ref(conv_ref(xp, np.asarray(block.square.kernel, np.float64), None, strides), block.square_bn)
    ref += bn_ref(conv_ref(xp[:, 1:-1, 1:-1], np.asarray(block.point.kernel, np.float64), None, strides), block.point_bn)
    if strides == 1:
        ref += bn_ref(xp[:, 1:-1, 1:-1], block.identity_bn)
    np.testing.assert_allclose(model.predict(x, verbose=0), ref, rtol=1e-4, atol=1e-4)
    assert max_difference(model, deploy(model), x) <= 1e-4


def test_keras_same_padding_would_break_the_fusion():
    """Why the padding is explicit: with Keras' asymmetric 'same', branches misalign."""
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 1)).astype("float32")
    k3 = keras.layers.Conv2D(1, (3, 3), strides=2, padding="same", use_bias=False)
    k13 = keras.layers.Conv2D(1, (1, 3), strides=2, padding="same", use_bias=False)
    k3.build(x.shape)
    k13.build(x.shape)
    w13 = np.random.default_rng(1).normal(size=(1, 3, 1, 1)).astype("float32")
    k3.kernel.assign(np.zeros((3, 3, 1, 1), "float32"))
    k13.kernel.assign(w13)
    fused = keras.layers.Conv2D(1, 3, strides=2, padding="same", use_bias=False)
    fused.build(x.shape)
    fused.kernel.assign(np.pad(w13, ((1, 1), (0, 0), (0, 0), (0, 0))))
    naive = np.abs(np.asarray(fused(x)) - np.asarray(k3(x)) - np.asarray(k13(x))).max()
    assert naive > 1e-2
    block = ACBlock(1, strides=2)
    model = keras.Sequential([keras.Input((8, 8, 1)), block])
    randomize(model)
    assert max_difference(model, deploy(model), x) <= 1e-4


def test_deployed_block_saves_and_loads():
    model = keras.Sequential([keras.Input((6, 6, 2)), ACBlock(3, strides=2)])
    randomize(model)
    fused = deploy(model)
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 2)).astype("float32")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "fused.keras")
        fused.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded.layers[-1]) is keras.layers.Conv2D and loaded.layers[-1].use_bias
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-4)


def test_training_updates_every_branch():
    model = keras.Sequential([keras.Input((6, 6, 2)), ACBlock(3), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = {v.path: np.asarray(v).copy() for v in model.layers[0].weights}
    model.fit(np.random.normal(size=(8, 6, 6, 2)), np.arange(8) % 2, epochs=1, verbose=0)
    for v in model.layers[0].weights:
        assert not np.array_equal(before[v.path], np.asarray(v)), v.path


@pytest.mark.parametrize(
    "kwargs,match",
    [({"kernel_size": 4}, "kernel_size must be odd"), ({"padding": "causal"}, "padding"),
     ({"strides": 0}, "strides"), ({"filters": -1}, "filters"), ({"use_bias": "no"}, "use_bias"),
     ({"momentum": 3.0}, "momentum")],
)
def test_bad_arguments(kwargs, match):
    args = {"filters": 4, **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        ACBlock(**args)
    with pytest.raises((ValueError, TypeError), match=match):
        RepVGGBlock(**args)
