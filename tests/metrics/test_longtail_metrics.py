"""Streaming long-tail metrics against NumPy over split batches, and under MirroredStrategy."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from tenfold.metrics import BalancedAccuracy, PerClassAccuracy, ShotAccuracy, shot_group_masks

# also under KERAS_BACKEND=jax and torch in `make test` (tests/conftest.py)
pytestmark = pytest.mark.all_backends

COUNTS = [150, 101, 100, 50, 20, 19, 3]


def _np_recalls(y, pred, c, w=None):
    w = np.ones(len(y)) if w is None else w
    out = []
    for k in range(c):
        m = y == k
        out.append(np.sum(w[m] * (pred[m] == k)) / np.sum(w[m]) if np.sum(w[m]) > 0 else np.nan)
    return np.array(out)


def _batches(n=203, c=7, seed=0, sizes=(1, 17, 64, 121)):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, size=n)
    logits = rng.normal(size=(n, c)) + 2.0 * np.eye(c)[y] * rng.random((n, 1))
    cuts = np.cumsum(sizes)[:-1]
    return y, logits, np.split(np.arange(n), cuts)


def test_balanced_accuracy_on_split_batches():
    y, logits, parts = _batches()
    metric = BalancedAccuracy(7)
    for idx in parts:
        metric.update_state(y[idx], logits[idx])
    expected = np.nanmean(_np_recalls(y, logits.argmax(-1), 7))
    assert float(metric.result()) == pytest.approx(expected, abs=1e-6)
    metric.reset_state()
    assert np.isnan(float(metric.result()))


def test_balanced_accuracy_with_sample_weight_and_absent_class():
    y, logits, parts = _batches(seed=1)
    y = np.where(y == 6, 5, y)  # class 6 never appears: left out of the mean
    w = np.random.default_rng(2).random(len(y))
    metric = BalancedAccuracy(7)
    for idx in parts:
        metric.update_state(y[idx][:, None], logits[idx], sample_weight=w[idx])
    rec = _np_recalls(y, logits.argmax(-1), 7, w)
    assert np.isnan(rec[6])
    assert float(metric.result()) == pytest.approx(np.nanmean(rec), abs=1e-6)


def test_balanced_accuracy_equals_accuracy_on_balanced_labels():
    y = np.repeat(np.arange(4), 25)
    logits = np.random.default_rng(3).normal(size=(100, 4))
    metric = BalancedAccuracy(4)
    metric.update_state(y, logits)
    assert float(metric.result()) == pytest.approx(np.mean(logits.argmax(-1) == y))


def test_per_class_accuracy_on_split_batches():
    y, logits, parts = _batches(seed=4)
    metric = PerClassAccuracy(7, name="pc")
    for idx in parts:
        metric.update_state(y[idx], logits[idx])
    result = {k: float(v) for k, v in metric.result().items()}
    assert list(result) == [f"pc_{c}" for c in range(7)]
    np.testing.assert_allclose([result[f"pc_{c}"] for c in range(7)], _np_recalls(y, logits.argmax(-1), 7), atol=1e-6)


def test_shot_groups_boundaries():
    masks = shot_group_masks(COUNTS, many=100, few=20)
    # many: n > 100; medium: 20 <= n <= 100; few: n < 20
    assert masks["many"].tolist() == [True, True, False, False, False, False, False]
    assert masks["medium"].tolist() == [False, False, True, True, True, False, False]
    assert masks["few"].tolist() == [False, False, False, False, False, True, True]
    total = masks["many"].astype(int) + masks["medium"] + masks["few"]
    assert total.tolist() == [1] * 7


def test_shot_accuracy_on_split_batches():
    y, logits, parts = _batches(seed=5)
    metric = ShotAccuracy(COUNTS)
    for idx in parts:
        metric.update_state(y[idx], logits[idx])
    rec = _np_recalls(y, logits.argmax(-1), 7)
    result = {k: float(v) for k, v in metric.result().items()}
    assert result["shot_accuracy_many"] == pytest.approx(np.mean(rec[[0, 1]]), abs=1e-6)
    assert result["shot_accuracy_medium"] == pytest.approx(np.mean(rec[[2, 3, 4]]), abs=1e-6)
    assert result["shot_accuracy_few"] == pytest.approx(np.mean(rec[[5, 6]]), abs=1e-6)


def test_shot_accuracy_empty_group_is_nan():
    metric = ShotAccuracy([500, 300], many=100, few=20)
    metric.update_state([0, 1], [[1.0, 0.0], [1.0, 0.0]])
    result = {k: float(v) for k, v in metric.result().items()}
    assert result["shot_accuracy_many"] == 0.5
    assert np.isnan(result["shot_accuracy_medium"]) and np.isnan(result["shot_accuracy_few"])


def test_metrics_inside_fit_and_evaluate_match_numpy():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(96, 5)).astype("float32")
    y = rng.integers(0, 4, size=96)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[BalancedAccuracy(4), ShotAccuracy([40, 30, 9, 2], many=20, few=10)])
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    got = model.evaluate(x, y, batch_size=13, verbose=0, return_dict=True)
    rec = _np_recalls(y, model.predict(x, verbose=0).argmax(-1), 4)
    assert got["balanced_accuracy"] == pytest.approx(np.mean(rec), abs=1e-6)
    assert got["shot_accuracy_many"] == pytest.approx(np.mean(rec[:2]), abs=1e-6)
    assert np.isnan(got["shot_accuracy_medium"])
    assert got["shot_accuracy_few"] == pytest.approx(np.mean(rec[2:]), abs=1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match=r"num_classes must be an integer >= 2, received 1"):
        BalancedAccuracy(1)
    with pytest.raises(ValueError, match=r"num_classes must be an integer, received 3.5"):
        PerClassAccuracy(3.5)
    assert PerClassAccuracy(3.0).num_classes == 3  # a whole float is the int it names
    with pytest.raises(ValueError, match=r"class_counts\[0\] must be an integer >= 1, received 0"):
        ShotAccuracy([0, 4])
    with pytest.raises(ValueError, match=r"few \(50\) must be at most many \+ 1 \(21\)"):
        ShotAccuracy([10, 4], many=20, few=50)
    with pytest.raises(ValueError, match=r"many must be an integer >= 0, received -1"):
        ShotAccuracy([10, 4], many=-1)


MIRRORED = textwrap.dedent(
    """
    import json, os
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from tenfold.metrics import BalancedAccuracy, PerClassAccuracy, ShotAccuracy
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6)).astype("float32")
    y = rng.integers(0, 5, size=120)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5)])
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=[BalancedAccuracy(5), PerClassAccuracy(5),
                               ShotAccuracy([50, 30, 20, 9, 3], many=25, few=10)])
    got = model.evaluate(x, y, batch_size=24, verbose=0, return_dict=True)
    pred = model.predict(x, batch_size=24, verbose=0).argmax(-1)
    print("RESULT", json.dumps({"replicas": strategy.num_replicas_in_sync, "got": got,
                               "pred": pred.tolist(), "y": y.tolist()}))
    """
)


def test_metrics_under_mirrored_strategy_equal_numpy():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED], check=False, capture_output=True, text=True, env=env, timeout=300
    )
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, proc.stdout[-2000:] + proc.stderr[-4000:]
    import json

    out = json.loads(line[0][len("RESULT "):])
    assert out["replicas"] == 2
    y, pred = np.array(out["y"]), np.array(out["pred"])
    rec = _np_recalls(y, pred, 5)
    got = out["got"]
    assert got["balanced_accuracy"] == pytest.approx(np.mean(rec), abs=1e-6)
    for c in range(5):
        assert got[f"per_class_accuracy_{c}"] == pytest.approx(rec[c], abs=1e-6)
    assert got["shot_accuracy_many"] == pytest.approx(np.mean(rec[:2]), abs=1e-6)
    assert got["shot_accuracy_medium"] == pytest.approx(rec[2], abs=1e-6)
    assert got["shot_accuracy_few"] == pytest.approx(np.mean(rec[3:]), abs=1e-6)
