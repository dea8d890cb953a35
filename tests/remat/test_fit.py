"""remat.apply inside model.fit on TensorFlow: graph mode and XLA give the plain model's
losses, weights and BatchNormalization statistics (Dropout masks replayed)."""

import graphs
import keras
import numpy as np
import pytest

from tenfold.remat import apply


def _fit(make, x, y, wrap, jit_compile, loss):
    original = make()
    model = apply(original, "sqrt") if wrap else original
    model.compile(keras.optimizers.SGD(0.05), loss, jit_compile=jit_compile)
    history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    # the variables of the original layers (shared by the wrapped model), in their order
    return history.history["loss"], [(v.path, np.asarray(v)) for v in original.variables]


CASES = {
    "dag": (graphs.dag, lambda: (np.concatenate([graphs.dag_input(0), graphs.dag_input(1)]),
                                 np.arange(8) % 4)),
    "encoder": (graphs.encoder, lambda: (graphs.encoder_inputs(batch=8), np.arange(8) % 3)),
}


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("case", sorted(CASES))
def test_fit_matches_plain_fit(case, jit_compile):
    make, data = CASES[case]
    x, y = data()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    loss_a, vars_a = _fit(make, x, y, False, jit_compile, loss)
    loss_b, vars_b = _fit(make, x, y, True, jit_compile, loss)
    np.testing.assert_allclose(loss_b, loss_a, rtol=1e-5)
    assert len(vars_a) == len(vars_b)
    for (path, a), (_, b) in zip(vars_a, vars_b):  # moving statistics, seed states included
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6, err_msg=path)
