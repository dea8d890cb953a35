"""state_bytes counts every optimizer variable from shape and dtype."""

import keras
import numpy as np
import pytest

from tenfold.optimizers import state_bytes


def model():
    return keras.Sequential([keras.Input((20,)), keras.layers.Dense(30), keras.layers.Dense(5)])


def test_adam_is_two_slots_plus_step_and_lr():
    m = model()
    params = m.count_params()
    opt = keras.optimizers.Adam()
    opt.build(m.trainable_variables)
    assert state_bytes(opt) == 2 * 4 * params + 8 + 4
    sgd = keras.optimizers.SGD(0.1)
    sgd.build(m.trainable_variables)
    assert state_bytes(sgd) == 8 + 4
    sgd_m = keras.optimizers.SGD(0.1, momentum=0.9)
    sgd_m.build(m.trainable_variables)
    assert state_bytes(sgd_m) == 4 * params + 8 + 4


def test_wrappers_count_inner_state_once():
    m = model()
    inner = keras.optimizers.Adam()
    lso = keras.optimizers.LossScaleOptimizer(inner)
    lso.build(m.trainable_variables)
    # the wrapper's own step (int64), lr (float32), step counter (int64), scale (float32)
    assert state_bytes(lso) == state_bytes(inner) + 8 + 4 + 8 + 4


def test_dtype_sizes():
    opt = keras.optimizers.Adam()
    opt.build([keras.Variable(np.zeros((10, 3)), dtype="bfloat16")])
    assert state_bytes(opt) == 2 * 2 * 30 + 8 + 4


def test_bfloat16_momentum_slots_count_two_bytes():
    from tenfold.optimizers import SM3, Adafactor

    m = model()  # kernels (20, 30), (30, 5): too small to factor, full second moments
    params = m.count_params()
    sm3 = SM3(0.1, momentum_dtype="bfloat16")
    sm3.build(m.trainable_variables)
    covers = (20 + 30) + 30 + (30 + 5) + 5
    assert state_bytes(sm3) == 4 * covers + 2 * params + 8 + 4
    ada = Adafactor(beta_1=0.9, momentum_dtype="bfloat16")
    ada.build(m.trainable_variables)
    assert state_bytes(ada) == 4 * params + 2 * params + 8 + 4


def test_errors():
    with pytest.raises(ValueError, match="not built"):
        state_bytes(keras.optimizers.Adam())
    with pytest.raises(TypeError, match="Optimizer"):
        state_bytes("adam")
