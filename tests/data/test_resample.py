"""tenfold.data.resample: empirical class frequencies against the targets of Kang et al.

Tolerance: with n draws, a class frequency has standard deviation sqrt(p(1-p)/n) <= 0.5/sqrt(n);
we allow 5 of those (|freq - p| <= 2.5/sqrt(n)), a false-alarm chance below 1e-6 per class.
"""

import numpy as np
import pytest
import tensorflow as tf

from tenfold.data import resample, target_distribution

COUNTS = [120, 40, 12, 4, 1]


def _dataset(counts=COUNTS, weights=False):
    y = np.concatenate([np.full(n, c) for c, n in enumerate(counts)]).astype("int64")
    x = np.arange(len(y), dtype="float32")[:, None] * np.ones((1, 3), "float32")
    if weights:
        return tf.data.Dataset.from_tensor_slices((x, y, np.full(len(y), 0.5, "float32")))
    return tf.data.Dataset.from_tensor_slices((x, y))


def _labels(ds):
    return np.concatenate([np.asarray(e[1]) for e in ds.batch(1000)]).astype("int64")


def _freq(labels):
    return np.bincount(labels, minlength=len(COUNTS)) / len(labels)


def _tolerance(n):
    return 2.5 / np.sqrt(n)


@pytest.mark.parametrize("strategy", ["class_balanced", "square_root", "instance"])
@pytest.mark.parametrize("cache", [True, False])
def test_frequencies_match_targets(strategy, cache):
    n = 4000
    ds = resample(_dataset(), COUNTS, strategy=strategy, num_samples=n, seed=1, cache=cache)
    assert int(ds.cardinality()) == n
    counts = np.asarray(COUNTS, float)
    q = {"class_balanced": 0.0, "square_root": 0.5, "instance": 1.0}[strategy]
    target = counts**q / np.sum(counts**q)  # independent of tenfold's helper
    np.testing.assert_allclose(target_distribution(COUNTS, strategy), target, rtol=1e-12)
    np.testing.assert_allclose(_freq(_labels(ds)), target, atol=_tolerance(n))


def test_progressive_moves_from_instance_to_class_balanced():
    n, epochs = 3000, 3
    ds = resample(_dataset(), COUNTS, strategy="progressive", epochs=epochs, num_samples=n, seed=2)
    assert int(ds.cardinality()) == n * epochs
    labels = _labels(ds)
    counts = np.asarray(COUNTS, float)
    for t in range(epochs):
        a = t / (epochs - 1)
        target = (1 - a) * counts / counts.sum() + a / len(counts)
        np.testing.assert_allclose(_freq(labels[t * n:(t + 1) * n]), target, atol=_tolerance(n))


def test_examples_are_kept_intact_and_every_example_is_reachable():
    ds = resample(_dataset(weights=True), COUNTS, num_samples=2000, seed=3)
    seen = set()
    for x, y, w in ds:
        x = x.numpy()
        assert np.all(x == x[0]) and float(w) == 0.5
        index = int(x[0])
        start = int(np.sum(COUNTS[: int(y)]))
        assert start <= index < start + COUNTS[int(y)]  # label still matches its example
        seen.add(index)
    # class balanced: the 4 + 1 tail examples and all 12 of class 2 get drawn
    assert set(range(160, 177)) <= seen


def test_seeded_is_deterministic_and_each_pass_redraws():
    a = _labels(resample(_dataset(), COUNTS, num_samples=200, seed=7))
    b = _labels(resample(_dataset(), COUNTS, num_samples=200, seed=7))
    np.testing.assert_array_equal(a, b)
    ds = resample(_dataset(), COUNTS, num_samples=200, seed=7)
    first, second = _labels(ds), _labels(ds)
    assert not np.array_equal(first, second)  # a fresh sample every epoch


def test_default_epoch_size_is_original_size_and_works_in_fit():
    import keras

    ds = resample(_dataset(), COUNTS, seed=0)
    assert int(ds.cardinality()) == sum(COUNTS)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(5)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(ds.batch(32), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2


def test_bad_input():
    ds = _dataset()
    with pytest.raises(ValueError, match=r"strategy must be one of 'class_balanced', .*received 'balanced'"):
        resample(ds, COUNTS, strategy="balanced")
    with pytest.raises(ValueError, match=r"epochs \(an integer >= 1\) is required by strategy='progressive', received None"):
        resample(ds, COUNTS, strategy="progressive")
    with pytest.raises(ValueError, match=r"epochs is only used by strategy='progressive'"):
        resample(ds, COUNTS, epochs=3)
    with pytest.raises(ValueError, match=r"Call resample before .batch\(\)"):
        resample(ds.batch(4), COUNTS)
    with pytest.raises(ValueError, match=r"class_counts\[4\] must be an integer >= 1, received 0"):
        resample(ds, [120, 40, 12, 4, 0])
    with pytest.raises(ValueError, match=r"classes \[5\] have no example"):
        resample(ds, COUNTS + [3])
    with pytest.raises(ValueError, match=r"classes \[5\] have no example"):
        resample(ds, COUNTS + [3], cache=False)
    with pytest.raises(ValueError, match=r"labels up to 4 but class_counts lists only 4"):
        resample(ds, COUNTS[:4])
    with pytest.raises(ValueError, match=r"num_samples must be an integer >= 1, received 0"):
        resample(ds, COUNTS, num_samples=0)
    with pytest.raises(TypeError, match=r"dataset must be an unbatched tf.data.Dataset of \(x, y\) pairs, received \[1, 2\] of type list"):
        resample([1, 2], COUNTS)
    with pytest.raises(TypeError, match=r"element spec"):
        resample(tf.data.Dataset.range(5), COUNTS)
