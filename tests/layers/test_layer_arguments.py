"""Bad layer arguments are refused at construction with a message naming the argument.

The cases are the ones issue 13 found accepted or refused without a name: non-finite or
absurd momentum/epsilon (non-finite weights, NaN loss, or nothing learned), truthy strings
for booleans, a string axis, a string filter count.
"""

import math

import numpy as np
import pytest

from tenfold.layers import (
    ACBlock,
    ExtendedBatchNormalization,
    FusedBatchNormalization,
    NormedDense,
    RepVGGBlock,
    WSConv1D,
    WSConv2D,
    WSDense,
)

# also under KERAS_BACKEND=jax and torch in `make test` (tests/conftest.py)
pytestmark = pytest.mark.all_backends

BN_LAYERS = [FusedBatchNormalization, ExtendedBatchNormalization]
EPSILON_LAYERS = [
    FusedBatchNormalization,
    ExtendedBatchNormalization,
    lambda **kw: NormedDense(3, **kw),
    lambda **kw: WSConv2D(4, 3, **kw),
    lambda **kw: WSConv1D(4, 3, **kw),
    lambda **kw: WSDense(4, **kw),
    lambda **kw: ACBlock(4, **kw),
    lambda **kw: RepVGGBlock(4, **kw),
]


@pytest.mark.parametrize("layer", BN_LAYERS + [lambda **kw: ACBlock(4, **kw)])
@pytest.mark.parametrize(
    "momentum,error,match",
    [
        (math.nan, ValueError, r"momentum must be a finite number, received nan"),
        (math.inf, ValueError, r"momentum must be a finite number, received inf"),
        (1e30, ValueError, r"momentum must be a number >= 0 and < 1, received 1e\+30"),
        (1.0, ValueError, r"momentum must be a number >= 0 and < 1, received 1.0"),
        (-0.1, ValueError, r"momentum must be a number >= 0 and < 1, received -0.1"),
        ("0.9", TypeError, r"momentum must be a finite number, received '0.9' of type str"),
    ],
)
def test_bad_momentum(layer, momentum, error, match):
    with pytest.raises(error, match=match):
        layer(momentum=momentum)


@pytest.mark.parametrize("layer", EPSILON_LAYERS)
@pytest.mark.parametrize(
    "epsilon,error,match",
    [
        (-1, ValueError, r"epsilon must be a number > 0 and < 1, received -1"),
        (0, ValueError, r"epsilon must be a number > 0 and < 1, received 0"),
        (math.nan, ValueError, r"epsilon must be a finite number, received nan"),
        (math.inf, ValueError, r"epsilon must be a finite number, received inf"),
        (1e30, ValueError, r"epsilon must be a number > 0 and < 1, received 1e\+30"),
        (1.0, ValueError, r"epsilon must be a number > 0 and < 1, received 1.0"),
        (None, TypeError, r"epsilon must be a finite number, received None"),
    ],
)
def test_bad_epsilon(layer, epsilon, error, match):
    with pytest.raises(error, match=match):
        layer(epsilon=epsilon)


@pytest.mark.parametrize("layer", BN_LAYERS)
def test_bn_booleans_and_axis(layer):
    with pytest.raises(TypeError, match=r"center must be True or False, received 'no' of type str"):
        layer(center="no")
    with pytest.raises(TypeError, match=r"scale must be True or False, received 1 of type int"):
        layer(scale=1)
    with pytest.raises(TypeError, match=r"axis must be an integer, received 'abc' of type str"):
        layer(axis="abc")
    with pytest.raises(ValueError, match=r"axis must be an integer, received 1.5"):
        layer(axis=1.5)
    assert layer(axis=np.int64(1), momentum=np.float32(0.5)).get_config()["axis"] == 1


def test_fused_bn_keeps_keras_arguments():
    layer = FusedBatchNormalization(momentum=0.9, epsilon=1e-5, beta_initializer="ones", name="bn")
    config = layer.get_config()
    assert (config["momentum"], config["epsilon"], config["name"]) == (0.9, 1e-5, "bn")
    assert config["beta_initializer"]["class_name"] == "Ones"
    assert type(FusedBatchNormalization.from_config(config)) is FusedBatchNormalization


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: WSConv2D("abc", 3), r"filters must be an integer, received 'abc' of type str"),
        (lambda: WSConv2D(0, 3), r"filters must be an integer >= 1, received 0"),
        (lambda: WSConv1D(4, "x"), r"kernel_size must be an integer, received 'x' of type str"),
        (lambda: WSConv2D(4, (3, 0)), r"kernel_size\[1\] must be an integer >= 1, received 0"),
        (lambda: WSDense(-2), r"units must be an integer >= 1, received -2"),
        (lambda: WSDense(4, use_gain="yes"), r"use_gain must be True or False, received 'yes'"),
        (lambda: NormedDense(2.5), r"units must be an integer, received 2.5"),
        (lambda: NormedDense(3, kernel_initializer="nope"),
         r"kernel_initializer must be a Keras initializer .*received 'nope' of type str"),
        (lambda: ExtendedBatchNormalization(gamma_regularizer=3),
         r"gamma_regularizer must be None or a Keras regularizer .*received 3 of type int"),
        (lambda: ACBlock(4, padding="full"), r"padding must be one of 'same', 'valid', received 'full'"),
        (lambda: RepVGGBlock(4, deploy="no"), r"deploy must be True or False, received 'no'"),
        (lambda: ACBlock(4, 4), r"kernel_size must be odd"),
    ],
)
def test_bad_sizes_types_and_choices(make, match):
    with pytest.raises((TypeError, ValueError), match=match):
        make()
