"""DeferredReweighting switches the compiled loss's class weights at the right epoch."""

import keras
import numpy as np
import pytest

from tenfold.callbacks import DeferredReweighting
from tenfold.losses import LDAMLoss, LogitAdjustedLoss

COUNTS = [40, 10, 3]


def _np_cb_weights(counts, beta):
    n = np.asarray(counts, np.float64)
    w = (1 - beta) / (1 - beta**n)
    return w / w.sum() * len(n)


def _setup(loss):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(53, 4)).astype("float32")
    y = np.concatenate([np.full(n, c) for c, n in enumerate(COUNTS)])
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    # learning rate 0: the model is fixed, so each epoch's loss shows the weights in use
    model.compile(keras.optimizers.SGD(0.0), loss)
    return model, x, y


class _Probe(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.functions = []

    def on_epoch_end(self, epoch, logs=None):
        self.functions.append(self.model.train_function)


@pytest.mark.parametrize("kwargs,switch", [({"start_epoch": 3}, 3), ({"start_fraction": 0.8}, 4), ({}, 4)])
def test_switch_epoch_and_losses(kwargs, switch):
    loss = LogitAdjustedLoss(COUNTS, tau=0.0)  # plain cross-entropy
    model, x, y = _setup(loss)
    drw = DeferredReweighting(COUNTS, beta=0.999, **kwargs)
    probe = _Probe()
    history = model.fit(x, y, batch_size=len(y), epochs=5, verbose=0, shuffle=False, callbacks=[drw, probe])
    assert drw.switch_epoch == switch
    logits = model.predict(x, verbose=0).astype(np.float64)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    ce = -logp[np.arange(len(y)), y]
    weighted = np.mean(_np_cb_weights(COUNTS, 0.999)[y] * ce)
    expected = [np.mean(ce) if e < switch else weighted for e in range(5)]
    np.testing.assert_allclose(history.history["loss"], expected, rtol=1e-5)
    # the compiled train step was reused, not rebuilt
    assert all(f is probe.functions[0] for f in probe.functions)
    np.testing.assert_allclose(loss.class_weights, _np_cb_weights(COUNTS, 0.999), rtol=1e-6)


def test_resume_after_switch_and_refit_before_switch():
    loss = LDAMLoss(COUNTS, scale=2.0)
    model, x, y = _setup(loss)
    drw = DeferredReweighting(COUNTS, start_epoch=2)
    model.fit(x, y, epochs=4, initial_epoch=3, verbose=0, callbacks=[drw])
    assert drw.active and not np.allclose(loss.class_weights, 1.0)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[drw])  # a new run starts unweighted
    assert not drw.active
    np.testing.assert_allclose(loss.class_weights, 1.0)


def test_needs_a_tenfold_loss():
    model, x, y = _setup(keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(TypeError, match=r"needs the model compiled with a tenfold long-tail loss"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[DeferredReweighting(COUNTS)])
    model, x, y = _setup(LogitAdjustedLoss(COUNTS))
    with pytest.raises(ValueError, match=r"has 2 class counts but the loss has 3 classes"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[DeferredReweighting([5, 3])])


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"start_epoch must be an integer >= 0, received -1"):
        DeferredReweighting(COUNTS, start_epoch=-1)
    with pytest.raises(ValueError, match=r"start_fraction must be a number >= 0 and <= 1, received 1.5"):
        DeferredReweighting(COUNTS, start_fraction=1.5)
    with pytest.raises(ValueError, match=r"beta must be a number >= 0 and < 1, received 1"):
        DeferredReweighting(COUNTS, beta=1)
    with pytest.raises(ValueError, match=r"class_counts\[1\] must be an integer >= 1, received 0"):
        DeferredReweighting([3, 0])
    assert DeferredReweighting(COUNTS, start_epoch=2).get_config() == {
        "class_counts": COUNTS, "start_epoch": 2, "start_fraction": 0.8, "beta": 0.9999}
