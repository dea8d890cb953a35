"""Backend-neutral gradient checks for the remat tests (also run in JAX/PyTorch subprocesses).

``step(model, x)`` takes one training-mode gradient of ``Σ outputs²`` on the current Keras
backend and returns the gradients by variable and the variables' values after the step;
``compare(plain, remat, x)`` runs it on both models from the same starting state (the
models share their layers) and checks gradients and state.
"""

from __future__ import annotations

import keras
import numpy as np


def _loss(outputs):
    return sum(
        keras.ops.sum(keras.ops.square(keras.ops.cast(o, "float32")))
        for o in keras.tree.flatten(outputs)
    )


def step(model, x):
    """({id(variable): gradient}, {id(variable): value after}) of one training step."""
    trainable = model.trainable_variables
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = _loss(model(x, training=True))
        grads = tape.gradient(loss, trainable)
    elif backend == "jax":
        import jax

        state = model.non_trainable_variables

        def f(tv, ntv):
            y, new = model.stateless_call(tv, ntv, x, training=True)
            return _loss(y), new

        grads, new = jax.jit(jax.grad(f, has_aux=True))(
            [v.value for v in trainable], [v.value for v in state]
        )
        for v, value in zip(state, new):
            v.assign(value)
    elif backend == "torch":
        for v in trainable:
            v.value.grad = None
        _loss(model(x, training=True)).backward()
        grads = [v.value.grad for v in trainable]
    else:  # pragma: no cover
        raise NotImplementedError(backend)
    grads = {id(v): keras.ops.convert_to_numpy(g) for v, g in zip(trainable, grads)}
    values = {id(v): keras.ops.convert_to_numpy(v.value) for v in model.variables}
    return grads, values


def compare(plain, remat, x, *, rtol=1e-5):
    """Gradients of ``remat`` equal ``plain``'s (relative norm ≤ rtol per variable), and the
    state after the step (moving statistics, seed generators) is the same. Returns the
    paths of the non-trainable variables the step changed."""
    start = [keras.ops.convert_to_numpy(v.value) for v in plain.variables]
    g_plain, s_plain = step(plain, x)
    for v, value in zip(plain.variables, start):
        v.assign(value)
    g_remat, s_remat = step(remat, x)
    assert set(g_plain) == set(g_remat), "the two models train different variables"
    assert set(s_plain) == set(s_remat), "the two models hold different variables"
    # a gradient that is zero in exact arithmetic (a bias before BatchNormalization) is
    # float noise: it is compared against the whole gradient's norm instead of its own
    total = float(np.sqrt(sum(np.sum(g.astype("float64") ** 2) for g in g_plain.values())))
    for v in plain.trainable_variables:
        a, b = g_plain[id(v)].astype("float64"), g_remat[id(v)].astype("float64")
        scale = float(np.linalg.norm(a))
        err = float(np.linalg.norm(a - b))
        assert err <= rtol * scale + 0.1 * rtol * total, (
            f"{v.path}: difference {err:.3e}, relative {err / max(scale, 1e-30):.2e}, "
            f"gradient norm {scale:.3e} of {total:.3e} in all"
        )
    for v in plain.variables:
        a, b = s_plain[id(v)], s_remat[id(v)]
        if not np.issubdtype(a.dtype, np.floating):
            np.testing.assert_array_equal(b, a, err_msg=v.path)
        else:
            np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7, err_msg=v.path)
    before = {id(v): value for v, value in zip(plain.variables, start)}
    return [v.path for v in plain.non_trainable_variables
            if not np.array_equal(s_plain[id(v)], before[id(v)])]
