"""Post-hoc logit adjustment, τ-normalization, τ search and cRT."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tenfold.longtail import (
    adjust_logits,
    classifier_layer,
    retrain_classifier,
    search_tau,
    tau_normalize,
)

COUNTS = [60, 25, 10, 4]


def _np_log_prior(counts):
    n = np.asarray(counts, np.float64)
    return np.log(n / n.sum())


def test_adjust_logits_reference_and_identity():
    z = np.random.default_rng(0).normal(size=(6, 4))
    for tau in (0.5, 1.0, 2.0):
        np.testing.assert_allclose(adjust_logits(z, COUNTS, tau=tau), z - tau * _np_log_prior(COUNTS), rtol=1e-12)
    assert adjust_logits(z, COUNTS, tau=0.0) is z  # τ = 0: unchanged
    tensor = tf.constant(z, tf.float32)
    out = adjust_logits(tensor, COUNTS, tau=1.0)
    assert isinstance(out, tf.Tensor) and out.dtype == tf.float32
    np.testing.assert_allclose(out.numpy(), z - _np_log_prior(COUNTS), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(adjust_logits(tensor, COUNTS, tau=0.0).numpy(), tensor.numpy())


def test_adjust_logits_bad_input():
    with pytest.raises(ValueError, match=r"logits have 3 classes but class_counts has 4"):
        adjust_logits(np.zeros((2, 3)), COUNTS)
    with pytest.raises(ValueError, match=r"tau must be a finite number, received nan"):
        adjust_logits(np.zeros((2, 4)), COUNTS, tau=float("nan"))
    with pytest.raises(ValueError, match=r"class_counts\[1\] must be an integer >= 1, received -1"):
        adjust_logits(np.zeros((2, 2)), [3, -1])


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,))
    h = keras.layers.Dense(8, activation="relu", name="body")(inputs)
    h = keras.layers.BatchNormalization(name="bn")(h)
    outputs = keras.layers.Dense(4, name="classifier")(h)
    return keras.Model(inputs, outputs)


def _long_tailed_data(seed=0):
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.full(n, c) for c, n in enumerate(COUNTS)])
    centers = rng.normal(scale=2.0, size=(4, 6))
    x = (centers[y] + rng.normal(size=(len(y), 6))).astype("float32")
    return x, y


def _weights(model):
    return {w.path: np.array(w.numpy()) for w in model.weights}


def test_tau_normalize_reference_and_only_classifier_changes():
    model = _model()
    before = _weights(model)
    kernel = before["classifier/kernel"].astype(np.float64)
    tau_normalize(model, tau=0.7)
    after = _weights(model)
    expected = kernel / np.linalg.norm(kernel, axis=0, keepdims=True) ** 0.7
    np.testing.assert_allclose(after["classifier/kernel"], expected, rtol=1e-5)
    for path, value in before.items():
        if path != "classifier/kernel":
            np.testing.assert_array_equal(after[path], value, err_msg=path)
    tau_normalize(model.get_layer("classifier"), tau=0.0)  # identity
    np.testing.assert_array_equal(_weights(model)["classifier/kernel"], after["classifier/kernel"])


def test_tau_normalize_one_gives_unit_columns_and_finds_last_dense():
    inputs = keras.Input((3,))
    outputs = keras.layers.Dense(5, name="head")(keras.layers.Dense(4, name="hidden")(inputs))
    model = keras.Model(inputs, outputs)
    assert classifier_layer(model).name == "head"
    tau_normalize(model, tau=1.0)
    np.testing.assert_allclose(np.linalg.norm(model.get_layer("head").kernel.numpy(), axis=0), 1.0, rtol=1e-6)


def test_tau_normalize_bad_input():
    with pytest.raises(TypeError, match=r"model_or_dense must be a keras.Model or a keras.layers.Dense, received 'model' of type str"):
        tau_normalize("model")
    with pytest.raises(ValueError, match=r"layer_name 'nope' is not a layer"):
        tau_normalize(_model(), layer_name="nope")
    with pytest.raises(TypeError, match=r"'bn' is a BatchNormalization, not a Dense or NormedDense"):
        tau_normalize(_model(), layer_name="bn")
    with pytest.raises(ValueError, match=r"not built yet"):
        tau_normalize(keras.layers.Dense(3))


def test_search_tau_adjust_logits_on_precomputed_logits():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, size=200)
    # logits biased towards the head by exactly the log prior: τ = 1 undoes it
    logits = 3.0 * np.eye(4)[y] + rng.normal(size=(200, 4)) + 2.0 * _np_log_prior(COUNTS)
    result = search_tau(logits, None, y, COUNTS, taus=[0.0, 1.0, 2.0])
    assert result.taus == [0.0, 1.0, 2.0] and len(result.scores) == 3
    best = int(np.argmax(result.scores))
    assert result.tau == result.taus[best] and result.score == max(result.scores)
    for tau, score in zip(result.taus, result.scores):
        pred = np.argmax(logits - tau * _np_log_prior(COUNTS), axis=-1)
        rec = [np.mean(pred[y == c] == c) for c in range(4)]
        assert score == pytest.approx(np.mean(rec))
    assert result.tau == 2.0


def test_search_tau_tau_norm_matches_applying_it():
    x, y = _long_tailed_data()
    model = _model()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=3, verbose=0)
    before = _weights(model)
    result = search_tau(model, x, y, COUNTS, method="tau_norm", taus=[0.0, 0.5, 1.0])
    for path, value in before.items():  # the search does not modify the model
        np.testing.assert_array_equal(_weights(model)[path], value)
    tau_normalize(model, tau=result.tau)
    pred = model.predict(x, verbose=0).argmax(-1)
    rec = [np.mean(pred[y == c] == c) for c in range(4)]
    assert result.score == pytest.approx(np.mean(rec))


def test_search_tau_bad_input():
    with pytest.raises(ValueError, match=r"method must be one of 'adjust_logits', 'tau_norm', received 'x'"):
        search_tau(np.zeros((2, 4)), None, [0, 1], COUNTS, method="x")
    with pytest.raises(ValueError, match=r"logits have shape \(2, 3\), expected \(2, 4\)"):
        search_tau(np.zeros((2, 3)), None, [0, 1], COUNTS)
    with pytest.raises(TypeError, match=r"model must be a keras.Model for method='tau_norm', received array"):
        search_tau(np.zeros((2, 4)), None, [0, 1], COUNTS, method="tau_norm")


def test_crt_changes_only_the_classifier_and_restores_flags():
    x, y = _long_tailed_data()
    model = _model()
    model.get_layer("body").trainable = True
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, verbose=0)
    before = _weights(model)
    history = retrain_classifier(model, (x, y), COUNTS, epochs=2, batch_size=16, seed=0)
    assert len(history.history["loss"]) == 2
    after = _weights(model)
    changed = {p for p in before if not np.array_equal(before[p], after[p])}
    assert changed == {"classifier/kernel", "classifier/bias"}
    assert all(layer.trainable for layer in model.layers)


def test_crt_balances_the_classifier():
    x, y = _long_tailed_data(seed=3)
    rng = np.random.default_rng(3)
    centers = rng.normal(scale=2.0, size=(4, 6))  # the same centers as _long_tailed_data(seed=3)
    y_test = np.repeat(np.arange(4), 200)
    x_test = (centers[y_test] + rng.normal(size=(800, 6))).astype("float32")
    model = _model(seed=3)
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=30, batch_size=32, verbose=0)

    def tail_recall():
        return np.mean(model.predict(x_test, verbose=0).argmax(-1)[y_test == 3] == 3)

    plain = tail_recall()
    retrain_classifier(model, tf.data.Dataset.from_tensor_slices((x, y)), COUNTS, epochs=15, seed=1)
    # after class-balanced re-training the rarest class is recognized more often
    assert tail_recall() > plain


def test_crt_bad_input():
    model = _model()
    with pytest.raises(ValueError, match=r"sampler must be one of 'class_balanced', 'square_root', 'instance', received 'progressive'"):
        retrain_classifier(model, (np.zeros((4, 6)), np.arange(4)), COUNTS, sampler="progressive")
    with pytest.raises(ValueError, match=r"epochs must be an integer >= 1, received 0"):
        retrain_classifier(model, (np.zeros((4, 6)), np.arange(4)), COUNTS, epochs=0)
